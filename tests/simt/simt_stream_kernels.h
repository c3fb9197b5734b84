// tests/simt/simt_stream_kernels.h — launchers of small kernels on a given stream, for the tests of
// the emulator's asynchronous streams (test_simt_streams.cpp).
#pragma once

#include <cuda_runtime.h>

namespace kiln::simt_test {

// out[i] = value for i < n.
void fill_on(cudaStream_t stream, float* out, int n, float value);
// out[i] = a * in[i] + b for i < n.
void affine_on(cudaStream_t stream, float* out, const float* in, int n, float a, float b);
// One block of n <= 1024 threads; thread t writes out[t] = atomicAdd(counter, 1): the order in which
// the threads ran.
void tickets_on(cudaStream_t stream, unsigned* out, unsigned* counter, int n);

}  // namespace kiln::simt_test
