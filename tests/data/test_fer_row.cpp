// tests/data/test_fer_row.cpp — the pieces of the FER CSV reader one at a time: CSV records and
// fields (io/csv.h), and the rules of a row's columns, emotion, Usage and pixels
// (data/fer_row.h). The whole reader is tested on files in test_fer_csv.cpp.
#include <catch2/catch.hpp>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "io/csv.h"
#include "data/fer_row.h"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
namespace d = kiln::data::detail;
using d::Usage;

namespace {

// The fields of `record` as strings; `error` gets split_csv_fields' message.
std::vector<std::string> fields_of(std::string_view record, std::string* error = nullptr) {
  std::vector<std::string_view> fields;
  std::deque<std::string> storage;
  const std::string err = kiln::split_csv_fields(record, fields, storage);
  if (error) *error = err;
  return {fields.begin(), fields.end()};
}

}  // namespace

TEST_CASE("CSV records: line breaks outside quotes end a record, lines are counted",
          "[cpu][data]") {
  const std::string text = "a,b\r\n\r\n  \n\"x\ny\nz\",2\nlast,\"open\n";
  const std::vector<kiln::CsvRecord> r = kiln::split_csv_records(text);
  REQUIRE(r.size() == 3);
  CHECK(r[0].number == 1);
  CHECK(r[0].text == "a,b");  // the CR of CRLF dropped; blank lines 2 and 3 skipped
  CHECK(r[1].number == 4);
  CHECK(r[1].text == "\"x\ny\nz\",2");  // one record over lines 4 to 6
  CHECK(r[2].number == 7);
  CHECK(r[2].text == "last,\"open\n");  // a quote left open runs to the end
  CHECK(kiln::split_csv_records("").empty());
  CHECK(kiln::split_csv_records("\n\r\n \t\n").empty());
}

TEST_CASE("CSV fields: RFC 4180 quoting, blanks, empty fields", "[cpu][data]") {
  CHECK(fields_of("a,b,c") == std::vector<std::string>{"a", "b", "c"});
  CHECK(fields_of(" \"q, \"\"x\"\"\" ,2") == std::vector<std::string>{"q, \"x\"", "2"});
  CHECK(fields_of("\"two\nlines\",\"\"") == std::vector<std::string>{"two\nlines", ""});
  CHECK(fields_of("1,,") == std::vector<std::string>{"1", "", ""});
  CHECK(fields_of(",") == std::vector<std::string>{"", ""});
  CHECK(fields_of("x ,  y") == std::vector<std::string>{"x", "y"});  // blanks around unquoted go
  CHECK(fields_of("\"a\" \r") == std::vector<std::string>{"a"});
  std::string error;
  fields_of("1,\"open", &error);
  CHECK_THAT(error, StartsWith("unterminated quote"));
  fields_of("1,\"a\"b,3", &error);
  CHECK_THAT(error, StartsWith("text after the closing quote of field 2:"));
  CHECK(kiln::trim_blanks(" \t\rx y\r\t ") == "x y");
}

TEST_CASE("FER rows: the header's columns in any order and case", "[cpu][data]") {
  const d::FerColumns c = d::find_fer_columns({"note", " PIXELS", "Usage ", "Emotion"});
  CHECK(c.emotion == 3);
  CHECK(c.pixels == 1);
  CHECK(c.usage == 2);
  CHECK(c.count == 4);
  const d::FerColumns none = d::find_fer_columns({"emotions", "pixel"});
  CHECK((none.emotion == -1 && none.pixels == -1 && none.usage == -1 && none.count == 2));
}

TEST_CASE("FER rows: Usage names and their splits", "[cpu][data]") {
  for (const char* s : {"Training", "train", " TRAINING\r"})
    CHECK(d::parse_usage(s) == Usage::kTrain);
  for (const char* s : {"PublicTest", "validation", "VAL"}) CHECK(d::parse_usage(s) == Usage::kVal);
  for (const char* s : {"PrivateTest", "test", "\tTest"}) CHECK(d::parse_usage(s) == Usage::kTest);
  for (const char* s : {"", "Holdout", "Training2", "valid", "Public Test"})
    CHECK(!d::parse_usage(s).has_value());
}

TEST_CASE("FER rows: an emotion is an unsigned decimal 0..6", "[cpu][data]") {
  int32_t label = -5;
  CHECK(d::parse_emotion(" 6 ", label).empty());
  CHECK(label == 6);
  CHECK(d::parse_emotion("0", label).empty());
  CHECK(label == 0);
  label = 3;
  CHECK(d::parse_emotion("7", label) ==
        "emotion 7 is outside 0..6 (FER's classes: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 "
        "surprise, 6 neutral); fix or delete that line");
  CHECK(label == 3);  // unchanged on error
  CHECK_THAT(d::parse_emotion("-1", label), StartsWith("emotion -1 is outside 0..6"));
  CHECK_THAT(d::parse_emotion("99999999999", label), StartsWith("emotion 99999999999 is outside"));
  CHECK(d::parse_emotion("+1", label) ==
        "emotion '+1' is not an integer: it must be a FER class index 0..6");
  CHECK_THAT(d::parse_emotion("", label), StartsWith("emotion '' is not an integer"));
  CHECK_THAT(d::parse_emotion("2.0", label), StartsWith("emotion '2.0' is not an integer"));
  CHECK(label == 3);
}

