// data/fer_row.cpp — the rules of one FER CSV row (data/fer_row.h).
#include "data/fer_row.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <deque>

#include "io/csv.h"

namespace kiln::data::detail {
namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool is_pixel_separator(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// The record's fields, checked to be as many as the header's columns.
std::string split_row(std::string_view record, const FerColumns& cols,
                      std::vector<std::string_view>& fields, std::deque<std::string>& storage) {
  if (std::string err = split_csv_fields(record, fields, storage); !err.empty()) return err;
  if (fields.size() != cols.count)
    return "row has " + std::to_string(fields.size()) + " comma-separated fields, the header has " +
           std::to_string(cols.count) +
           ": the row is truncated or malformed; fix or delete that line";
  return {};
}

}  // namespace

FerColumns find_fer_columns(const std::vector<std::string_view>& header) {
  FerColumns cols;
  cols.count = header.size();
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string name = lower(trim_blanks(header[i]));
    if (name == "emotion")
      cols.emotion = int(i);
    else if (name == "pixels")
      cols.pixels = int(i);
    else if (name == "usage")
      cols.usage = int(i);
  }
  return cols;
}

std::optional<Usage> parse_usage(std::string_view field) {
  const std::string usage = lower(trim_blanks(field));
  if (usage == "training" || usage == "train") return Usage::kTrain;
  if (usage == "publictest" || usage == "validation" || usage == "val") return Usage::kVal;
  if (usage == "privatetest" || usage == "test") return Usage::kTest;
  return std::nullopt;
}

std::string parse_emotion(std::string_view field, int32_t& label) {
  const std::string_view emotion = trim_blanks(field);
  int value = 0;
  const char* end = emotion.data() + emotion.size();
  const auto [stop, ec] = std::from_chars(emotion.data(), end, value);
  if (emotion.empty() || ec == std::errc::invalid_argument || stop != end)
    return "emotion '" + std::string(emotion.substr(0, 40)) +
           "' is not an integer: it must be a FER class index 0..6";
  if (ec == std::errc::result_out_of_range || value < 0 || value > 6)
    return "emotion " + std::string(emotion.substr(0, 40)) +
           " is outside 0..6 (FER's classes: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 "
           "surprise, 6 neutral); fix or delete that line";
  label = value;
  return {};
}

std::string parse_pixels(std::string_view field, std::vector<uint8_t>& values) {
  values.clear();
  size_t i = 0;
  const size_t n = field.size();
  while (true) {
    while (i < n && is_pixel_separator(field[i])) ++i;
    if (i >= n) break;
    const size_t start = i;
    unsigned v = 0;
    bool digits = true;
    for (; i < n && !is_pixel_separator(field[i]); ++i) {
      const char c = field[i];
      if (c < '0' || c > '9')
        digits = false;
      else if (v <= 255)
        v = v * 10 + unsigned(c - '0');
    }
    const std::string_view token = field.substr(start, i - start);
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
  const auto s = size_t(std::llround(std::sqrt(double(n))));
  return s * s == n ? int(s) : -1;
}

std::string check_pixel_count(size_t count, size_t expected) {
  if (count == 0) return "the pixels field is empty: the row is truncated; fix or delete that line";
  if (expected != 0 && count != expected)
    return "row has " + std::to_string(count) + " pixels but the first row has " +
           std::to_string(expected) +
           ": the row is truncated or malformed; fix or delete that line";
  if (square_side(count) < 0)
    return std::to_string(count) +
           " pixels is not a perfect square: each row must hold an N x N gray image "
           "(FER2013: 2304 = 48 x 48); fix the row";
  return {};
}

std::string parse_fer_row(std::string_view record, const FerColumns& cols, size_t expected_pixels,
                          FerRow& row) {
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  if (std::string err = split_row(record, cols, fields, storage); !err.empty()) return err;
  if (std::string err = parse_emotion(fields[size_t(cols.emotion)], row.label); !err.empty())
    return err;
  row.usage = Usage::kTrain;
  if (cols.usage >= 0) {
    const std::string_view usage = fields[size_t(cols.usage)];
    const std::optional<Usage> parsed = parse_usage(usage);
    if (!parsed)
      return "Usage '" + std::string(trim_blanks(usage)) +
             "' is unknown: use Training, PublicTest or PrivateTest";
    row.usage = *parsed;
  }
  if (std::string err = parse_pixels(fields[size_t(cols.pixels)], row.pixels); !err.empty())
    return err;
  if (std::string err = check_pixel_count(row.pixels.size(), expected_pixels); !err.empty())
    return err;
  row.side = square_side(row.pixels.size());
  return {};
}

std::optional<Usage> usage_of_record(std::string_view record, const FerColumns& cols) {
  if (cols.usage < 0) return Usage::kTrain;
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  if (!split_row(record, cols, fields, storage).empty()) return std::nullopt;
  return parse_usage(fields[size_t(cols.usage)]);
}

}  // namespace kiln::data::detail
