// tests/io/test_file.cpp — io/file.h: the reader takes only regular files and reads them exactly;
// the atomic writer leaves the new file and nothing else, recognises and removes its own stale
// temporaries, and names the file when it fails. (The order of its steps and a kill at each of
// them are tested end to end in tests/fer_cnn: KILN_TEST_PHASE_LOG and KILN_TEST_STOP_AT are read
// once per process.)
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/file.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using kiln::test::TempDir;

TEST_CASE("read_regular_file: exact bytes, a size limit, clear errors", "[cpu][io]") {
  const TempDir dir;
  auto at = [&](const std::string& f) { return (dir.path() / f).string(); };
  std::string bytes(70000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 131) % 251);
  const std::string path = dir.write("data.bin", bytes);
  CHECK(kiln::read_regular_file(path, "data file") == bytes);
  CHECK(kiln::read_regular_file(path, "data file", "", bytes.size()) == bytes);
  CHECK_THROWS_WITH(kiln::read_regular_file(path, "data file", "", bytes.size() - 1),
                    Catch::Contains("data file") && Catch::Contains("data.bin") &&
                        Catch::Contains("70000 bytes") && Catch::Contains("limit of 69999"));
  CHECK(kiln::read_regular_file(dir.write("empty", ""), "data file").empty());

  CHECK_THROWS_WITH(kiln::read_regular_file(at("none"), "data file"),
                    Catch::Contains("data file") && Catch::Contains("does not exist") &&
                        Catch::Contains("check the path"));
  CHECK_THROWS_WITH(kiln::read_regular_file(at("none"), "data file", "make one first"),
                    Catch::Contains("does not exist: make one first"));
  const std::string fifo = at("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Regression: a FIFO blocked the reader for ever, /dev/zero filled memory.
  CHECK_THROWS_WITH(kiln::read_regular_file(fifo, "data file"),
                    Catch::Contains("FIFO") && Catch::Contains("not a regular file"));
  CHECK_THROWS_WITH(kiln::read_regular_file("/dev/zero", "data file"),
                    Catch::Contains("character device"));
  CHECK_THROWS_WITH(kiln::read_regular_file(dir.str(), "data file"), Catch::Contains("directory"));
}

TEST_CASE("InputFile: a file that shrinks while it is read is an error, not short data",
          "[cpu][io]") {
  const TempDir dir;
  const std::string path = dir.write("shrinks.bin", std::string(4096, 'x'));
  kiln::InputFile in(path, "data file");
  REQUIRE(in.size() == 4096);
  char head[16];
  in.read(head, sizeof head);
  CHECK(std::string(head, sizeof head) == std::string(16, 'x'));
  fs::resize_file(path, 100);
  std::vector<char> rest(4096 - 16);
  CHECK_THROWS_WITH(in.read(rest.data(), rest.size()),
                    Catch::Contains("shrinks.bin") && Catch::Contains("ended early"));
}

TEST_CASE("write_file_atomic: unique temporaries, stale ones removed, clear errors", "[cpu][io]") {
  const TempDir dir;
  auto at = [&](const std::string& f) { return (dir.path() / f).string(); };
  kiln::write_file_atomic(at("a.txt"), "first");
  kiln::write_file_atomic(at("a.txt"), "second");
  CHECK(kiln::read_regular_file(at("a.txt"), "file") == "second");
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);

  CHECK(kiln::is_atomic_temporary(".a.txt.123-0.kiln-tmp"));
  CHECK(kiln::is_atomic_temporary(".best.safetensors.99-12.kiln-tmp"));
  CHECK_FALSE(kiln::is_atomic_temporary("a.txt.tmp-123"));  // the old writer's name: not ours
  CHECK_FALSE(kiln::is_atomic_temporary(".a.txt.kiln-tmp"));
  CHECK_FALSE(kiln::is_atomic_temporary(".a.txt.12x-0.kiln-tmp"));
  CHECK_FALSE(kiln::is_atomic_temporary("notes.kiln-tmp"));

  // A temporary of a process that has exited is stale; a live process's and other files stay.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  // Built by appending: g++ 12 -O2 warns falsely on "literal" + std::string (-Wrestrict).
  std::string stale = ".best.safetensors.", live = stale;
  stale += std::to_string(child) + "-0.kiln-tmp";
  live += std::to_string(::getppid()) + "-0.kiln-tmp";
  for (const std::string& f : {stale, live, std::string("keep.tmp"), std::string(".keep")})
    dir.write(f, "x");
  const std::vector<std::string> removed = kiln::remove_stale_temporaries(dir.str());
  REQUIRE(removed.size() == 1);
  CHECK(removed[0] == at(stale));
  CHECK_FALSE(fs::exists(at(stale)));
  for (const char* f : {"keep.tmp", ".keep", "a.txt"}) CHECK(fs::exists(at(f)));
  CHECK(fs::exists(at(live)));

  CHECK_THROWS_WITH(kiln::write_file_atomic(at("no/such/folder.txt"), "x"),
                    Catch::Contains("no/such/folder.txt") && Catch::Contains("writable"));
}
