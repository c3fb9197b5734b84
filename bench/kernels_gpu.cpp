// bench/kernels_gpu.cpp — every Kiln CUDA kernel beside its yardstick, at the flagship's shapes
// (docs/targets.md, "How to measure"), with Google Benchmark.
//
// Shapes: batch 64 and 256; input 1x48x48 and 3x128x128; the five conv 3x3 pad 1 layers
// (64, 128, 256, 512, 512 channels) at their pooled input sizes, batchnorm / LeakyReLU on each conv
// output, 2x2 max pooling and dropout (p 0.25) after it, the linear layers 512*s -> 1024 -> 512 ->
// 7, softmax cross-entropy over 7 classes, Adam over the flagship's parameters (4.96 M / 12.8 M).
//
// Yardsticks, timed in the same process on the same buffers:
//   conv fwd / bwd-data / bwd-filter  cuDNN, two rows: the fastest FMA algorithm cudnnFind...Ex
//                                     returns (its name in the label), and the implicit-GEMM one
//                                     (fwd IMPLICIT_PRECOMP_GEMM, bwd-data ALGO_1, bwd-filter
//                                     ALGO_1: the matrix-product algorithms that form no im2col);
//   batchnorm, pooling, softmax       cuDNN (batchnorm SPATIAL_PERSISTENT, the NHWC fast path);
//   linear                            cuBLAS sgemm;
//   LeakyReLU, dropout, Adam          a device-to-device cudaMemcpy moving the same bytes (the
//                                     memory-bound ceiling; no library has these ops);
//   tensor cores (the *_tc groups)    conv fwd / bwd-data / bwd-filter: cuDNN's fastest tensor-op
//                                     algorithm (CUDNN_TENSOR_OP_MATH, fp32 tensors for TF32, bf16
//                                     tensors with fp32 compute for BF16 — its dw is bf16, Kiln's
//                                     fp32); linear: cublasGemmEx with
//                                     CUBLAS_COMPUTE_32F_FAST_TF32, or bf16 A/B with fp32 compute
//                                     (bf16 C for y and dx, fp32 C for dw). Kiln's rows run the
//                                     kernels of kernels/conv2d_tc.h and kernels/linear_tc.h on the
//                                     same buffers (bf16 arenas hold the bf16 inputs).
// Everywhere else fp32 on both sides, tf32 off: cuDNN convolutions with CUDNN_FMA_MATH (CUDNN_DEFAULT_MATH would
// allow tf32 on Ampere and later) and only FMA results of cudnnFind accepted; cuBLAS with
// CUBLAS_DEFAULT_MATH (sgemm without tf32).
//
// Timing: CUDA events around one launch, L2 flushed (a memset of 4x its size) before each, after
// 3 warm-up launches; `--reps N` launches per row (default 100). Google Benchmark's time is the
// mean (manual time); the counters carry the median: median_us, GFLOP/s and GB/s from it, and
// for Kiln's rows x_<yardstick> = our median / the yardstick's median (below 1: we are faster).
// GB/s counts the compulsory traffic of the op (each input read once, each output written once),
// the same figure for both rows so the two compare directly.
//
// Without a GPU the program prints "no GPU: <reason>" and exits 0 having run nothing.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "bench/flagship.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "core/memory.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "core/rounding.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_tc.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "kernels/linear_tc.h"
#include "kernels/optimizer.h"
#include "kernels/pooling.h"
#include "kernels/softmax_xent.h"

