// core/host_device.h — KILN_HD marks functions compiled for the host and for device code alike
// (nvcc, or g++ under the SIMT emulator), and is empty in plain host code.
#pragma once

#if defined(__CUDACC__) || defined(KILN_SIMT)
#define KILN_HD __host__ __device__
#else
#define KILN_HD
#endif
