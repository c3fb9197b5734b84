// tests/parity/test_workspace_streams.cpp — the per-stream workspace and the current stream.
//
// Every CUDA op of the functional API is run as the first op on an empty workspace (after
// kiln::reset_workspace()), so each one grows its stream's area from nothing: an op that asks for
// workspace twice would free the first answer (AddressSanitizer: heap-use-after-free, in the
// sanitizer build that runs this suite) or alias it. Its results must equal, bit for bit, a run
// with a workspace already far larger than needed, and match the CPU float path. Then every op runs
// on a stream of its own, set as the current stream, and must give the legacy stream's bits while
// leaving the legacy stream's workspace untouched.
//
// Built twice like every parity test (tests/parity/CMakeLists.txt): under the SIMT emulator and,
// with KILN_TEST_GPU, natively on a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/memory.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "core/workspace_counters.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/optimizer.h"
#include "kernels/pooling.h"
#include "kernels/softmax_xent.h"
#include "tests/support/parity.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

namespace {

using kiln::Device;
using kiln::DType;
using kiln::Shape;
using kiln::Tensor;
using namespace kiln::test;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor full(Shape shape, double value, Device device) {
  return Tensor::full(shape, value, DType::f32, device);
}

template <typename... T>
std::vector<Tensor> outputs(T&&... t) {
  std::vector<Tensor> v;
  (v.push_back(std::move(t)), ...);
  return v;
}

// One op of the functional API: builds its inputs on `device` (the same values for every device),
// pre-fills its outputs (NaN where overwritten, a constant where accumulated), runs, and returns
// every tensor it writes.
struct Op {
  const char* name;
  std::function<std::vector<Tensor>(Device)> run;
};

const std::vector<Op>& functional_ops() {
  static const std::vector<Op> ops = {
      {"scale",
       [](Device d) {
         Tensor x = uniform_tensor({1001}, 1, d);
         kiln::scale(x, 0.75);
         return outputs(std::move(x));
       }},
      {"bias_add",
       [](Device d) {
         Tensor y = uniform_tensor({37, 64}, 2, d), b = uniform_tensor({64}, 3, d);
         kiln::bias_add(y, b);
         return outputs(std::move(y));
       }},
      {"l2_norm",  // 300001 elements: 74 partial sums, more than the smallest area (256 bytes)
       [](Device d) {
         const double norm = kiln::l2_norm(uniform_tensor({300001}, 4, d));
         return outputs(Tensor::full({1}, norm, DType::f64, Device::cpu));
       }},
      {"leaky_relu_forward",
       [](Device d) {
         Tensor y = full({3, 5, 7, 8}, kNaN, d);
         kiln::leaky_relu_forward(y, uniform_tensor({3, 5, 7, 8}, 5, d), 0.1);
         return outputs(std::move(y));
       }},
      {"leaky_relu_backward",
       [](Device d) {
         Tensor dx = full({3, 5, 7, 8}, kNaN, d);
         kiln::leaky_relu_backward(dx, uniform_tensor({3, 5, 7, 8}, 6, d),
                                   uniform_tensor({3, 5, 7, 8}, 7, d), 0.1);
         return outputs(std::move(dx));
       }},
      {"batchnorm_forward_train",
       [](Device d) {
         Tensor y = full({64, 4, 4, 16}, kNaN, d), mean = full({16}, kNaN, d),
                invstd = full({16}, kNaN, d), rmean = full({16}, 0.0, d), rvar = full({16}, 1.0, d);
         kiln::batchnorm_forward_train(y, mean, invstd, rmean, rvar,
                                       uniform_tensor({64, 4, 4, 16}, 8, d),
                                       uniform_tensor({16}, 9, d), uniform_tensor({16}, 10, d));
         return outputs(std::move(y), std::move(mean), std::move(invstd), std::move(rmean),
                        std::move(rvar));
       }},
      {"batchnorm_forward_eval",
       [](Device d) {
         Tensor y = full({64, 4, 4, 16}, kNaN, d);
         kiln::batchnorm_forward_eval(y, uniform_tensor({64, 4, 4, 16}, 11, d),
                                      uniform_tensor({16}, 12, d), uniform_tensor({16}, 13, d),
                                      uniform_tensor({16}, 14, d),
                                      uniform_tensor({16}, 15, d, 0.5f, 1.5f));
         return outputs(std::move(y));
       }},
      {"batchnorm_backward",
       [](Device d) {
         Tensor dx = full({64, 4, 4, 16}, kNaN, d), dgamma = full({16}, 0.25, d),
                dbeta = full({16}, 0.25, d);
         kiln::batchnorm_backward(
             dx, dgamma, dbeta, uniform_tensor({64, 4, 4, 16}, 16, d),
             uniform_tensor({64, 4, 4, 16}, 17, d), uniform_tensor({16}, 18, d),
             uniform_tensor({16}, 19, d, -0.1f, 0.1f), uniform_tensor({16}, 20, d, 0.5f, 1.5f));
         return outputs(std::move(dx), std::move(dgamma), std::move(dbeta));
       }},
      {"batchnorm_backward_eval",
       [](Device d) {
         Tensor dx = full({64, 4, 4, 16}, kNaN, d);
         kiln::batchnorm_backward_eval(dx, uniform_tensor({64, 4, 4, 16}, 21, d),
                                       uniform_tensor({16}, 22, d),
                                       uniform_tensor({16}, 23, d, 0.5f, 1.5f));
         return outputs(std::move(dx));
       }},
      {"conv2d_forward",  // one 6×6×64 image, 64 filters: a one-tile product that splits K
       [](Device d) {
         Tensor y = full({1, 6, 6, 64}, kNaN, d), b = uniform_tensor({64}, 24, d);
         kiln::conv2d_forward(y, uniform_tensor({1, 6, 6, 64}, 25, d),
                              uniform_tensor({64, 3, 3, 64}, 26, d), &b, {1, 1, 1, 1});
         return outputs(std::move(y));
       }},
      {"conv2d_backward_data",
       [](Device d) {
         Tensor dx = full({1, 6, 6, 64}, kNaN, d);
         kiln::conv2d_backward_data(dx, uniform_tensor({1, 6, 6, 64}, 27, d),
                                    uniform_tensor({64, 3, 3, 64}, 28, d), {1, 1, 1, 1});
         return outputs(std::move(dx));
       }},
      {"conv2d_backward_filter",
       [](Device d) {
         Tensor dw = full({16, 3, 3, 16}, 0.5, d), db = full({16}, 0.5, d);
         kiln::conv2d_backward_filter(dw, &db, uniform_tensor({8, 6, 6, 16}, 29, d),
                                      uniform_tensor({8, 6, 6, 16}, 30, d), {1, 1, 1, 1});
         return outputs(std::move(dw), std::move(db));
       }},
      {"dropout_forward",
       [](Device d) {
         Tensor y = full({4099}, kNaN, d);
         kiln::dropout_forward(y, uniform_tensor({4099}, 31, d), 0.3f, 7, 3);
         return outputs(std::move(y));
       }},
      {"dropout_backward",
       [](Device d) {
         Tensor dx = full({4099}, kNaN, d);
         kiln::dropout_backward(dx, uniform_tensor({4099}, 32, d), 0.3f, 7, 3);
         return outputs(std::move(dx));
       }},
      {"linear_forward",  // 4 rows, 1024 inputs: a one-tile product that splits K
       [](Device d) {
         Tensor y = full({4, 32}, kNaN, d), b = uniform_tensor({32}, 33, d);
         kiln::linear_forward(y, uniform_tensor({4, 1024}, 34, d),
                              uniform_tensor({32, 1024}, 35, d), &b);
         return outputs(std::move(y));
       }},
      {"linear_backward_data",
       [](Device d) {
         Tensor dx = full({4, 1024}, kNaN, d);
         kiln::linear_backward_data(dx, uniform_tensor({4, 32}, 36, d),
                                    uniform_tensor({32, 1024}, 37, d));
         return outputs(std::move(dx));
       }},
      {"linear_backward_weight",
       [](Device d) {
         Tensor dw = full({32, 256}, 0.5, d), db = full({32}, 0.5, d);
         kiln::linear_backward_weight(dw, &db, uniform_tensor({512, 32}, 38, d),
                                      uniform_tensor({512, 256}, 39, d));
         return outputs(std::move(dw), std::move(db));
       }},
      {"sgd_update",
       [](Device d) {
         Tensor param = uniform_tensor({1001}, 40, d), buf = full({1001}, 0.1, d);
         kiln::SgdParams p;
         p.lr = 0.1f;
         p.momentum = 0.9f;
         p.step = 2;
         kiln::sgd_update(param, &buf, uniform_tensor({1001}, 41, d), p);
         return outputs(std::move(param), std::move(buf));
       }},
      {"adam_update",
       [](Device d) {
         Tensor param = uniform_tensor({1001}, 42, d), m = full({1001}, 0.0, d),
                v = full({1001}, 0.0, d);
         kiln::adam_update(param, m, v, uniform_tensor({1001}, 43, d), kiln::AdamParams{});
         return outputs(std::move(param), std::move(m), std::move(v));
       }},
      {"maxpool2d_forward",
       [](Device d) {
         Tensor y = full({2, 4, 4, 8}, kNaN, d);
         Tensor argmax = Tensor::full({2, 4, 4, 8}, 255, DType::u8, d);
         kiln::maxpool2d_forward(y, argmax, uniform_tensor({2, 8, 8, 8}, 44, d), {});
         return outputs(std::move(y), std::move(argmax));
       }},
      {"maxpool2d_backward",
       [](Device d) {
         std::vector<uint8_t> where(2 * 4 * 4 * 8);
         for (size_t i = 0; i < where.size(); ++i) where[i] = static_cast<uint8_t>(i * 7 % 4);
         Tensor dx = full({2, 8, 8, 8}, kNaN, d);
         kiln::maxpool2d_backward(dx, uniform_tensor({2, 4, 4, 8}, 45, d),
                                  Tensor::from_vector<uint8_t>({2, 4, 4, 8}, where, d), {});
         return outputs(std::move(dx));
       }},
      {"softmax_cross_entropy",
       [](Device d) {
         const std::vector<int32_t> labels = {0, 6, 3, 3, 1, 2, 5, 4, 0};
         Tensor loss = full({1}, kNaN, d), dlogits = full({9, 7}, kNaN, d);
         Tensor correct = Tensor::full({9}, -1, DType::i32, d);
         kiln::softmax_cross_entropy(loss, &dlogits, &correct,
                                     uniform_tensor({9, 7}, 46, d, -3.f, 3.f),
                                     Tensor::from_vector<int32_t>({9}, labels, d));
         return outputs(std::move(loss), std::move(dlogits), std::move(correct));
       }},
  };
  return ops;
}

using Outputs = std::vector<std::vector<double>>;

Outputs run_values(const Op& op, Device device) {
  Outputs out;
  for (const Tensor& t : op.run(device)) out.push_back(values(t));
  return out;
}

// "" when `agree(got[t][i], ref[t][i])` holds for every element, else the first that fails.
template <typename Agree>
std::string first_mismatch(const Outputs& got, const Outputs& ref, Agree agree) {
  if (got.size() != ref.size()) return "different numbers of outputs";
  for (size_t t = 0; t < got.size(); ++t) {
    if (got[t].size() != ref[t].size()) return "output " + std::to_string(t) + ": sizes differ";
    for (size_t i = 0; i < got[t].size(); ++i)
      if (!agree(got[t][i], ref[t][i]))
        return "output " + std::to_string(t) + "[" + std::to_string(i) +
               "]: " + std::to_string(got[t][i]) + " vs " + std::to_string(ref[t][i]);
  }
  return "";
}

// "" when the two runs agree bit for bit.
std::string first_bit_difference(const Outputs& a, const Outputs& b) {
  return first_mismatch(a, b,
                        [](double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; });
}

// "" when `got` is within 1e-4 + 1e-3·|ref| of the CPU's `ref` everywhere (NaN never is). The CPU
// float path sums in another order, so only closeness is asked.
std::string first_far(const Outputs& got, const Outputs& ref) {
  return first_mismatch(
      got, ref, [](double x, double r) { return std::fabs(x - r) <= 1e-4 + 1e-3 * std::fabs(r); });
}

bool disjoint(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto* pa = static_cast<const char*>(a);
  const auto* pb = static_cast<const char*>(b);
  return pa + a_bytes <= pb || pb + b_bytes <= pa;
}

}  // namespace

