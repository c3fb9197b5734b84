// tests/simt/simt_only_kernels.h — launchers of the emulator-only test kernels
// (simt_only_kernels.cu).
#pragma once

namespace kiln::simt_test {

// Launches 3 blocks of 128 threads; thread `bad_thread` of block 1 throws kiln::Error after the
// first barrier while its block-mates wait at the second.
void throwing(int bad_thread);

struct ByValue {
  int values[2];
};
// out[t] = scale * (v.values[0] + t + v.values[1]) for t < 8; `scale` converts int -> float.
void args(float* out, int scale, const ByValue& v);

}  // namespace kiln::simt_test
