// io/csv.h — CSV as RFC 4180 has it, for every CSV Kiln reads (FER2013, history.csv) or writes
// (metrics, confusion matrices).
//
// A record ends at a line break outside quotes (LF or CRLF). A field may be "quoted": the quotes
// are removed, "" inside stands for one ", and commas and line breaks inside are part of the field.
// Blanks (spaces, tabs) before a field and after an unquoted one are not part of it, and only
// blanks may follow a closing quote. What the fields mean — columns, numbers, pixels — is the caller's.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

// One record of a CSV text: the line it starts on (1-based, as an editor shows it) and its text,
// without the line break (a view into the text).
struct CsvRecord {
  size_t number;
  std::string_view text;
};

// Splits `text` into records. Blank records are skipped. A quote left open runs to the end of the
// text, and split_csv_fields on that record then says so.
std::vector<CsvRecord> split_csv_records(std::string_view text);

// Splits one record into `fields`. Unquoted fields and quoted ones without "" are views into
// `record`; the others are unescaped into `storage`, a deque so that earlier views stay valid as
// it grows. Returns "" or what is malformed (an unterminated quote, text after a closing quote),
// with the fix.
std::string split_csv_fields(std::string_view record, std::vector<std::string_view>& fields,
                             std::deque<std::string>& storage);

// `s` without the blanks (space, tab, CR) at either end: what a caller trims from a quoted field
// whose blanks it does not keep.
std::string_view trim_blanks(std::string_view s);

// `value` as one CSV field: unchanged when that reads back as `value`, otherwise quoted (with ""
// for each ") — when it holds a comma, a quote or a line break, or starts or ends with a blank.
std::string csv_field(std::string_view value);

}  // namespace kiln
