// tests/io/test_safetensors.cpp — the safetensors format (io/safetensors.h): what it writes reads
// back exactly, and the reader against hostile files: every rule of the specification with a
// crafted file that breaks it, FIFOs and devices.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tests/support/temp_dir.h"

using namespace kiln;
using Catch::Contains;
using kiln::test::TempDir;

namespace {

// A safetensors file from its header text and data bytes.
std::string craft(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// parse_safetensors(bytes) must throw, its message naming the file and containing `part`.
void refused(const std::string& bytes, const std::string& part) {
  INFO("expected: " << part);
  CHECK_THROWS_WITH(parse_safetensors(bytes, "crafted.safetensors"),
                    Contains("crafted.safetensors") && Contains(part));
}

const std::string k8(8, '\1');  // 8 data bytes

}  // namespace

TEST_CASE("safetensors: a valid crafted file reads exactly, in any header order", "[cpu][io]") {
  std::string data(12, '\0');
  for (int i = 0; i < 12; ++i) data[size_t(i)] = char(i);
  // b's bytes come first in the data although the header lists a first.
  const StFile f =
      parse_safetensors(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                              R"("b":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]},)"
                              R"("z":{"dtype":"I64","shape":[0],"data_offsets":[4,4]},)"
                              R"("__metadata__":{"k":"v"}})",
                              data),
                        "ok");
  REQUIRE(f.tensors.size() == 3);
  CHECK(f.tensors[0].name == "a");
  CHECK(f.tensors[0].bytes == std::vector<uint8_t>{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(f.tensors[1].bytes == std::vector<uint8_t>{0, 1, 2, 3});
  CHECK(f.tensors[2].bytes.empty());
  CHECK(f.metadata.at("k") == "v");
}

TEST_CASE("safetensors: every rule of the specification is checked", "[cpu][io]") {
  const std::string t = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  SECTION("header length") {
    refused("1234567", "only 7 bytes");
    refused(craft("{}").substr(0, 8) + "{", "exceeds the file");
    std::string big = craft(std::string(100'000'001, ' '));
    big[8] = '{';
    refused(big, "limit of 100000000");
  }
  SECTION("JSON") {
    refused(craft("{\"t\":"), "not valid JSON");
    refused(craft("[1,2]"), "not a JSON object");
    refused(craft("{" + t + "," + t + "}", k8), "the key 't' twice");
    refused(craft(R"({"__metadata__":{"a":"1","a":"2"}})"), "the key 'a' twice");
  }
  SECTION("entries") {
    refused(craft(R"({"t":[1]})"), "exactly dtype, shape and data_offsets");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2]}})", k8), "exactly dtype");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", k8),
            "exactly dtype");
    refused(craft(R"({"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", k8), "not a string");
    refused(craft(R"({"t":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", k8),
            "unknown dtype 'Q7'");
    refused(craft(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", k8), "not an array");
    for (const char* dim : {"-2", "2.5", "\"2\"", "true"})
      refused(craft(std::string(R"({"t":{"dtype":"F32","shape":[)") + dim +
                        R"(],"data_offsets":[0,8]}})",
                    k8),
              "not a non-negative integer");
    // Regression: the shape product overflowed int64 (UBSan).
    refused(
        craft(R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", k8),
        "overflows 64 bits");
    for (const char* off : {"[0]", "[0,8,8]", "[-1,8]", "[0,8.0]", "\"0,8\""})
      refused(
          craft(std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":)") + off + "}}", k8),
          "two non-negative integers");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", k8), "outside");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", k8), "outside");
    refused(craft(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", k8), "need 12");
  }
  SECTION("the tensors tile the data") {
    const std::string k12(12, '\2');
    refused(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  k12),
            "must not overlap");
    refused(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  k12),
            "must be contiguous");
    refused(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", k8),
            "starts at byte 4");
    refused(craft("{" + t + "}", k8 + "extra"), "extra bytes");
  }
  SECTION("metadata") {
    refused(craft(R"({"__metadata__":[1]})"), "__metadata__ is not a JSON object");
    refused(craft(R"({"__metadata__":{"n":3}})"), "metadata 'n' is not a string");
  }
}

