// data/csv.cpp — CSV records and fields (rules in data/csv.h).
#include "data/csv.h"

#include <algorithm>

namespace kiln::data::detail {
namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// Reads the quoted field whose opening quote is record[open] into `fields` and returns the index
// just past its closing quote, or npos when the quote never closes.
size_t read_quoted(std::string_view record, size_t open, std::vector<std::string_view>& fields,
                   std::deque<std::string>& storage) {
  const size_t begin = open + 1;
  size_t close = begin;
  bool escaped = false;
  while (true) {
    close = record.find('"', close);
    if (close == std::string_view::npos) return close;
    if (close + 1 < record.size() && record[close + 1] == '"') {
      escaped = true;
      close += 2;
      continue;
    }
    break;
  }
  const std::string_view raw = record.substr(begin, close - begin);
  if (!escaped) {
    fields.push_back(raw);
    return close + 1;
  }
  std::string& value = storage.emplace_back();
  value.reserve(raw.size());
  for (size_t k = 0; k < raw.size(); ++k) {
    value += raw[k];
    if (raw[k] == '"') ++k;  // the second quote of ""
  }
  fields.push_back(value);
  return close + 1;
}

}  // namespace

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<CsvRecord> split_csv_records(std::string_view all) {
  std::vector<CsvRecord> records;
  size_t line = 1, pos = 0;
  while (pos < all.size()) {
    size_t end = pos, quotes = 0, breaks = 0;
    while (true) {
      const size_t nl = all.find('\n', end);
      const size_t stop = nl == std::string_view::npos ? all.size() : nl;
      quotes += size_t(
          std::count(all.begin() + std::ptrdiff_t(end), all.begin() + std::ptrdiff_t(stop), '"'));
      end = stop;
      if (quotes % 2 == 0 || end == all.size()) break;
      ++breaks;  // a line break inside a quoted field
      ++end;
    }
    std::string_view r = all.substr(pos, end - pos);
    if (!r.empty() && r.back() == '\r') r.remove_suffix(1);
    if (!trim_blanks(r).empty()) records.push_back({line, r});
    line += breaks + 1;
    pos = end + 1;
  }
  return records;
}

std::string split_csv_fields(std::string_view record, std::vector<std::string_view>& fields,
                             std::deque<std::string>& storage) {
  fields.clear();
  size_t i = 0;
  while (true) {
    while (i < record.size() && is_blank(record[i])) ++i;
    if (i < record.size() && record[i] == '"') {
      i = read_quoted(record, i, fields, storage);
      if (i == std::string_view::npos)
        return "unterminated quote: a field opens a \" that never closes; fix or delete that "
               "line";
      while (i < record.size() && (is_blank(record[i]) || record[i] == '\r')) ++i;
      if (i < record.size() && record[i] != ',')
        return "text after the closing quote of field " + std::to_string(fields.size()) +
               ": a quoted field must end at a comma (write a \" inside it as \"\"); fix that "
               "line";
    } else {
      size_t j = record.find(',', i);
      if (j == std::string_view::npos) j = record.size();
      fields.push_back(record.substr(i, j - i));
      i = j;
    }
    if (i >= record.size()) break;
    ++i;  // skip the comma
    if (i == record.size()) {
      fields.push_back({});
      break;
    }
  }
  return {};
}

}  // namespace kiln::data::detail
