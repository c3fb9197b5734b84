// tests/analysis/test_read_file.cpp — what analysis/ reads (history.csv, files embedded in the
// report) is read only from regular files.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "analysis/curves.h"
#include "analysis/image.h"
#include "tests/support/temp_dir.h"

TEST_CASE("analysis reads only regular files: a FIFO or a device is refused", "[cpu]") {
  // Regression: a FIFO as history.csv blocked for ever, /dev/zero filled memory.
  namespace fs = std::filesystem;
  const kiln::test::TempDir tmp("read_file");
  const fs::path& dir = tmp.path();
  const std::string fifo = (dir / "history.csv").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(kiln::analysis::read_history_csv(fifo),
                    Catch::Contains("history.csv") && Catch::Contains("FIFO"));
  CHECK_THROWS_WITH(kiln::analysis::read_file("/dev/zero"), Catch::Contains("character device"));
  CHECK_THROWS_WITH(kiln::analysis::read_file((dir / "none").string()),
                    Catch::Contains("does not exist"));
}