#define BENCH_CUDNN(expr)                                                                       \
  do {                                                                                          \
    const cudnnStatus_t bench_st_ = (expr);                                                     \
    KILN_CHECK(bench_st_ == CUDNN_STATUS_SUCCESS, #expr, ": ", cudnnGetErrorString(bench_st_)); \
  } while (0)
#define BENCH_CUBLAS(expr)                                                    \
  do {                                                                        \
    const cublasStatus_t bench_st_ = (expr);                                  \
    KILN_CHECK(bench_st_ == CUBLAS_STATUS_SUCCESS, #expr, ": cuBLAS status ", \
               static_cast<int>(bench_st_));                                  \
  } while (0)

namespace {

using kiln::bench::Input;

// ---- the device context: handles, events, and read-only random arenas
// ----------------------------

// The largest activation: 256 x 128 x 128 x 64 floats (the first conv's output at 3x128x128).
constexpr size_t kArenaFloats = size_t(256) * 128 * 128 * 64;
constexpr size_t kArenaBytes = kArenaFloats * sizeof(float);
constexpr size_t kWorkspaceBytes = size_t(2) << 30;  // cuDNN algorithms needing more are excluded

struct Gpu {
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  void* flush = nullptr;
  size_t flush_bytes = 0;
  // Inputs (never written): x, dy, weights/parameters, positive values (Adam's v, variances).
  float *x = nullptr, *dy = nullptr, *w = nullptr, *pos = nullptr;
  // Outputs (overwritten by every row).
  float *out = nullptr, *out2 = nullptr, *small = nullptr;
  // bf16 (bits) copies for the BF16 tensor-core rows: inputs x, dy, w and an output.
  uint16_t *xh = nullptr, *dyh = nullptr, *wh = nullptr, *outh = nullptr;
  uint8_t* argmax = nullptr;
  int32_t* labels = nullptr;
  void* workspace = nullptr;
  int reps = 100;
};
Gpu g;

template <typename T = float>
T* device_array(size_t n) {
  void* p = nullptr;
  KILN_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}
float* device_floats(size_t n) {
  return device_array<float>(n);
}

// Fills `n` elements by tiling a random host pattern (never time on zeros): uniform floats in
// [lo, hi), stored as float or as bf16 bits (uint16_t, rounded to nearest even).
template <typename T>
void fill_random(T* dst, size_t n, float lo, float hi, uint32_t seed) {
  const size_t pattern = std::min<size_t>(n, size_t(1) << 24);
  std::vector<T> host(pattern);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (auto& v : host) {
    if constexpr (std::is_same_v<T, float>)
      v = u(gen);
    else
      v = kiln::bf16_bits(u(gen));
  }
  KILN_CUDA_CHECK(cudaMemcpy(dst, host.data(), pattern * sizeof(T), cudaMemcpyHostToDevice));
  for (size_t done = pattern; done < n;) {
    const size_t chunk = std::min(done, n - done);
    KILN_CUDA_CHECK(cudaMemcpy(dst + done, dst, chunk * sizeof(T), cudaMemcpyDeviceToDevice));
    done += chunk;
  }
}

void init_gpu() {
  KILN_CUDA_CHECK(cudaStreamCreate(&g.stream));
  BENCH_CUDNN(cudnnCreate(&g.cudnn));
  BENCH_CUDNN(cudnnSetStream(g.cudnn, g.stream));
  BENCH_CUBLAS(cublasCreate(&g.cublas));
  BENCH_CUBLAS(cublasSetStream(g.cublas, g.stream));
  BENCH_CUBLAS(cublasSetMathMode(g.cublas, CUBLAS_DEFAULT_MATH));  // no tf32
  KILN_CUDA_CHECK(cudaEventCreate(&g.start));
  KILN_CUDA_CHECK(cudaEventCreate(&g.stop));
  int l2 = 0, dev = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&dev));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  g.flush_bytes = std::max<size_t>(size_t(4) * l2, size_t(64) << 20);
  KILN_CUDA_CHECK(cudaMalloc(&g.flush, g.flush_bytes));
  g.x = device_floats(kArenaFloats);
  g.dy = device_floats(kArenaFloats);
  g.w = device_floats(kArenaFloats / 8);
  g.pos = device_floats(kArenaFloats / 8);
  g.out = device_floats(kArenaFloats);
  g.out2 = device_floats(kArenaFloats);
  g.small = device_floats(size_t(1) << 16);
  fill_random(g.x, kArenaFloats, -1.f, 1.f, 1);
  fill_random(g.dy, kArenaFloats, -1.f, 1.f, 2);
  fill_random(g.w, kArenaFloats / 8, -0.05f, 0.05f, 3);
  fill_random(g.pos, kArenaFloats / 8, 0.5f, 1.5f, 4);
  fill_random(g.out, kArenaFloats, -1.f, 1.f, 5);
  fill_random(g.out2, kArenaFloats, -1.f, 1.f, 6);
  fill_random(g.small, size_t(1) << 16, 0.5f, 1.5f, 7);
  g.xh = device_array<uint16_t>(kArenaFloats);
  g.dyh = device_array<uint16_t>(kArenaFloats);
  g.wh = device_array<uint16_t>(kArenaFloats / 8);
  g.outh = device_array<uint16_t>(kArenaFloats);
  fill_random(g.xh, kArenaFloats, -1.f, 1.f, 11);
  fill_random(g.dyh, kArenaFloats, -1.f, 1.f, 12);
  fill_random(g.wh, kArenaFloats / 8, -0.05f, 0.05f, 13);
  fill_random(g.outh, kArenaFloats, -1.f, 1.f, 15);
  KILN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&g.argmax), kArenaFloats / 4));
  KILN_CUDA_CHECK(cudaMemset(g.argmax, 0, kArenaFloats / 4));
  std::vector<int32_t> labels(1024);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>((i * 5 + 3) % 7);
  KILN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&g.labels), labels.size() * 4));
  KILN_CUDA_CHECK(cudaMemcpy(g.labels, labels.data(), labels.size() * 4, cudaMemcpyHostToDevice));
  KILN_CUDA_CHECK(cudaMalloc(&g.workspace, kWorkspaceBytes));
  KILN_CUDA_CHECK(cudaDeviceSynchronize());
}

// ---- timing ------------------------------------------------------------------------------------

std::map<std::string, double>& medians() {
  static std::map<std::string, double> m;
  return m;
}

struct Row {
  std::string group;                    // shape key shared by the rows compared with each other
  std::string impl;                     // "kiln", "cudnn_best", "cudnn_igemm", "cublas", "copy"
  double flops = 0, bytes = 0;          // per launch
  std::vector<std::string> yardsticks;  // impls this row is compared with (Kiln's rows)
};

void time_launches(benchmark::State& st, const Row& row, const std::function<void()>& launch) {
  for (int i = 0; i < 3; ++i) launch();
  KILN_CUDA_CHECK(cudaStreamSynchronize(g.stream));
  std::vector<double> seconds;
  seconds.reserve(g.reps);
  for (auto _ : st) {
    KILN_CUDA_CHECK(
        cudaMemsetAsync(g.flush, static_cast<int>(seconds.size() & 0xff), g.flush_bytes, g.stream));
    KILN_CUDA_CHECK(cudaEventRecord(g.start, g.stream));
    launch();
    KILN_CUDA_CHECK(cudaEventRecord(g.stop, g.stream));
    KILN_CUDA_CHECK(cudaEventSynchronize(g.stop));
    float ms = 0;
    KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, g.start, g.stop));
    st.SetIterationTime(ms * 1e-3);
    seconds.push_back(ms * 1e-3);
  }
  KILN_CUDA_CHECK(cudaGetLastError());
  std::sort(seconds.begin(), seconds.end());
  const size_t n = seconds.size();
  const double med = n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
  medians()[row.group + "/" + row.impl] = med;
  st.counters["median_us"] = med * 1e6;
  if (row.flops > 0) st.counters["GFLOP/s"] = row.flops / med * 1e-9;
  if (row.bytes > 0) st.counters["GB/s"] = row.bytes / med * 1e-9;
  for (const std::string& y : row.yardsticks) {
    const auto it = medians().find(row.group + "/" + y);
    if (it != medians().end() && it->second > 0) st.counters["x_" + y] = med / it->second;
  }
}