TEST_CASE("every CUDA op of the functional API runs right on an empty workspace", PARITY_TAG) {
  REQUIRE(kiln::current_stream() == nullptr);
  for (const Op& op : functional_ops()) {
    INFO(op.name);
    kiln::reset_workspace();
    REQUIRE(kiln::workspace_bytes(nullptr) == 0);
    const auto first = run_values(op, Device::cuda);
    // Again with an area far larger than any op here needs: nothing grows, nothing moves.
    kiln::workspace(size_t{16} << 20, nullptr);
    const auto warm = run_values(op, Device::cuda);
    CHECK(first_bit_difference(first, warm) == "");
    CHECK(first_far(first, run_values(op, Device::cpu)) == "");
  }
}

// The kernels that finish their reduction in their own launch (split-K GEMMs, split column sums)
// count their blocks in the stream's counters and must leave them zero: nothing zeroes them again,
// and a captured graph replays on the same counters. Every op runs twice here, giving the same bits.
TEST_CASE("every CUDA op leaves the stream's reduction counters zero", PARITY_TAG) {
  constexpr int64_t kCounters = 1 << 14;
  for (const Op& op : functional_ops()) {
    INFO(op.name);
    const int* counters = kiln::workspace_counters(kCounters, nullptr);
    const auto first = run_values(op, Device::cuda);
    const auto again = run_values(op, Device::cuda);
    CHECK(first_bit_difference(first, again) == "");
    REQUIRE(kiln::workspace_counters(kCounters, nullptr) == counters);  // nothing grew
    std::vector<int> host(kCounters, -1);
    kiln::copy_bytes(host.data(), Device::cpu, counters, Device::cuda, host.size() * sizeof(int),
                     nullptr);
    CHECK(std::count(host.begin(), host.end(), 0) == kCounters);
  }
}

