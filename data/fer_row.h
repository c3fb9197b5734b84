// data/fer_row.h — one row of a FER CSV: the columns its header names and the rules of each field
// (internal to data/; the format is in data/fer_csv.h).
//
// Each function returns "" or the problem and its fix, without the file and line: the reader
// (data/fer_csv.cpp) prefixes those. The messages are the ones users see.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::data::detail {

// The split a row goes to; the value indexes {train, val, test}.
enum class Usage { kTrain = 0, kVal = 1, kTest = 2 };

// Where the header put each column (-1: absent) and how many columns it has.
struct FerColumns {
  int emotion = -1, pixels = -1, usage = -1;
  size_t count = 0;
};

// The header's fields, named emotion, pixels and Usage in any order and any case, blanks trimmed;
// other columns are ignored.
FerColumns find_fer_columns(const std::vector<std::string_view>& header);

// Training / PublicTest / PrivateTest (also train; validation, val; test), any case, blanks
// trimmed; nullopt for anything else.
std::optional<Usage> parse_usage(std::string_view field);

// The emotion: a decimal integer 0..6 (blanks trimmed, no sign), stored in `label`.
std::string parse_emotion(std::string_view field, int32_t& label);

// The pixels: whole numbers 0..255 (at most 3 digits) separated by blanks, stored in `values`.
std::string parse_pixels(std::string_view field, std::vector<uint8_t>& values);

// The side of a square image of n pixels, or -1 when n is not a perfect square.
int square_side(size_t n);

// A pixel count that is not empty, equals `expected` (0: any) and is a perfect square.
std::string check_pixel_count(size_t count, size_t expected);

struct FerRow {
  int32_t label = 0;
  Usage usage = Usage::kTrain;  // kTrain without a Usage column
  std::vector<uint8_t> pixels;  // [side][side]
  int side = 0;
};

// Parses one data record against the header's columns: its fields, the emotion, the Usage, the
// pixels and their count (`expected_pixels` as in check_pixel_count), in that order.
std::string parse_fer_row(std::string_view record, const FerColumns& cols, size_t expected_pixels,
                          FerRow& row);

// The split of a record, or nullopt when the record is malformed or its Usage unknown (then
// parse_fer_row says why). Cheaper than parse_fer_row: the pixels are not read.
std::optional<Usage> usage_of_record(std::string_view record, const FerColumns& cols);

}  // namespace kiln::data::detail