TEST_CASE("FER rows: pixels are 0..255 of at most three digits, blank-separated", "[cpu][data]") {
  std::vector<uint8_t> v{9};
  CHECK(d::parse_pixels(" 0 255\t07  1\r", v).empty());
  CHECK(v == std::vector<uint8_t>{0, 255, 7, 1});
  CHECK(d::parse_pixels("", v).empty());
  CHECK(v.empty());
  CHECK(d::parse_pixels("1 256", v) ==
        "pixel 2 is 256, outside 0..255: pixels are 8-bit gray values");
  CHECK(d::parse_pixels("0255", v) ==  // four digits, even with the value in range
        "pixel 1 is 0255, outside 0..255: pixels are 8-bit gray values");
  CHECK_THAT(d::parse_pixels("9999999999999", v), StartsWith("pixel 1 is 9999999999999, outside"));
  CHECK(d::parse_pixels("1 2 -3", v) ==
        "pixel 3 is '-3', not an integer: pixels must be whole numbers 0..255 separated by spaces");
  CHECK_THAT(d::parse_pixels("1,2", v), StartsWith("pixel 1 is '1,2', not an integer"));
}

TEST_CASE("FER rows: the pixel count is a perfect square and the first row's", "[cpu][data]") {
  CHECK(d::square_side(2304) == 48);
  CHECK(d::square_side(1) == 1);
  CHECK(d::square_side(2303) == -1);
  CHECK(d::square_side(2305) == -1);
  CHECK(d::square_side(size_t(46341) * 46341) == 46341);
  CHECK(d::check_pixel_count(16, 0).empty());
  CHECK(d::check_pixel_count(16, 16).empty());
  CHECK(d::check_pixel_count(0, 16) ==
        "the pixels field is empty: the row is truncated; fix or delete that line");
  CHECK(d::check_pixel_count(9, 16) ==
        "row has 9 pixels but the first row has 16: the row is truncated or malformed; fix or "
        "delete that line");
  CHECK(d::check_pixel_count(15, 0) ==
        "15 pixels is not a perfect square: each row must hold an N x N gray image (FER2013: 2304 "
        "= 48 x 48); fix the row");
}

TEST_CASE("FER rows: a row's fields are checked in a fixed order", "[cpu][data]") {
  const d::FerColumns cols = d::find_fer_columns({"Usage", "emotion", "pixels"});
  d::FerRow row;
  REQUIRE(d::parse_fer_row("PrivateTest,4,\"1 2 3 4\"", cols, 0, row).empty());
  CHECK(row.label == 4);
  CHECK(row.usage == Usage::kTest);
  CHECK(row.pixels == std::vector<uint8_t>{1, 2, 3, 4});
  CHECK(row.side == 2);
  CHECK(d::usage_of_record("PrivateTest,4,1 2 3 4", cols) == Usage::kTest);
  // Field count first, then emotion, Usage, pixels, pixel count.
  CHECK_THAT(d::parse_fer_row("Holdout,9,1 x", cols, 0, row), StartsWith("emotion 9 is outside"));
  CHECK_THAT(d::parse_fer_row("Holdout,1,1 x", cols, 0, row), StartsWith("Usage 'Holdout'"));
  CHECK_THAT(d::parse_fer_row("Training,1,1 x", cols, 0, row), StartsWith("pixel 2 is 'x'"));
  CHECK_THAT(d::parse_fer_row("Training,1,1 2 3", cols, 4, row),
             StartsWith("row has 3 pixels but the first row has 4"));
  CHECK(d::parse_fer_row("Training,9", cols, 0, row) ==
        "row has 2 comma-separated fields, the header has 3: the row is truncated or malformed; "
        "fix or delete that line");
  CHECK_THAT(d::parse_fer_row("Training,1,\"1 2", cols, 0, row), StartsWith("unterminated quote"));
  // The cheap pass tells the split, or nothing for a row the full parse refuses.
  CHECK(d::usage_of_record(" val ,9,x", cols) == Usage::kVal);
  CHECK(!d::usage_of_record("Holdout,1,1", cols).has_value());
  CHECK(!d::usage_of_record("Training,1", cols).has_value());
  const d::FerColumns no_usage = d::find_fer_columns({"emotion", "pixels"});
  CHECK(d::usage_of_record("anything", no_usage) == Usage::kTrain);
  REQUIRE(d::parse_fer_row("2,5", no_usage, 1, row).empty());
  CHECK((row.label == 2 && row.usage == Usage::kTrain && row.side == 1));
}