// Registers one row; the body sets the label and returns the launch to time (or throws).
void add_row(const Row& row, std::function<std::function<void()>(benchmark::State&)> setup) {
  const std::string name = row.group + "/" + row.impl;
  benchmark::RegisterBenchmark(name.c_str(),
                               [row, setup](benchmark::State& st) {
                                 try {
                                   const std::function<void()> launch = setup(st);
                                   time_launches(st, row, launch);
                                 } catch (const std::exception& e) {
                                   st.SkipWithError(e.what());
                                 }
                               })
      ->UseManualTime()
      ->Iterations(g.reps)
      ->Unit(benchmark::kMicrosecond);
}

// ---- cuDNN descriptors
// ---------------------------------------------------------------------------

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(int n, int c, int h, int w, cudnnTensorFormat_t format = CUDNN_TENSOR_NHWC,
             cudnnDataType_t type = CUDNN_DATA_FLOAT) {
    BENCH_CUDNN(cudnnCreateTensorDescriptor(&d));
    BENCH_CUDNN(cudnnSetTensor4dDescriptor(d, format, type, n, c, h, w));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct ConvDescs {
  TensorDesc x, y;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  // type: the tensors' and filter's data type (fp32, or bf16 with fp32 compute); math: FMA (no
  // tf32) for the fp32 rows, TENSOR_OP for the tensor-core rows.
  explicit ConvDescs(const kiln::Conv2dShape& s, cudnnDataType_t type = CUDNN_DATA_FLOAT,
                     cudnnMathType_t math = CUDNN_FMA_MATH)
      : x(s.n, s.c_in, s.h, s.w, CUDNN_TENSOR_NHWC, type),
        y(s.n, s.c_out, s.out_h(), s.out_w(), CUDNN_TENSOR_NHWC, type) {
    BENCH_CUDNN(cudnnCreateFilterDescriptor(&w));
    // KRSC = Kiln's [C_out][KH][KW][C_in].
    BENCH_CUDNN(
        cudnnSetFilter4dDescriptor(w, type, CUDNN_TENSOR_NHWC, s.c_out, s.c_in, s.kh, s.kw));
    BENCH_CUDNN(cudnnCreateConvolutionDescriptor(&conv));
    BENCH_CUDNN(cudnnSetConvolution2dDescriptor(conv, s.pad_h, s.pad_w, s.stride_h, s.stride_w, 1,
                                                1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    BENCH_CUDNN(cudnnSetConvolutionMathType(conv, math));
  }
  ~ConvDescs() {
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescs(const ConvDescs&) = delete;
  ConvDescs& operator=(const ConvDescs&) = delete;
};

bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

const char* fwd_algo_name(int a) {
  static const char* names[] = {
      "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
      "WINOGRAD",      "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 8 ? names[a] : "?";
}
const char* bwd_data_algo_name(int a) {
  static const char* names[] = {"ALGO_0",     "ALGO_1",   "FFT",
                                "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 6 ? names[a] : "?";
}
const char* bwd_filter_algo_name(int a) {
  static const char* names[] = {
      "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  return a >= 0 && a < 7 ? names[a] : "?";
}

// ---- conv
// ----------------------------------------------------------------------------------------

enum class Dir { fwd, bwd_data, bwd_filter };
const char* dir_name(Dir d) {
  return d == Dir::fwd ? "fwd" : d == Dir::bwd_data ? "bwd_data" : "bwd_filter";
}

// The storage of a tensor-core row's precision.
struct TcPrecision {
  const char* name;  // "tf32" or "bf16"
  bool bf16;
};
constexpr TcPrecision kTcPrecisions[] = {{"tf32", false}, {"bf16", true}};

// One row of cuDNN convolution. `igemm` false: the fastest algorithm cudnnFind...Ex returns of
// FMA math (tc null: fp32, no tf32) or of tensor-op math at precision *tc (fp32 tensors for TF32,
// bf16 tensors — dw too, cuDNN's filter type — with fp32 compute for BF16).
std::function<void()> cudnn_conv(benchmark::State& st, const kiln::Conv2dShape& s, Dir dir,
                                 bool igemm, const TcPrecision* tc = nullptr) {
  const bool bf16 = tc != nullptr && tc->bf16;
  auto d = std::make_shared<ConvDescs>(s, bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT,
                                       tc != nullptr ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH);
  const void* x = bf16 ? static_cast<const void*>(g.xh) : g.x;
  const void* w = bf16 ? static_cast<const void*>(g.wh) : g.w;
  const void* dy = bf16 ? static_cast<const void*>(g.dyh) : g.dy;
  void* out = bf16 ? static_cast<void*>(g.outh) : g.out;
  void* dw = bf16 ? static_cast<void*>(g.outh) : g.out2;
  // The math type cudnnFind's pick must have: tensor-op for the tensor-core rows, FMA otherwise.
  const auto wanted = [tc](cudnnMathType_t m) { return is_tensor_op(m) == (tc != nullptr); };
  std::string algo_name;
  int algo = 0;
  size_t ws = 0;
  if (dir == Dir::fwd) {
    if (igemm) {
      algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    } else {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int count = 0;
      BENCH_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(
          g.cudnn, d->x.d, x, d->w, w, d->conv, d->y.d, out, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
          &count, perf, g.workspace, kWorkspaceBytes));
      int pick = -1;
      for (int i = 0; i < count && pick < 0; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && wanted(perf[i].mathType)) pick = i;
      KILN_CHECK(pick >= 0, "cudnnFind: no ", tc ? "tensor-op" : "FMA",
                 " forward algorithm for this shape");
      algo = perf[pick].algo;
      BENCH_CUDNN(cudnnSetConvolutionMathType(d->conv, perf[pick].mathType));
    }
    algo_name = fwd_algo_name(algo);
    BENCH_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(
        g.cudnn, d->x.d, d->w, d->conv, d->y.d, static_cast<cudnnConvolutionFwdAlgo_t>(algo), &ws));
  } else if (dir == Dir::bwd_data) {
    if (igemm) {
      algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    } else {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      int count = 0;
      BENCH_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(
          g.cudnn, d->w, w, d->y.d, dy, d->conv, d->x.d, out, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
          &count, perf, g.workspace, kWorkspaceBytes));
      int pick = -1;
      for (int i = 0; i < count && pick < 0; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && wanted(perf[i].mathType)) pick = i;
      KILN_CHECK(pick >= 0, "cudnnFind: no ", tc ? "tensor-op" : "FMA",
                 " backward-data algorithm for this shape");
      algo = perf[pick].algo;
      BENCH_CUDNN(cudnnSetConvolutionMathType(d->conv, perf[pick].mathType));
    }
    algo_name = bwd_data_algo_name(algo);
    BENCH_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(
        g.cudnn, d->w, d->y.d, d->conv, d->x.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo),
        &ws));
  } else {
    if (igemm) {
      algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      int count = 0;
      BENCH_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          g.cudnn, d->x.d, x, d->y.d, dy, d->conv, d->w, dw,
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf, g.workspace, kWorkspaceBytes));
      int pick = -1;
      for (int i = 0; i < count && pick < 0; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && wanted(perf[i].mathType)) pick = i;
      KILN_CHECK(pick >= 0, "cudnnFind: no ", tc ? "tensor-op" : "FMA",
                 " backward-filter algorithm for this shape");
      algo = perf[pick].algo;
      BENCH_CUDNN(cudnnSetConvolutionMathType(d->conv, perf[pick].mathType));
    }
    algo_name = bwd_filter_algo_name(algo);
    BENCH_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        g.cudnn, d->x.d, d->y.d, d->conv, d->w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo),
        &ws));
  }
  KILN_CHECK(ws <= kWorkspaceBytes, algo_name, " needs ", ws, " bytes of workspace");
  st.SetLabel(std::string("cuDNN ") + algo_name +
              (tc ? std::string(", tensor-op ") + tc->name : "") + " (no bias)");
  return [d, dir, algo, ws, x, w, dy, out, dw] {
    const float one = 1.f, zero = 0.f;
    if (dir == Dir::fwd)
      BENCH_CUDNN(cudnnConvolutionForward(g.cudnn, &one, d->x.d, x, d->w, w, d->conv,
                                          static_cast<cudnnConvolutionFwdAlgo_t>(algo), g.workspace,
                                          ws, &zero, d->y.d, out));
    else if (dir == Dir::bwd_data)
      BENCH_CUDNN(cudnnConvolutionBackwardData(g.cudnn, &one, d->w, w, d->y.d, dy, d->conv,
                                               static_cast<cudnnConvolutionBwdDataAlgo_t>(algo),
                                               g.workspace, ws, &zero, d->x.d, out));
    else  // beta = 1: accumulate, as Kiln's dw does
      BENCH_CUDNN(cudnnConvolutionBackwardFilter(g.cudnn, &one, d->x.d, x, d->y.d, dy, d->conv,
                                                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo),
                                                 g.workspace, ws, &one, d->w, dw));
  };
}

