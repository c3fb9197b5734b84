// core/file.h — the one way Kiln writes a file: atomically, and durably once it returns.
//
// write_file_atomic(path, bytes):
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

#include <string>
#include <string_view>
#include <vector>

namespace kiln {

void write_file_atomic(const std::string& path, std::string_view bytes);

// True for a file name (no directory) of write_file_atomic's temporaries.
bool is_atomic_temporary(const std::string& name);

// Deletes write_file_atomic's temporaries in `dir` (not its subfolders) left by processes that no
// longer run; returns their paths. A missing `dir` is not an error.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// The test hook above, at a named phase of writing `path`; a no-op unless the variables are set.
void test_phase(const char* phase, const std::string& path);

}  // namespace kiln
