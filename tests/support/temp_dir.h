// tests/support/temp_dir.h — a uniquely named scratch directory, removed when the test ends, and
// reading a file back whole.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <unistd.h>

namespace kiln::test {

class TempDir {
 public:
  // `name` (optional) goes into the directory's name, to tell which test left it behind.
  explicit TempDir(const std::string& name = "") {
    static std::atomic<int> counter{0};
    auto tick = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() /
            ("kiln_test_" + (name.empty() ? "" : name + "_") + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + "_" + std::to_string(tick));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  // The path of `child` inside the directory, as a string (to paste into a command line).
  std::string operator/(const std::string& child) const { return (path_ / child).string(); }
  // Writes `text` to `child` (creating parent folders) and returns its path.
  std::string write(const std::string& child, const std::string& text) const {
    auto p = path_ / child;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

// The whole content of the file at `path` ("" when it cannot be opened).
inline std::string file_contents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace kiln::test