std::function<void()> kiln_conv(benchmark::State& st, const kiln::Conv2dShape& s, Dir dir) {
  st.SetLabel("Kiln (with bias)");
  const float* bias = g.small;
  return [s, dir, bias] {
    if (dir == Dir::fwd)
      kiln::cuda::conv2d_forward(g.out, g.x, g.w, bias, s, g.stream);
    else if (dir == Dir::bwd_data)
      kiln::cuda::conv2d_backward_data(g.out, g.dy, g.w, s, g.stream);
    else
      kiln::cuda::conv2d_backward_filter(g.out2, g.out, g.dy, g.x, s, g.stream);
  };
}

void register_conv(const Input& in, int n) {
  for (int block = 0; block < 5; ++block) {
    const kiln::Conv2dShape s = kiln::bench::conv_shape(in, n, block);
    for (Dir dir : {Dir::fwd, Dir::bwd_data, Dir::bwd_filter}) {
      if (dir == Dir::bwd_data && block == 0) continue;  // training never needs d(input image)
      Row row;
      row.group = std::string("conv_") + dir_name(dir) + "/" + in.name() + "/b" +
                  std::to_string(n) + "/L" + std::to_string(block + 1) + "_" +
                  std::to_string(s.c_in) + "to" + std::to_string(s.c_out) + "@" +
                  std::to_string(s.h);
      row.flops = kiln::bench::conv_flops(s);
      const double xb = 4.0 * s.n * s.h * s.w * s.c_in;
      const double yb = 4.0 * s.n * s.out_h() * s.out_w() * s.c_out;
      const double wb = 4.0 * s.c_out * s.kh * s.kw * s.c_in;
      row.bytes = xb + yb + wb;
      for (bool igemm : {false, true}) {
        Row r = row;
        r.impl = igemm ? "cudnn_igemm" : "cudnn_best";
        add_row(r, [s, dir, igemm](benchmark::State& st) { return cudnn_conv(st, s, dir, igemm); });
      }
      row.impl = "kiln";
      row.yardsticks = {"cudnn_best", "cudnn_igemm"};
      add_row(row, [s, dir](benchmark::State& st) { return kiln_conv(st, s, dir); });
    }
  }
}

