// data/fer_csv.h — FER2013 in Kaggle's CSV form.
//
//   emotion,pixels,Usage
//   0,70 80 82 72 58 ...,Training
//
// One header line naming the columns (any order, case-insensitive; Usage optional), then one image
// per line: emotion in 0..6 (FER's classes), pixels as H*W space-separated gray values 0..255 for a
// square image (2304 = 48x48 in FER2013; any N*N is accepted), Usage in Training / PublicTest /
// PrivateTest, which become train / val / test. Without a Usage column every row is a training row
// and a deterministic stratified 90/10 train/val split is drawn from `seed`. Images are converted
// to `spec` (bilinear resize, gray replicated to RGB).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "data/dataset.h"

namespace kiln::data {

// Throws kiln::Error naming the file, the line and the fix for: a missing or unreadable file, a
// header without emotion/pixels, a truncated or malformed row, a non-integer or out-of-range pixel,
// an emotion outside 0..6, a pixel count that is not a perfect square (or differs from the first
// row's), an unknown Usage, a file with no rows.
// Quoting follows RFC 4180 (quoted fields, "" for a quote, commas and line breaks inside quotes,
// LF or CRLF line ends); a quote left open is an error naming its line. Only a regular file is
// read (a FIFO or device is refused before reading).
Splits load_fer_csv(const std::string& path, const ImageSpec& spec, uint64_t seed = 0);
// The same from the file's text; `path` names it in errors.
Splits parse_fer_csv(std::string_view text, const std::string& path, const ImageSpec& spec,
                     uint64_t seed = 0);

}  // namespace kiln::data
