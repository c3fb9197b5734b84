// tests/io/test_csv.cpp — io/csv.h: records and fields as RFC 4180 has them, and csv_field, whose
// output reads back as what it was given.
#include <catch2/catch.hpp>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "io/csv.h"

using kiln::csv_field;
using kiln::CsvRecord;
using kiln::split_csv_fields;
using kiln::split_csv_records;

namespace {

// The fields of `record` as strings; REQUIREs that it splits.
std::vector<std::string> fields_of(std::string_view record) {
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  const std::string err = split_csv_fields(record, fields, storage);
  INFO(record);
  REQUIRE(err.empty());
  return std::vector<std::string>(fields.begin(), fields.end());
}

std::string error_of(std::string_view record) {
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  return split_csv_fields(record, fields, storage);
}

}  // namespace

TEST_CASE("CSV records end at line breaks outside quotes, numbered as an editor shows them",
          "[cpu][io]") {
  const std::vector<CsvRecord> r = split_csv_records("a,b\r\n\n  \r\n\"x\ny\",2\nlast,\"q\"\"\"");
  REQUIRE(r.size() == 3);
  CHECK(r[0].number == 1);
  CHECK(r[0].text == "a,b");  // the CR of CRLF is dropped
  CHECK(r[1].number == 4);    // blank records (lines 2 and 3) are skipped
  CHECK(r[1].text == "\"x\ny\",2");
  CHECK(r[2].number == 6);  // the record before spans two lines
  CHECK(r[2].text == "last,\"q\"\"\"");
  CHECK(split_csv_records("").empty());
  CHECK(split_csv_records("\n \t\r\n").empty());
  // A quote left open runs to the end of the text; splitting that record says so.
  const std::vector<CsvRecord> open = split_csv_records("h\n\"never closed\nmore\n");
  REQUIRE(open.size() == 2);
  CHECK(open[1].number == 2);
  CHECK_THAT(error_of(open[1].text), Catch::Contains("unterminated quote"));
}

TEST_CASE("CSV fields: quotes, doubled quotes, blanks and empty fields", "[cpu][io]") {
  CHECK(fields_of("a,b,c") == std::vector<std::string>{"a", "b", "c"});
  CHECK(fields_of("") == std::vector<std::string>{""});
  CHECK(fields_of("a,") == std::vector<std::string>{"a", ""});
  CHECK(fields_of(",,") == std::vector<std::string>{"", "", ""});
  CHECK(fields_of("  a ,\tb\t, c") == std::vector<std::string>{"a", "b", "c"});
  CHECK(fields_of("\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\"") ==
        std::vector<std::string>{"a,b", "say \"hi\"", "line\nbreak"});
  CHECK(fields_of("\" kept \" ,x") == std::vector<std::string>{" kept ", "x"});
  CHECK(fields_of("\"\",\"\"\"\"") == std::vector<std::string>{"", "\""});
  CHECK_THAT(error_of("\"a\"b,c"),
             Catch::Contains("text after the closing quote of field 1") && Catch::Contains("\"\""));
  CHECK_THAT(error_of("x,\"open"), Catch::Contains("unterminated quote"));
}

TEST_CASE("csv_field quotes only what needs it, and reads back as its value", "[cpu][io]") {
  CHECK(csv_field("plain") == "plain");
  CHECK(csv_field("") == "");
  CHECK(csv_field("in side") == "in side");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(csv_field(" lead") == "\" lead\"");
  CHECK(csv_field("trail\t") == "\"trail\t\"");
  CHECK(csv_field("two\nlines") == "\"two\nlines\"");
  const std::vector<std::string> values = {
      "plain", "", "a,b", "say \"hi\"", " lead", "trail ", "two\r\nlines", "\"", ",", "in side"};
  std::string record;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) record += ',';
    record += csv_field(values[i]);
  }
  record += "\r\n";
  const std::vector<CsvRecord> records = split_csv_records(record);  // views into `record`
  REQUIRE(records.size() == 1);
  CHECK(fields_of(records[0].text) == values);
}