// ---- linear (cuBLAS, column-major: a row-major [r][c] matrix is a column-major c x r one) -----

void register_linear(const Input& in, int n) {
  for (int layer = 0; layer < 3; ++layer) {
    const kiln::LinearShape s = kiln::bench::linear_shape(in, n, layer);
    for (Dir dir : {Dir::fwd, Dir::bwd_data, Dir::bwd_filter}) {
      Row row;
      row.group = std::string("linear_") +
                  (dir == Dir::fwd        ? "fwd"
                   : dir == Dir::bwd_data ? "bwd_data"
                                          : "bwd_weight") +
                  "/" + in.name() + "/b" + std::to_string(n) + "/FC" + std::to_string(layer + 1) +
                  "_" + std::to_string(s.in) + "to" + std::to_string(s.out);
      row.flops = kiln::bench::linear_flops(s);
      row.bytes = 4.0 * (double(s.n) * s.in + double(s.n) * s.out + double(s.in) * s.out);
      row.impl = "cublas";
      add_row(row, [s, dir](benchmark::State& st) -> std::function<void()> {
        st.SetLabel("cuBLAS sgemm, default math (no tf32, no bias)");
        return [s, dir] {
          const float one = 1.f, zero = 0.f;
          if (dir == Dir::fwd)  // y^T (out x n) = W (out x in) . x^T (in x n)
            BENCH_CUBLAS(cublasSgemm(g.cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.out, s.n, s.in, &one,
                                     g.w, s.in, g.x, s.in, &zero, g.out, s.out));
          else if (dir == Dir::bwd_data)  // dx^T (in x n) = W^T (in x out) . dy^T (out x n)
            BENCH_CUBLAS(cublasSgemm(g.cublas, CUBLAS_OP_N, CUBLAS_OP_N, s.in, s.n, s.out, &one,
                                     g.w, s.in, g.dy, s.out, &zero, g.out, s.in));
          else  // dW^T (in x out) += x^T (in x n) . dy (n x out)
            BENCH_CUBLAS(cublasSgemm(g.cublas, CUBLAS_OP_N, CUBLAS_OP_T, s.in, s.out, s.n, &one,
                                     g.x, s.in, g.dy, s.out, &one, g.out2, s.in));
        };
      });
      row.impl = "kiln";
      row.yardsticks = {"cublas"};
      add_row(row, [s, dir](benchmark::State& st) -> std::function<void()> {
        st.SetLabel("Kiln (with bias)");
        return [s, dir] {
          if (dir == Dir::fwd)
            kiln::cuda::linear_forward(g.out, g.x, g.w, g.small, s, g.stream);
          else if (dir == Dir::bwd_data)
            kiln::cuda::linear_backward_data(g.out, g.dy, g.w, s, g.stream);
          else
            kiln::cuda::linear_backward_weight(g.out2, g.small, g.dy, g.x, s, g.stream);
        };
      });
    }
  }
}

// ---- tensor cores: conv forward (cuDNN tensor-op) and linear (cublasGemmEx), TF32 and BF16 -----

void register_conv_tc(const Input& in, int n) {
  for (int block = 0; block < 5; ++block) {
    const kiln::Conv2dShape s = kiln::bench::conv_shape(in, n, block);
    for (Dir dir : {Dir::fwd, Dir::bwd_data, Dir::bwd_filter}) {
      // The first layer's forward stays on the fp32 direct kernel; training never needs its dx.
      if (block == 0 && dir != Dir::bwd_filter) continue;
      for (const TcPrecision& p : kTcPrecisions) {
        Row row;
        row.group = std::string("conv_") + dir_name(dir) + "_tc/" + p.name + "/" + in.name() +
                    "/b" + std::to_string(n) + "/L" + std::to_string(block + 1) + "_" +
                    std::to_string(s.c_in) + "to" + std::to_string(s.c_out) + "@" +
                    std::to_string(s.h);
        row.flops = kiln::bench::conv_flops(s);
        const double elem = p.bf16 ? 2.0 : 4.0;
        row.bytes = elem * (double(s.n) * s.h * s.w * s.c_in +
                            double(s.n) * s.out_h() * s.out_w() * s.c_out +
                            double(s.c_out) * s.kh * s.kw * s.c_in);
        row.impl = "cudnn_tc";
        const TcPrecision* pp = &p;
        add_row(row,
                [s, dir, pp](benchmark::State& st) { return cudnn_conv(st, s, dir, false, pp); });
        row.impl = "kiln";
        row.yardsticks = {"cudnn_tc"};
        add_row(row, [s, dir, p](benchmark::State& st) -> std::function<void()> {
          st.SetLabel(std::string("Kiln tensor cores, ") + p.name +
                      (dir == Dir::fwd ? " (with bias)" : ""));
          return [s, dir, p] {
            if (p.bf16) {
              if (dir == Dir::fwd)
                kiln::cuda::conv2d_forward_bf16(g.outh, g.xh, g.wh, g.small, s, g.stream);
              else if (dir == Dir::bwd_data)
                kiln::cuda::conv2d_backward_data_bf16(g.outh, g.dyh, g.wh, s, g.stream);
              else
                kiln::cuda::conv2d_backward_filter_bf16(g.out2, g.small, g.dyh, g.xh, s, g.stream);
            } else if (dir == Dir::fwd) {
              kiln::cuda::conv2d_forward_tf32(g.out, g.x, g.w, g.small, s, g.stream);
            } else if (dir == Dir::bwd_data) {
              kiln::cuda::conv2d_backward_data_tf32(g.out, g.dy, g.w, s, g.stream);
            } else {
              kiln::cuda::conv2d_backward_filter_tf32(g.out2, g.small, g.dy, g.x, s, g.stream);
            }
          };
        });
      }
    }
  }
}

