// core/file.cpp — see file.h.
#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace kiln
