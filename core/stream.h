// core/stream.h — the CUDA stream type without including the CUDA runtime headers.
// Identical to cudaStream_t (`typedef struct CUstream_st* cudaStream_t`), so kernels/*.h can declare
// kiln::cuda:: functions in builds without the CUDA toolkit.
#pragma once

struct CUstream_st;

namespace kiln {
using Stream = CUstream_st*;
}  // namespace kiln