TEST_CASE("each stream has its own grow-only workspace", PARITY_TAG) {
  kiln::reset_workspace();
  kiln::CudaStream a, b;
  REQUIRE(a.get() != nullptr);
  REQUIRE(b.get() != nullptr);
  REQUIRE(a.get() != b.get());
  constexpr size_t kBytes = 4096;
  void* on_a = kiln::workspace(kBytes, a.get());
  void* on_b = kiln::workspace(kBytes, b.get());
  void* on_legacy = kiln::workspace(kBytes, nullptr);
  CHECK(kiln::workspace_bytes(a.get()) >= kBytes);
  CHECK(disjoint(on_a, kBytes, on_b, kBytes));
  CHECK(disjoint(on_a, kBytes, on_legacy, kBytes));
  CHECK(disjoint(on_b, kBytes, on_legacy, kBytes));
  // A request that fits returns the same area; a larger one grows this stream's area only.
  CHECK(kiln::workspace(kBytes / 2, a.get()) == on_a);
  kiln::workspace(kBytes * 64, a.get());
  CHECK(kiln::workspace_bytes(a.get()) >= kBytes * 64);
  CHECK(kiln::workspace(kBytes, b.get()) == on_b);
  CHECK(kiln::workspace_bytes(b.get()) == kiln::workspace_bytes(nullptr));
  // The area is never smaller than asked and is aligned for float4 and wider loads.
  CHECK(reinterpret_cast<uintptr_t>(kiln::workspace(1, b.get())) % 256 == 0);
  // Destroying a stream frees its area.
  kiln::CudaStream c;
  kiln::Stream handle = c.get();
  kiln::workspace(kBytes, handle);
  REQUIRE(kiln::workspace_bytes(handle) >= kBytes);
  c = kiln::CudaStream();
  CHECK(kiln::workspace_bytes(handle) == 0);
}

