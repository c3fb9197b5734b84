// data/fer_csv.cpp — the FER2013 CSV reader (format in data/fer_csv.h).
//
// FER2013 is ~290 MB of text (35,887 rows x 2,304 numbers), so the file is read whole and parsed in
// two passes over its records (io/csv.h): the first reads only each row's Usage, to give every
// row its slot in its split; the second parses the rows (data/fer_row.h) in parallel
// (data/parallel.h) and decodes each image straight into its slot, so the data set is never held
// twice (3x128x128 FER2013 is 1.7 GB). Every row's outcome is independent, and when several rows
// are bad the error of the first one in the file is reported, so the message does not depend on
// timing.
#include "data/fer_csv.h"

#include <array>
#include <deque>
#include <span>

#include "core/error.h"
#include "io/file.h"
#include "io/csv.h"
#include "data/fer_row.h"
#include "data/image.h"
#include "data/parallel.h"

namespace kiln::data {
namespace {

using detail::FerColumns;
using detail::Usage;

// The prefix of an error on one line: "path:line: ".
std::string where(const std::string& path, size_t line) {
  return path + ":" + std::to_string(line) + ": ";
}

// The header's columns; throws naming its line when it is malformed or lacks emotion or pixels.
FerColumns read_header(const CsvRecord& header, const std::string& path) {
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  const std::string err = split_csv_fields(header.text, fields, storage);
  KILN_CHECK(err.empty(), where(path, header.number), "the header: ", err);
  const FerColumns cols = detail::find_fer_columns(fields);
  const std::string_view text = trim_blanks(header.text);
  std::string shown(text.substr(0, 60));
  if (text.size() > 60) shown += "...";
  KILN_CHECK(cols.emotion >= 0 && cols.pixels >= 0, where(path, header.number), "the header '",
             shown,
             "' lacks an 'emotion' or 'pixels' column: the first line must be the header "
             "'emotion,pixels,Usage' (Usage optional)");
  return cols;
}

// Where each row's image goes: its split (-1 when the row is malformed, which its parse then
// reports) and its slot there, in file order; and the size of each split.
struct Layout {
  std::vector<int> split;
  std::vector<size_t> slot;
  std::array<size_t, 3> counts{0, 0, 0};
};

Layout lay_out_rows(std::span<const CsvRecord> rows, const FerColumns& cols) {
  Layout l;
  l.split.assign(rows.size(), -1);
  l.slot.assign(rows.size(), 0);
  for (size_t i = 0; i < rows.size(); ++i)
    if (const std::optional<Usage> u = detail::usage_of_record(rows[i].text, cols)) {
      l.split[i] = int(*u);
      l.slot[i] = l.counts[size_t(*u)]++;
    }
  return l;
}

// Splits sized by the layout, images uninitialised until decode_rows fills them.
Splits allocate_splits(const Layout& layout, const ImageSpec& spec) {
  Splits s;
  Dataset* split_of[3] = {&s.train, &s.val, &s.test};
  for (size_t k = 0; k < 3; ++k) {
    *split_of[k] = Dataset::with_spec(spec, fer_class_names());
    split_of[k]->pixels.resize(layout.counts[k] * spec.pixels());
    split_of[k]->labels.resize(layout.counts[k]);
  }
  return s;
}

// Parses every row and converts its image to `spec` in its slot. The first row sets the pixel
// count every other row must have; throws the error of the first bad row, naming its line.
void decode_rows(std::span<const CsvRecord> rows, const FerColumns& cols, const Layout& layout,
                 const ImageSpec& spec, const std::string& path, Splits& s) {
  Dataset* split_of[3] = {&s.train, &s.val, &s.test};
  auto decode = [&](size_t i, size_t expected) {
    detail::FerRow row;
    const std::string err = detail::parse_fer_row(rows[i].text, cols, expected, row);
    if (!err.empty()) KILN_FAIL(where(path, rows[i].number), err);
    // A row that parses has a known split: lay_out_rows failed only on what parse_fer_row refuses.
    Dataset& d = *split_of[layout.split[i]];
    convert_image(d.image(layout.slot[i]), spec, row.pixels.data(), 1, row.side, row.side);
    d.labels[layout.slot[i]] = row.label;
    return row.pixels.size();
  };
  const size_t expected = decode(0, 0);
  detail::parallel_for(rows.size() - 1, [&](size_t i) { decode(i + 1, expected); });
}

}  // namespace

Splits load_fer_csv(const std::string& path, const ImageSpec& spec, uint64_t seed) {
  KILN_CHECK(spec.channels == 1 || spec.channels == 3,
             "FER CSV: target channels must be 1 or 3, got ", spec.channels);
  const std::string text = read_regular_file(
      path, "FER CSV file", "pass the path of fer2013.csv (columns emotion,pixels,Usage)");
  return parse_fer_csv(text, path, spec, seed);
}

Splits parse_fer_csv(std::string_view text, const std::string& path, const ImageSpec& spec,
                     uint64_t seed) {
  KILN_CHECK(spec.channels == 1 || spec.channels == 3,
             "FER CSV: target channels must be 1 or 3, got ", spec.channels);
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte order mark
  const std::vector<CsvRecord> records = split_csv_records(text);
  KILN_CHECK(!records.empty(), "FER CSV file '", path,
             "' is empty: it needs a header line 'emotion,pixels,Usage' and one row per image");
  const FerColumns cols = read_header(records[0], path);
  KILN_CHECK(records.size() > 1, "FER CSV file '", path,
             "' has a header but no rows: add one row per image (emotion,pixels,Usage)");
  const std::span<const CsvRecord> rows(records.begin() + 1, records.end());

  const Layout layout = lay_out_rows(rows, cols);
  Splits s = allocate_splits(layout, spec);
  decode_rows(rows, cols, layout, spec, path, s);
  KILN_CHECK(!s.train.empty(), "FER CSV file '", path,
             "' has no Training rows: training needs rows whose Usage is Training");
  hold_out_val_if_missing(s, seed);  // no PublicTest rows, or no Usage column
  return s;
}

}  // namespace kiln::data
