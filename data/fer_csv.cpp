// data/fer_csv.cpp — the FER2013 CSV reader (format in data/fer_csv.h).
//
// FER2013 is ~290 MB of text (35,887 rows x 2,304 numbers), so the file is read whole and parsed by
// hand, rows split over threads; every row's outcome is independent, and when several rows are bad
// the error of the first one in the file is reported, so the message does not depend on timing.
#include "data/fer_csv.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <charconv>
#include <deque>
#include <optional>
#include <string_view>
#include <thread>

#include "core/error.h"
#include "data/image.h"
#include "io/csv.h"
#include "io/file.h"

namespace kiln::data {
namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

enum Usage { kTrain = 0, kVal = 1, kTest = 2 };

struct Columns {
  int emotion = -1, pixels = -1, usage = -1;
  size_t count = 0;
};

struct Row {
  int32_t label = 0;
  Usage usage = kTrain;
};

// What went wrong on one line; kept per thread so the first bad line in the file wins.
struct RowError {
  size_t line = 0;
  std::string message;
};

std::string where(const std::string& path, size_t line) {
  return path + ":" + std::to_string(line) + ": ";
}

// Parses the pixel field into `values`; returns an error message or "".
std::string parse_pixels(std::string_view field, std::vector<uint8_t>& values) {
  values.clear();
  size_t i = 0, n = field.size();
  while (true) {
    while (i < n && (field[i] == ' ' || field[i] == '\t' || field[i] == '\r')) ++i;
    if (i >= n) break;
    size_t start = i;
    unsigned v = 0;
    bool digits = true;
    while (i < n && field[i] != ' ' && field[i] != '\t' && field[i] != '\r') {
      char c = field[i];
      if (c < '0' || c > '9')
        digits = false;
      else if (v <= 255)
        v = v * 10 + unsigned(c - '0');
      ++i;
    }
    std::string_view token = field.substr(start, i - start);
    if (!digits)
      return "pixel " + std::to_string(values.size() + 1) + " is '" + std::string(token) +
             "', not an integer: pixels must be whole numbers 0..255 separated by spaces";
    if (v > 255 || token.size() > 3)
      return "pixel " + std::to_string(values.size() + 1) + " is " + std::string(token) +
             ", outside 0..255: pixels are 8-bit gray values";
    values.push_back(uint8_t(v));
  }
  return {};
}

int square_side(size_t n) {
  auto s = size_t(std::llround(std::sqrt(double(n))));
  return s * s == n ? int(s) : -1;
}

std::optional<Usage> parse_usage(std::string_view field) {
  std::string usage = lower(trim(field));
  if (usage == "training" || usage == "train") return kTrain;
  if (usage == "publictest" || usage == "validation" || usage == "val") return kVal;
  if (usage == "privatetest" || usage == "test") return kTest;
  return std::nullopt;
}

// The split of a line, or nullopt when the line is malformed (the full parse then says why).
std::optional<Usage> usage_of(std::string_view line, const Columns& cols) {
  if (cols.usage < 0) return kTrain;
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  if (!split_csv_fields(line, fields, storage).empty() || fields.size() != cols.count)
    return std::nullopt;
  return parse_usage(fields[size_t(cols.usage)]);
}

// Parses one data line into `row` and, when `dest` is not null, its image converted to `spec`.
// `expected_pixels` is 0 for the first row (which sets it through `scratch.size()`).
std::string parse_row(std::string_view line, const Columns& cols, const ImageSpec& spec,
                      size_t expected_pixels, Row& row, std::vector<uint8_t>& scratch,
                      uint8_t* dest) {
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  if (std::string err = split_csv_fields(line, fields, storage); !err.empty()) return err;
  if (fields.size() != cols.count)
    return "row has " + std::to_string(fields.size()) + " comma-separated fields, the header has " +
           std::to_string(cols.count) +
           ": the row is truncated or malformed; fix or delete that line";
  std::string_view emotion = trim(fields[size_t(cols.emotion)]);
  int label = 0;
  const char* end = emotion.data() + emotion.size();
  const auto [stop, ec] = std::from_chars(emotion.data(), end, label);
  if (emotion.empty() || ec == std::errc::invalid_argument || stop != end)
    return "emotion '" + std::string(emotion.substr(0, 40)) +
           "' is not an integer: it must be a FER class index 0..6";
  if (ec == std::errc::result_out_of_range || label < 0 || label > 6)
    return "emotion " + std::string(emotion.substr(0, 40)) +
           " is outside 0..6 (FER's classes: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 "
           "surprise, 6 neutral); fix or delete that line";
  row.label = label;
  row.usage = kTrain;
  if (cols.usage >= 0) {
    std::optional<Usage> usage = parse_usage(fields[size_t(cols.usage)]);
    if (usage)
      row.usage = *usage;
    else
      return "Usage '" + std::string(trim(fields[size_t(cols.usage)])) +
             "' is unknown: use Training, PublicTest or PrivateTest";
  }
  std::string err = parse_pixels(fields[size_t(cols.pixels)], scratch);
  if (!err.empty()) return err;
  if (scratch.empty())
    return "the pixels field is empty: the row is truncated; fix or delete that line";
  if (expected_pixels != 0 && scratch.size() != expected_pixels)
    return "row has " + std::to_string(scratch.size()) + " pixels but the first row has " +
           std::to_string(expected_pixels) +
           ": the row is truncated or malformed; fix or delete that line";
  int side = square_side(scratch.size());
  if (side < 0)
    return std::to_string(scratch.size()) +
           " pixels is not a perfect square: each row must hold an N x N gray image (FER2013: 2304 "
           "= "
           "48 x 48); fix the row";
  if (dest) convert_image(dest, spec, scratch.data(), 1, side, side);
  return {};
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
  const std::vector<CsvRecord> lines = split_csv_records(text);
  KILN_CHECK(!lines.empty(), "FER CSV file '", path,
             "' is empty: it needs a header line 'emotion,pixels,Usage' and one row per image");

  Columns cols;
  {
    std::vector<std::string_view> header;
    std::deque<std::string> storage;
    const std::string err = split_csv_fields(lines[0].text, header, storage);
    KILN_CHECK(err.empty(), where(path, lines[0].number), "the header: ", err);
    cols.count = header.size();
    for (size_t i = 0; i < header.size(); ++i) {
      std::string name = lower(trim(header[i]));
      if (name == "emotion")
        cols.emotion = int(i);
      else if (name == "pixels")
        cols.pixels = int(i);
      else if (name == "usage")
        cols.usage = int(i);
    }
    std::string shown(trim(lines[0].text).substr(0, 60));
    if (trim(lines[0].text).size() > 60) shown += "...";
    KILN_CHECK(cols.emotion >= 0 && cols.pixels >= 0, where(path, lines[0].number), "the header '",
               shown,
               "' lacks an 'emotion' or 'pixels' column: the first line must be the header "
               "'emotion,pixels,Usage' (Usage optional)");
  }
  KILN_CHECK(lines.size() > 1, "FER CSV file '", path,
             "' has a header but no rows: add one row per image (emotion,pixels,Usage)");

  // Pass 1 (cheap): each row's split, so every image is decoded straight into its final slot and
  // the data set is never held twice (3x128x128 FER2013 is 1.7 GB).
  const size_t n = lines.size() - 1;
  Splits s;
  Dataset* split_of[3] = {&s.train, &s.val, &s.test};
  std::vector<int> split(n, -1);
  std::vector<size_t> slot(n, 0);
  size_t counts[3] = {0, 0, 0};
  for (size_t i = 0; i < n; ++i)
    if (std::optional<Usage> u = usage_of(lines[i + 1].text, cols)) {
      split[i] = int(*u);
      slot[i] = counts[*u]++;
    }
  for (int k = 0; k < 3; ++k) {
    *split_of[k] = Dataset::with_spec(spec, fer_class_names());
    split_of[k]->pixels.resize(counts[k] * spec.pixels());
    split_of[k]->labels.resize(counts[k]);
  }
  // Pass 2: parse and convert, rows split over threads. A row whose split pass 1 could not tell
  // is malformed, and its parse reports why before anything is written.
  auto parse = [&](size_t i, size_t expected, std::vector<uint8_t>& scratch) {
    Row row;
    uint8_t* dest = split[i] >= 0 ? split_of[split[i]]->image(slot[i]) : nullptr;
    std::string err = parse_row(lines[i + 1].text, cols, spec, expected, row, scratch, dest);
    if (err.empty() && split[i] >= 0) split_of[split[i]]->labels[slot[i]] = row.label;
    return err;
  };
  std::vector<uint8_t> scratch;
  {
    std::string err = parse(0, 0, scratch);
    if (!err.empty()) KILN_FAIL(where(path, lines[1].number), err);
  }
  const size_t expected = scratch.size();
  const int threads =
      int(std::clamp<size_t>(std::thread::hardware_concurrency(), 1, std::max<size_t>(1, n / 256)));
  std::vector<RowError> errors(static_cast<size_t>(threads));
  auto work = [&](int t) {
    std::vector<uint8_t> local;
    size_t begin = 1 + (n - 1) * size_t(t) / size_t(threads);
    size_t end = 1 + (n - 1) * size_t(t + 1) / size_t(threads);
    size_t i = begin;
    try {
      for (; i < end; ++i) {
        std::string err = parse(i, expected, local);
        if (!err.empty()) {
          errors[size_t(t)] = {lines[i + 1].number, err};
          return;
        }
      }
    } catch (const std::exception& e) {
      errors[size_t(t)] = {lines[i + 1].number, e.what()};
    }
  };
  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
    for (auto& th : pool) th.join();
  }
  // Threads cover increasing line ranges, so the first error found is the earliest in the file.
  for (const RowError& e : errors)
    if (!e.message.empty()) KILN_FAIL(where(path, e.line), e.message);

  KILN_CHECK(!s.train.empty(), "FER CSV file '", path,
             "' has no Training rows: training needs rows whose Usage is Training");
  if (s.val.empty()) {
    // No PublicTest rows (or no Usage column): hold out a stratified 10% of Training.
    Splits held = split_train_val(s.train, 0.1, seed);
    s.train = std::move(held.train);
    s.val = std::move(held.val);
  }
  return s;
}

}  // namespace kiln::data