TEST_CASE("safetensors: only regular files are read", "[cpu][io]") {
  const TempDir dir;
  auto at = [&](const std::string& f) { return (dir.path() / f).string(); };
  const std::string fifo = at("m.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Regression: a FIFO passed as a checkpoint blocked for ever.
  CHECK_THROWS_WITH(read_safetensors(fifo), Contains("FIFO") && Contains("not a regular file"));
  CHECK_THROWS_WITH(read_safetensors_metadata(fifo), Contains("FIFO"));
  CHECK_THROWS_WITH(read_safetensors("/dev/zero"), Contains("character device"));
  CHECK_THROWS_WITH(read_safetensors(dir.str()), Contains("directory"));
}

TEST_CASE("safetensors: what write_safetensors writes reads back exactly", "[cpu][io]") {
  StFile f;
  std::vector<uint8_t> f32(12), i64(8), u8 = {1, 2, 3};
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = uint8_t(0xA0 + i);
  for (size_t i = 0; i < i64.size(); ++i) i64[i] = uint8_t(7 * i + 1);
  f.tensors = {{"w", "F32", {3}, f32},
               {"n", "I64", {}, i64},
               {"b", "U8", {1, 3}, u8},
               {"empty", "F64", {0, 4}, {}}};
  f.metadata = {{"format", "pt"}, {"note", "a \"quoted\" value"}};
  const TempDir dir;
  auto at = [&](const std::string& f) { return (dir.path() / f).string(); };
  const std::string path = at("t.safetensors");
  write_safetensors(path, f);

  const StFile all = read_safetensors(path), header = read_safetensors_header(path);
  REQUIRE(all.tensors.size() == f.tensors.size());
  REQUIRE(header.tensors.size() == f.tensors.size());
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    INFO(f.tensors[i].name);
    for (const StFile* g : {&all, &header}) {
      CHECK(g->tensors[i].name == f.tensors[i].name);  // in the order written
      CHECK(g->tensors[i].dtype == f.tensors[i].dtype);
      CHECK(g->tensors[i].shape == f.tensors[i].shape);
    }
    CHECK(all.tensors[i].bytes == f.tensors[i].bytes);
    CHECK(header.tensors[i].bytes.empty());  // the header alone reads no data
  }
  CHECK(all.metadata == f.metadata);
  CHECK(header.metadata == f.metadata);
  CHECK(read_safetensors_metadata(path) == f.metadata);
  REQUIRE(all.find("n") != nullptr);
  CHECK(all.find("n")->bytes == i64);
  CHECK(all.find("absent") == nullptr);

  // The data starts 8-byte aligned: the header length is a multiple of 8, and the data follows it.
  std::string raw;
  {
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    REQUIRE(fp != nullptr);
    char buf[4096];
    for (size_t got; (got = std::fread(buf, 1, sizeof buf, fp)) > 0;) raw.append(buf, got);
    std::fclose(fp);
  }
  REQUIRE(raw.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(raw[size_t(i)])) << (8 * i);
  CHECK(n % 8 == 0);
  CHECK(raw.size() == 8 + n + f32.size() + i64.size() + u8.size());
  CHECK(raw.substr(8 + n, f32.size()) == std::string(f32.begin(), f32.end()));
  CHECK(parse_safetensors(raw, "in memory").find("b")->bytes == u8);

  // A tensor the format cannot hold is refused before anything is written.
  StFile bad = f;
  bad.tensors[0].dtype = "Q7";
  CHECK_THROWS_WITH(write_safetensors(path, bad), Contains("unknown dtype 'Q7'"));
  bad = f;
  bad.tensors[0].bytes.pop_back();
  CHECK_THROWS_WITH(write_safetensors(path, bad), Contains("w") && Contains("11 bytes"));
  CHECK(read_safetensors(path).tensors[0].bytes == f32);
}

TEST_CASE("safetensors: dtype sizes and shapes as the specification has them", "[cpu][io]") {
  CHECK(st_dtype_size("F32") == 4);
  CHECK(st_dtype_size("BF16") == 2);
  CHECK(st_dtype_size("I64") == 8);
  CHECK(st_dtype_size("BOOL") == 1);
  CHECK(st_dtype_size("F8_E4M3") == 1);
  CHECK(st_dtype_size("f32") == 0);  // names are case-sensitive
  CHECK(st_dtype_size("") == 0);
  CHECK(shape_numel({}) == 1);
  CHECK(shape_numel({2, 0, 3}) == 0);
  CHECK(shape_numel({2, 3, 4}) == 24);
  CHECK(shape_str({}) == "[]");
  CHECK(shape_str({2, 3}) == "[2, 3]");
}
