// io/file.cpp — InputFile, read_regular_file, write_file_atomic and its test hook (see file.h).
#include "io/file.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.h"

namespace kiln {
namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

InputFile::InputFile(const std::string& path, const std::string& what,
                     const std::string& missing_hint)
    : path_(path), what_(what) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT)
    KILN_FAIL(what, " '", path, "' does not exist",
              missing_hint.empty() ? " (check the path)" : ": " + missing_hint);
  KILN_CHECK(fd_ >= 0, "cannot open ", what, " '", path, "': ", std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd_, &st) == 0;
  if (!stat_ok || !S_ISREG(st.st_mode)) {
    const std::string kind = stat_ok ? file_kind(st.st_mode) : std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    KILN_FAIL(what, " '", path, "' is ", kind,
              ", not a regular file: Kiln reads data only from regular files; pass the path of a "
              "file on disk");
  }
  // Reads from a regular file never block; clear the flag anyway so reads behave as usual.
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read(void* dst, uint64_t bytes) {
  auto* p = static_cast<char*>(dst);
  while (bytes > 0) {
    const ssize_t n = ::read(fd_, p, bytes > (1u << 30) ? (1u << 30) : size_t(bytes));
    if (n < 0 && errno == EINTR) continue;
    KILN_CHECK(n >= 0, "cannot read ", what_, " '", path_, "': ", std::strerror(errno));
    KILN_CHECK(n > 0, "cannot read ", what_, " '", path_,
               "': it ended early (was it truncated while being read?)");
    p += n;
    bytes -= static_cast<uint64_t>(n);
  }
}

std::string read_regular_file(const std::string& path, const std::string& what,
                              const std::string& missing_hint, uint64_t max_bytes) {
  InputFile f(path, what, missing_hint);
  KILN_CHECK(f.size() <= max_bytes, what, " '", path, "' has ", f.size(),
             " bytes, more than the limit of ", max_bytes, " bytes");
  std::string bytes(size_t(f.size()), '\0');
  f.read(bytes.data(), f.size());
  return bytes;
}

namespace {

constexpr const char* kTempSuffix = ".kiln-tmp";

struct StopAt {
  std::string phase, glob = "*", log;
  long nth = 1, seen = 0;
  std::mutex mutex;
  StopAt() {
    if (const char* l = std::getenv("KILN_TEST_PHASE_LOG")) log = l;
    const char* s = std::getenv("KILN_TEST_STOP_AT");
    if (!s || !*s) return;
    std::string spec = s;
    if (const size_t hash = spec.rfind('#'); hash != std::string::npos) {
      nth = std::strtol(spec.c_str() + hash + 1, nullptr, 10);
      spec.resize(hash);
    }
    if (const size_t colon = spec.find(':'); colon != std::string::npos) {
      glob = spec.substr(colon + 1);
      spec.resize(colon);
    }
    phase = spec;
  }
};

StopAt& stop_at() {
  static StopAt s;
  return s;
}

std::string base_name(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

std::string parent_dir(const std::string& path) {
  const std::string p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  KILN_CHECK(fd >= 0, "cannot open the folder '", dir, "' to sync it: ", std::strerror(errno));
  // Some file systems cannot sync a directory (EINVAL): their renames are as durable as they get.
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL;
  const int err = errno;
  ::close(fd);
  KILN_CHECK(ok, "cannot sync the folder '", dir, "': ", std::strerror(err));
}

}  // namespace

void test_phase(const char* phase, const std::string& path) {
  StopAt& s = stop_at();
  if (s.phase.empty() && s.log.empty()) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.log.empty()) {
    const std::string line = std::string(phase) + " " + path + "\n";
    const int fd = ::open(s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      (void)!::write(fd, line.data(), line.size());
      ::close(fd);
    }
  }
  if (s.phase == phase && ::fnmatch(s.glob.c_str(), base_name(path).c_str(), 0) == 0 &&
      ++s.seen == s.nth)
    ::raise(SIGKILL);
}

bool is_atomic_temporary(const std::string& name) {
  // ".<name>.<pid>-<n>.kiln-tmp"
  const size_t suffix = std::strlen(kTempSuffix);
  if (name.size() <= suffix + 1 || name[0] != '.' ||
      name.compare(name.size() - suffix, suffix, kTempSuffix) != 0)
    return false;
  const std::string stem = name.substr(0, name.size() - suffix);
  const size_t dot = stem.rfind('.'), dash = stem.rfind('-');
  if (dot == 0 || dot == std::string::npos || dash == std::string::npos || dash < dot + 2 ||
      dash + 1 == stem.size())
    return false;
  for (size_t i = dot + 1; i < stem.size(); ++i)
    if (i != dash && (stem[i] < '0' || stem[i] > '9')) return false;
  return true;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!is_atomic_temporary(name) || !e.is_regular_file(ec)) continue;
    const std::string stem = name.substr(0, name.size() - std::strlen(kTempSuffix));
    const long pid = std::strtol(stem.c_str() + stem.rfind('.') + 1, nullptr, 10);
    // A temporary of a live writer (another process) is in use: leave it.
    if (pid != ::getpid() && pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0) continue;
    if (fs::remove(e.path(), ec)) removed.push_back(e.path().string());
  }
  return removed;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  static std::atomic<long> counter{0};
  const std::string dir = parent_dir(path);
  // Appended piece by piece: g++ 12 -O2 warns falsely on "literal" + std::string (-Wrestrict).
  std::string name = ".";
  name += base_name(path);
  name += '.';
  name += std::to_string(::getpid());
  name += '-';
  name += std::to_string(counter++);
  name += kTempSuffix;
  const std::string tmp = (std::filesystem::path(dir) / name).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  KILN_CHECK(fd >= 0, "cannot write '", path, "' (temporary '", tmp, "'): ", std::strerror(errno),
             " (does the folder exist and is it writable?)");
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    KILN_FAIL(what, " '", path, "' failed: ", std::strerror(err),
              err == ENOSPC ? " (the disk is full: free space and retry)" : "");
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("writing");
    done += static_cast<size_t>(n);
  }
  test_phase("after-write", path);
  if (::fsync(fd) != 0) fail("flushing");
  test_phase("after-fsync", path);
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    KILN_FAIL("cannot replace '", path, "': ", std::strerror(err));
  }
  test_phase("after-rename", path);
  fsync_dir(dir);
  test_phase("after-dirsync", path);
}

}  // namespace kiln