TEST_CASE("every op on a current stream of its own gives the legacy stream's results", PARITY_TAG) {
  kiln::CudaStream stream;
  size_t stream_area = 0;
  for (const Op& op : functional_ops()) {
    INFO(op.name);
    const auto legacy = run_values(op, Device::cuda);
    kiln::reset_workspace();
    Outputs on_stream;
    {
      kiln::StreamGuard guard(stream.get());
      REQUIRE(kiln::current_stream() == stream.get());
      on_stream = run_values(op, Device::cuda);
    }
    REQUIRE(kiln::current_stream() == nullptr);
    CHECK(first_bit_difference(legacy, on_stream) == "");
    // The op's temporary memory came from its own stream's area.
    CHECK(kiln::workspace_bytes(nullptr) == 0);
    stream_area = std::max(stream_area, kiln::workspace_bytes(stream.get()));
  }
  CHECK(stream_area > 0);
}

TEST_CASE("copies run on the current stream, and reading one back waits for it", PARITY_TAG) {
  kiln::CudaStream stream;
  const Tensor host = uniform_tensor({4099}, 47, Device::cpu);
  std::vector<float> back;
  {
    kiln::StreamGuard guard(stream.get());
    Tensor x = host.to(Device::cuda);  // host → device
    Tensor y = x.clone();              // device → device, queued after the upload
    kiln::scale(y, 2.0);               // queued after the copy
    Tensor z(y.shape(), DType::f32, Device::cuda);
    z.copy_from(y);
    back = z.to_vector<float>();  // device → host: returns once the stream has run it all
  }
  const std::vector<float> want = host.to_vector<float>();
  REQUIRE(back.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) REQUIRE(back[i] == 2.f * want[i]);
}

TEST_CASE("the current stream is per thread and StreamGuard restores it", PARITY_TAG) {
  REQUIRE(kiln::current_stream() == nullptr);
  auto* fake_a = reinterpret_cast<kiln::Stream>(uintptr_t{0x1000});
  auto* fake_b = reinterpret_cast<kiln::Stream>(uintptr_t{0x2000});
  {
    kiln::StreamGuard outer(fake_a);
    CHECK(kiln::current_stream() == fake_a);
    {
      kiln::StreamGuard inner(fake_b);
      CHECK(kiln::current_stream() == fake_b);
      kiln::Stream seen = fake_a;
      std::thread([&] { seen = kiln::current_stream(); }).join();
      CHECK(seen == nullptr);  // a new thread starts on the legacy stream
    }
    CHECK(kiln::current_stream() == fake_a);
  }
  CHECK(kiln::current_stream() == nullptr);
}
