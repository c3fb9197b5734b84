// data/csv.h — splitting CSV text into records and fields, RFC 4180 (internal to data/).
//
// The FER CSV reader (data/fer_csv.cpp) is its user; nothing here knows FER. A field may be
// "quoted": the quotes are removed, "" inside stands for one ", and commas and line breaks inside
// are part of the field. Line ends are LF or CRLF. Blanks (space, tab) around a field are allowed.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::data::detail {

// `s` without the blanks (space, tab, CR) at either end.
std::string_view trim_blanks(std::string_view s);

// One record of a CSV text: `line` is the line it starts on (1-based, as an editor shows it).
struct CsvRecord {
  size_t line;
  std::string_view text;
};

// Splits `text` into records: a record ends at a line break outside quotes (the CR of a CRLF is
// dropped). Blank records are skipped, and a record whose quoted fields hold line breaks counts
// those lines. A quote left open runs to the end of the text; split_csv_fields then says so.
// The records are views into `text`.
std::vector<CsvRecord> split_csv_records(std::string_view text);

// Splits one record into `fields`. Unquoted fields, and quoted ones without "", are views into
// `record`; the others are unescaped into `storage`, a deque so that earlier views stay valid as
// it grows. Only blanks may follow a closing quote. Returns "" or what is malformed, with the fix.
std::string split_csv_fields(std::string_view record, std::vector<std::string_view>& fields,
                             std::deque<std::string>& storage);

}  // namespace kiln::data::detail
