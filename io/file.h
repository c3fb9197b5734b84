// io/file.h — the one way Kiln reads a data file and the one way it writes any file.
//
// READING. Every reader (checkpoints, CSVs, images) goes through InputFile, so that only regular
// files are read: a FIFO would block a read for ever and /dev/zero never ends, so both are refused
// with an error before the first byte is read. The file is opened without blocking (O_NONBLOCK:
// opening a FIFO with no writer would otherwise wait), then fstat()ed, so the check and the read
// see the same file.
//
// WRITING. write_file_atomic(path, bytes):
//   1. writes `bytes` to a fresh temporary in path's directory, named ".<name>.<pid>-<n>.kiln-tmp"
//      (pid and a per-process counter: two writers never share one);
//   2. fsyncs the temporary (its bytes are on disk before any name points at them);
//   3. renames it over `path` (readers see the old file or the new one, never a torn one);
//   4. fsyncs the directory (the rename itself survives a power cut).
// A failure at any step removes the temporary and throws kiln::Error naming the file and the
// cause; the previous `path` is untouched. A process killed mid-write leaves at most a temporary,
// which remove_stale_temporaries() recognises by its name and deletes.
//
// Test hook (read once per process; docs/checkpoints.md): KILN_TEST_STOP_AT=<phase>[:<glob>][#n]
// raises SIGKILL on the process the n-th time (default 1) it reaches <phase> for a file whose
// name matches <glob> (fnmatch, default "*"); KILN_TEST_PHASE_LOG=<file> appends "<phase> <path>"
// to <file> at every phase, so tests can check the order of the steps, which a kill cannot show
// (the page cache survives a killed process). Phases: after-write, after-fsync, after-rename,
// after-dirsync, and whatever callers pass to test_phase().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

void write_file_atomic(const std::string& path, std::string_view bytes);

// True for a file name (no directory) of write_file_atomic's temporaries.
bool is_atomic_temporary(const std::string& name);

// Deletes write_file_atomic's temporaries in `dir` (not its subfolders) left by processes that no
// longer run; returns their paths. A missing `dir` is not an error.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// The test hook above, at a named phase of writing `path`; a no-op unless the variables are set.
void test_phase(const char* phase, const std::string& path);

}  // namespace kiln
