// tests/simt/asan_oob_main.cpp — runs one planted out-of-bounds kernel (simt_asan_oob.cu):
// `simt_asan_oob shared|global`. Under AddressSanitizer the process must die with a report naming
// simt_asan_oob.cu; without it, it exits normally (the bug is then invisible, which is the point).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

namespace kiln::simt_test {
void shared_oob(float* out);
void global_oob(float* out, int n);
}  // namespace kiln::simt_test

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s shared|global\n", argv[0]);
    return 2;
  }
  float* out = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&out), 100 * sizeof(float));
  if (std::strcmp(argv[1], "shared") == 0)
    kiln::simt_test::shared_oob(out);
  else
    kiln::simt_test::global_oob(out, 100);
  cudaFree(out);
  std::puts("no out-of-bounds access detected");
  return 0;
}