// C (m x n, column-major) = op(A)·op(B) (+ C when accumulate) on the tensor cores at precision p:
// fp32 operands with TF32 compute, or bf16 operands with fp32 compute and a bf16 C (c_fp32: fp32).
void gemm_tc(TcPrecision p, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
             const void* a, int lda, const void* b, int ldb, bool accumulate, void* c, int ldc,
             bool c_fp32) {
  const float one = 1.f, zero = 0.f;
  const cudaDataType_t ab = p.bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t ct = p.bf16 && !c_fp32 ? CUDA_R_16BF : CUDA_R_32F;
  BENCH_CUBLAS(cublasGemmEx(
      g.cublas, ta, tb, m, n, k, &one, a, ab, lda, b, ab, ldb, accumulate ? &one : &zero, c, ct,
      ldc, p.bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
}

void register_linear_tc(const Input& in, int n) {
  for (int layer = 0; layer < 3; ++layer) {
    const kiln::LinearShape s = kiln::bench::linear_shape(in, n, layer);
    for (Dir dir : {Dir::fwd, Dir::bwd_data, Dir::bwd_filter}) {
      for (const TcPrecision& p : kTcPrecisions) {
        Row row;
        row.group = std::string("linear_") +
                    (dir == Dir::fwd        ? "fwd"
                     : dir == Dir::bwd_data ? "bwd_data"
                                            : "bwd_weight") +
                    "_tc/" + p.name + "/" + in.name() + "/b" + std::to_string(n) + "/FC" +
                    std::to_string(layer + 1) + "_" + std::to_string(s.in) + "to" +
                    std::to_string(s.out);
        row.flops = kiln::bench::linear_flops(s);
        row.bytes = (p.bf16 ? 2.0 : 4.0) *
                    (double(s.n) * s.in + double(s.n) * s.out + double(s.in) * s.out);
        row.impl = "cublas_tc";
        add_row(row, [s, dir, p](benchmark::State& st) -> std::function<void()> {
          st.SetLabel(std::string("cublasGemmEx, ") + p.name + " (no bias)");
          const void* x = p.bf16 ? static_cast<const void*>(g.xh) : g.x;
          const void* w = p.bf16 ? static_cast<const void*>(g.wh) : g.w;
          const void* dy = p.bf16 ? static_cast<const void*>(g.dyh) : g.dy;
          void* out = p.bf16 ? static_cast<void*>(g.outh) : g.out;
          return [s, dir, p, x, w, dy, out] {
            if (dir == Dir::fwd)  // y^T (out x n) = W (out x in) . x^T (in x n)
              gemm_tc(p, CUBLAS_OP_T, CUBLAS_OP_N, s.out, s.n, s.in, w, s.in, x, s.in, false, out,
                      s.out, false);
            else if (dir == Dir::bwd_data)  // dx^T (in x n) = W^T (in x out) . dy^T (out x n)
              gemm_tc(p, CUBLAS_OP_N, CUBLAS_OP_N, s.in, s.n, s.out, w, s.in, dy, s.out, false, out,
                      s.in, false);
            else  // dW^T (in x out) += x^T (in x n) . dy (n x out), fp32
              gemm_tc(p, CUBLAS_OP_N, CUBLAS_OP_T, s.in, s.out, s.n, x, s.in, dy, s.out, true,
                      g.out2, s.in, true);
          };
        });
        row.impl = "kiln";
        row.yardsticks = {"cublas_tc"};
        add_row(row, [s, dir, p](benchmark::State& st) -> std::function<void()> {
          st.SetLabel(std::string("Kiln tensor cores, ") + p.name + " (with bias)");
          return [s, dir, p] {
            if (p.bf16) {
              if (dir == Dir::fwd)
                kiln::cuda::linear_forward_bf16(g.outh, g.xh, g.wh, g.small, s, g.stream);
              else if (dir == Dir::bwd_data)
                kiln::cuda::linear_backward_data_bf16(g.outh, g.dyh, g.wh, s, g.stream);
              else
                kiln::cuda::linear_backward_weight_bf16(g.out2, g.small, g.dyh, g.xh, s, g.stream);
            } else if (dir == Dir::fwd) {
              kiln::cuda::linear_forward_tf32(g.out, g.x, g.w, g.small, s, g.stream);
            } else if (dir == Dir::bwd_data) {
              kiln::cuda::linear_backward_data_tf32(g.out, g.dy, g.w, s, g.stream);
            } else {
              kiln::cuda::linear_backward_weight_tf32(g.out2, g.small, g.dy, g.x, s, g.stream);
            }
          };
        });
      }
    }
  }
}

// ---- batchnorm, pooling, softmax (cuDNN)
// ---------------------------------------------------------

void register_batchnorm(const Input& in, int n) {
  constexpr double kEps = 1e-5, kMomentum = 0.1;
  constexpr cudnnBatchNormMode_t kMode = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
  for (int block = 0; block < 5; ++block) {
    const kiln::Conv2dShape c = kiln::bench::conv_shape(in, n, block);
    const kiln::BatchNormShape s{int64_t(n) * c.out_h() * c.out_w(), c.c_out};
    // [C] vectors in g.small: gamma, beta, running mean, running var, save mean, save invstd,
    // dgamma, dbeta.
    float* v = g.small;
    const int C = s.c;
    for (bool fwd : {true, false}) {
      Row row;
      row.group = std::string(fwd ? "batchnorm_fwd_train/" : "batchnorm_bwd/") + in.name() + "/b" +
                  std::to_string(n) + "/L" + std::to_string(block + 1) + "_" + std::to_string(C) +
                  "@" + std::to_string(c.out_h());
      row.bytes = 4.0 * double(s.m) * C * (fwd ? 2 : 3);
      row.impl = "cudnn";
      add_row(row, [c, v, C, fwd](benchmark::State& st) -> std::function<void()> {
        st.SetLabel("cuDNN BATCHNORM_SPATIAL_PERSISTENT");
        auto xd = std::make_shared<TensorDesc>(c.n, C, c.out_h(), c.out_w());
        auto bd = std::make_shared<TensorDesc>(1, C, 1, 1, CUDNN_TENSOR_NCHW);
        auto forward = [xd, bd, v, C] {
          const float one = 1.f, zero = 0.f;
          BENCH_CUDNN(cudnnBatchNormalizationForwardTraining(
              g.cudnn, kMode, &one, &zero, xd->d, g.x, xd->d, g.out, bd->d, v, v + C, kMomentum,
              v + 2 * C, v + 3 * C, kEps, v + 4 * C, v + 5 * C));
        };
        if (fwd) return forward;
        forward();  // the saved statistics backward reads
        return [xd, bd, v, C] {
          const float one = 1.f, zero = 0.f;
          BENCH_CUDNN(cudnnBatchNormalizationBackward(
              g.cudnn, kMode, &one, &zero, &one, &one, xd->d, g.x, xd->d, g.dy, xd->d, g.out2,
              bd->d, v, v + 6 * C, v + 7 * C, kEps, v + 4 * C, v + 5 * C));
        };
      });
      row.impl = "kiln";
      row.yardsticks = {"cudnn"};
      add_row(row, [s, v, C, fwd](benchmark::State& st) -> std::function<void()> {
        st.SetLabel("Kiln");
        auto forward = [s, v, C] {
          kiln::cuda::batchnorm_forward_train(g.out, v + 4 * C, v + 5 * C, v + 2 * C, v + 3 * C,
                                              g.x, v, v + C, s, kEps, kMomentum, g.stream);
        };
        if (fwd) return forward;
        forward();
        return [s, v, C] {
          kiln::cuda::batchnorm_backward(g.out2, v + 6 * C, v + 7 * C, g.dy, g.x, v, v + 4 * C,
                                         v + 5 * C, s, g.stream);
        };
      });
    }
  }
}

void register_pooling(const Input& in, int n) {
  for (int block = 0; block < 5; ++block) {
    const kiln::Pool2dShape p = kiln::bench::pool_shape(in, n, block);
    const double xb = 4.0 * p.n * p.h * p.w * p.c, yb = 4.0 * p.n * p.out_h() * p.out_w() * p.c;
    for (bool fwd : {true, false}) {
      Row row;
      row.group = std::string(fwd ? "maxpool_fwd/" : "maxpool_bwd/") + in.name() + "/b" +
                  std::to_string(n) + "/L" + std::to_string(block + 1) + "_" + std::to_string(p.c) +
                  "@" + std::to_string(p.h);
      row.bytes = xb + yb;
      row.impl = "cudnn";
      add_row(row, [p, fwd](benchmark::State& st) -> std::function<void()> {
        st.SetLabel("cuDNN POOLING_MAX");
        auto xd = std::make_shared<TensorDesc>(p.n, p.c, p.h, p.w);
        auto yd = std::make_shared<TensorDesc>(p.n, p.c, p.out_h(), p.out_w());
        cudnnPoolingDescriptor_t raw = nullptr;
        BENCH_CUDNN(cudnnCreatePoolingDescriptor(&raw));
        std::shared_ptr<cudnnPoolingStruct> pd(raw, cudnnDestroyPoolingDescriptor);
        BENCH_CUDNN(cudnnSetPooling2dDescriptor(raw, CUDNN_POOLING_MAX, CUDNN_NOT_PROPAGATE_NAN,
                                                p.kh, p.kw, p.pad_h, p.pad_w, p.stride_h,
                                                p.stride_w));
        auto forward = [xd, yd, pd] {
          const float one = 1.f, zero = 0.f;
          BENCH_CUDNN(
              cudnnPoolingForward(g.cudnn, pd.get(), &one, xd->d, g.x, &zero, yd->d, g.out));
        };
        if (fwd) return forward;
        forward();
        return [xd, yd, pd] {
          const float one = 1.f, zero = 0.f;
          BENCH_CUDNN(cudnnPoolingBackward(g.cudnn, pd.get(), &one, yd->d, g.out, yd->d, g.dy,
                                           xd->d, g.x, &zero, xd->d, g.out2));
        };
      });
      row.impl = "kiln";
      row.yardsticks = {"cudnn"};
      add_row(row, [p, fwd](benchmark::State& st) -> std::function<void()> {
        st.SetLabel("Kiln (uint8 argmax)");
        auto forward = [p] { kiln::cuda::maxpool2d_forward(g.out, g.argmax, g.x, p, g.stream); };
        if (fwd) return forward;
        forward();
        return [p] { kiln::cuda::maxpool2d_backward(g.out2, g.dy, g.argmax, p, g.stream); };
      });
    }
  }
}

void register_softmax(int n) {
  const kiln::SoftmaxXentShape s{n, 7};
  Row row;
  row.group = "softmax_xent/b" + std::to_string(n) + "/7classes";
  row.bytes = 4.0 * n * 7 * 2 + 4.0 * n;
  row.impl = "cudnn";
  add_row(row, [n](benchmark::State& st) -> std::function<void()> {
    st.SetLabel("cuDNN log-softmax forward only");
    auto xd = std::make_shared<TensorDesc>(n, 7, 1, 1, CUDNN_TENSOR_NCHW);
    return [xd] {
      const float one = 1.f, zero = 0.f;
      BENCH_CUDNN(cudnnSoftmaxForward(g.cudnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                                      xd->d, g.x, &zero, xd->d, g.out));
    };
  });
  row.impl = "kiln";
  row.yardsticks = {"cudnn"};
  add_row(row, [s](benchmark::State& st) -> std::function<void()> {
    st.SetLabel("Kiln fused loss + dlogits + correct");
    return [s] {
      kiln::cuda::softmax_cross_entropy(g.small, g.out, reinterpret_cast<int32_t*>(g.out2), g.x,
                                        g.labels, s, g.stream);
    };
  });
}

// ---- memory-bound ops beside a copy of the same bytes
// ---------------------------------------------

void add_copy_pair(const std::string& group, double bytes, const char* label,
                   std::function<void()> ours) {
  Row row;
  row.group = group;
  row.bytes = bytes;
  row.impl = "copy";
  const size_t copy_bytes = static_cast<size_t>(bytes / 2) & ~size_t(15);
  add_row(row, [copy_bytes](benchmark::State& st) -> std::function<void()> {
    st.SetLabel("cudaMemcpy D2D moving the same bytes");
    KILN_CHECK(copy_bytes <= 2 * kArenaBytes, "copy too large");
    return [copy_bytes] {  // in two pieces when it exceeds one arena
      const size_t first = std::min(copy_bytes, kArenaBytes);
      KILN_CUDA_CHECK(cudaMemcpyAsync(g.out2, g.x, first, cudaMemcpyDeviceToDevice, g.stream));
      if (copy_bytes > first)
        KILN_CUDA_CHECK(
            cudaMemcpyAsync(g.out, g.dy, copy_bytes - first, cudaMemcpyDeviceToDevice, g.stream));
    };
  });
  row.impl = "kiln";
  row.yardsticks = {"copy"};
  add_row(row, [label, ours](benchmark::State& st) -> std::function<void()> {
    st.SetLabel(label);
    return ours;
  });
}

void register_elementwise(const Input& in, int n) {
  constexpr double kSlope = 0.01;
  constexpr float kP = 0.25f;
  for (int block = 0; block < 5; ++block) {
    const kiln::Conv2dShape c = kiln::bench::conv_shape(in, n, block);
    const kiln::Pool2dShape p = kiln::bench::pool_shape(in, n, block);
    const int64_t act = int64_t(n) * c.out_h() * c.out_w() * c.c_out;  // LeakyReLU: conv output
    const int64_t pooled = int64_t(n) * p.out_h() * p.out_w() * p.c;   // dropout: after pooling
    const std::string tail = "/" + in.name() + "/b" + std::to_string(n) + "/L" +
                             std::to_string(block + 1) + "_" + std::to_string(c.c_out) + "@" +
                             std::to_string(c.out_h());
    add_copy_pair("leaky_relu_fwd" + tail, 8.0 * act, "Kiln",
                  [act] { kiln::cuda::leaky_relu_forward(g.out, g.x, act, kSlope, g.stream); });
    add_copy_pair("leaky_relu_bwd" + tail, 12.0 * act, "Kiln", [act] {
      kiln::cuda::leaky_relu_backward(g.out, g.dy, g.x, act, kSlope, g.stream);
    });
    add_copy_pair("dropout_fwd" + tail, 8.0 * pooled, "Kiln (Philox, no mask stored)", [pooled] {
      kiln::cuda::dropout_forward(g.out, g.x, pooled, kP, 42, 7, g.stream);
    });
    add_copy_pair("dropout_bwd" + tail, 8.0 * pooled, "Kiln (mask regenerated)", [pooled] {
      kiln::cuda::dropout_backward(g.out, g.dy, pooled, kP, 42, 7, g.stream);
    });
  }
}

void register_adam(const Input& in) {
  const int64_t n = kiln::bench::param_count(in);
  // p, m in out / out2; v positive (g.pos); grad in dy: 4 reads and 3 writes of n floats.
  add_copy_pair("adam/" + in.name() + "/" + std::to_string(n) + "params", 28.0 * n,
                "Kiln (one fused launch)", [n] {
                  kiln::AdamParams p;
                  p.step = 10;
                  kiln::cuda::adam_update(g.out, g.out2, g.pos, g.dy, n, p, g.stream);
                });
}

void register_all() {
  for (const Input& in : kiln::bench::inputs()) {
    for (int n : {64, 256}) {
      register_conv(in, n);
      register_linear(in, n);
      register_conv_tc(in, n);
      register_linear_tc(in, n);
      register_batchnorm(in, n);
      register_pooling(in, n);
      register_elementwise(in, n);
    }
    register_adam(in);
  }
  for (int n : {64, 256}) register_softmax(n);
}

}  // namespace

int main(int argc, char** argv) {
  // --reps N (ours, before Google Benchmark's flags): timed launches per row.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--reps=", 7) == 0)
      g.reps = std::max(1, std::atoi(argv[i] + 7));
    else
      args.push_back(argv[i]);
  }
  int args_count = static_cast<int>(args.size());
  if (!kiln::cuda_available()) {
    std::printf("no GPU: %s — kiln_bench_gpu ran nothing\n",
                kiln::cuda_unavailable_reason().c_str());
    return 0;
  }
  try {
    init_gpu();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_bench_gpu: %s\n", e.what());
    return 1;
  }
  benchmark::AddCustomContext("gpu", kiln::cuda_device_name());
  benchmark::AddCustomContext("cudnn", std::to_string(cudnnGetVersion()));
  int cublas_version = 0;
  BENCH_CUBLAS(cublasGetVersion(g.cublas, &cublas_version));
  benchmark::AddCustomContext("cublas", std::to_string(cublas_version));
  benchmark::AddCustomContext("reps", std::to_string(g.reps));
  register_all();
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
