// core/file.h — opening files that Kiln reads as data (checkpoints, CSVs, images).
//
// Every reader goes through InputFile, so that only regular files are read: a FIFO would block a
// read for ever and /dev/zero never ends, so both are refused with an error before the first byte
// is read. The file is opened without blocking (O_NONBLOCK: opening a FIFO with no writer would
// otherwise wait), then fstat()ed, so the check and the read see the same file.
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

class InputFile {
 public:
  // Throws kiln::Error naming `what` ("checkpoint", "FER CSV file", ...) and `path` when the file
  // is missing ("... does not exist: <missing_hint>"), unreadable or not a regular file (a
  // directory, FIFO, device or socket).
  InputFile(const std::string& path, const std::string& what, const std::string& missing_hint = "");
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }
  // Reads exactly `bytes` bytes at the current position; throws on a short read (the file shrank
  // since it was opened) or an I/O error.
  void read(void* dst, uint64_t bytes);

 private:
  std::string path_, what_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole of a regular file (see InputFile); `max_bytes` bounds what is read, with an error
// naming the file, its size and the limit when it is larger.
std::string read_regular_file(const std::string& path, const std::string& what,
                              const std::string& missing_hint = "",
                              uint64_t max_bytes = UINT64_MAX);

}  // namespace kiln
