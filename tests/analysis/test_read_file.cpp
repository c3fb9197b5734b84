// tests/analysis/test_read_file.cpp — what analysis/ reads (history.csv, files embedded in the
// report) is read only from regular files.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "analysis/curves.h"
#include "analysis/image.h"

TEST_CASE("analysis reads only regular files: a FIFO or a device is refused", "[cpu]") {
  // Regression: a FIFO as history.csv blocked for ever, /dev/zero filled memory.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kiln_read_file_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string fifo = (dir / "history.csv").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(kiln::analysis::read_history_csv(fifo),
                    Catch::Contains("history.csv") && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(kiln::analysis::read_file("/dev/zero"), Catch::Contains("character device"));
  CHECK_THROWS_WITH(kiln::analysis::read_file((dir / "none").string()),
                    Catch::Contains("does not exist"));
  fs::remove_all(dir);
}
