// io/csv.cpp — CSV records and fields as RFC 4180 has them (see csv.h).
#include "io/csv.h"

#include <algorithm>

namespace kiln {
namespace {

// The blanks around an unquoted field or a blank record. npos + 1 == 0: find_last_not_of's "none"
// then removes the whole (all-blank) field.
constexpr const char* kBlanks = " \t\r";

}  // namespace

std::string split_csv_fields(std::string_view record, std::vector<std::string_view>& fields,
                             std::deque<std::string>& storage) {
  fields.clear();
  size_t i = 0;
  while (true) {
    while (i < record.size() && (record[i] == ' ' || record[i] == '\t')) ++i;
    if (i < record.size() && record[i] == '"') {
      const size_t begin = i + 1;
      size_t j = begin;
      bool escaped = false;
      while (true) {
        j = record.find('"', j);
        if (j == std::string_view::npos)
          return "unterminated quote: a field opens a \" that never closes; fix or delete that "
                 "line";
        if (j + 1 < record.size() && record[j + 1] == '"') {
          escaped = true;
          j += 2;
          continue;
        }
        break;
      }
      std::string_view raw = record.substr(begin, j - begin);
      if (escaped) {
        std::string& value = storage.emplace_back();
        value.reserve(raw.size());
        for (size_t k = 0; k < raw.size(); ++k) {
          value += raw[k];
          if (raw[k] == '"') ++k;  // the second quote of ""
        }
        fields.push_back(value);
      } else {
        fields.push_back(raw);
      }
      i = j + 1;
      while (i < record.size() && (record[i] == ' ' || record[i] == '\t' || record[i] == '\r')) ++i;
      if (i < record.size() && record[i] != ',')
        return "text after the closing quote of field " + std::to_string(fields.size()) +
               ": a quoted field must end at a comma (write a \" inside it as \"\"); fix that "
               "line";
    } else {
      size_t j = record.find(',', i);
      if (j == std::string_view::npos) j = record.size();
      std::string_view field = record.substr(i, j - i);
      field.remove_suffix(field.size() - (field.find_last_not_of(kBlanks) + 1));
      fields.push_back(field);
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

std::vector<CsvRecord> split_csv_records(std::string_view all) {
  std::vector<CsvRecord> records;
  size_t number = 1, pos = 0;
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
    if (r.find_first_not_of(kBlanks) != std::string_view::npos) records.push_back({number, r});
    number += breaks + 1;
    pos = end + 1;
  }
  return records;
}

std::string_view trim_blanks(std::string_view s) {
  const size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) + 1 - first);
}

std::string csv_field(std::string_view value) {
  const bool plain = value.find_first_of(",\"\r\n") == std::string_view::npos &&
                     (value.empty() || (value.front() != ' ' && value.front() != '\t' &&
                                        value.back() != ' ' && value.back() != '\t'));
  if (plain) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace kiln
