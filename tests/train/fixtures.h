// tests/train/fixtures.h — what the tests of train/ share: a tiny data set, a tiny network, the
// loader's options, a cosine schedule and a quiet progress hook.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/memory.h"
#include "data/loader.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "optim/schedule.h"
#include "train/trainer.h"
#include "tests/support/have_cuda.h"

#if KILN_WITH_CUDA
#include "core/simt/schedule.h"
#endif

namespace kiln::test {

using kiln::data::Batch;
using kiln::data::Dataset;
using kiln::data::Loader;
using kiln::data::LoaderOptions;

// n images of 1 x 4 x 4 in 3 classes: a bright row at 1 + label, noise elsewhere; pixel 0 says
// which image it is (10 * i mod 250), so a batch tells which samples it holds.
inline Dataset faces(int n) {
  Dataset d = Dataset::with_spec({1, 4, 4}, {"a", "b", "c"});
  std::vector<uint8_t> img(16);
  for (int i = 0; i < n; ++i) {
    const int label = i % 3;
    for (int p = 0; p < 16; ++p) img[size_t(p)] = uint8_t((i * 37 + p * 11) % 60);
    for (int x = 0; x < 4; ++x) img[size_t((1 + label) * 4 + x)] = 220;
    img[0] = uint8_t(10 * i % 250);
    d.push_back(img.data(), label);
  }
  return d;
}

inline int source_of(const Batch& b, int i) {
  return int(std::lround(b.images[size_t(i) * 16] * 255.0f)) / 10;
}

// Flatten, Linear 16 -> 8, LeakyReLU, Dropout 0.25 (unless `dropout` is false), Linear 8 -> 3.
inline std::unique_ptr<kiln::Sequential> tiny_net(uint64_t seed, bool dropout = true) {
  auto net = std::make_unique<kiln::Sequential>();
  net->emplace<kiln::Flatten>();
  net->emplace<kiln::Linear>(16, 8);
  net->emplace<kiln::LeakyReLU>(0.01);
  if (dropout) net->emplace<kiln::Dropout>(0.25);
  net->emplace<kiln::Linear>(8, 3);
  net->set_input_shape({1, 4, 4, 1});
  net->init(seed);
  return net;
}

// Sets one weight of `net` (on its device) to NaN: every later forward's loss is not finite.
inline void poison_a_weight(kiln::Sequential& net) {
  kiln::Tensor& params = net.flat_params();
  std::vector<float> v = params.to_vector<float>();
  v[3] = NAN;
  kiln::copy_bytes(params.raw(), params.device(), v.data(), kiln::Device::cpu,
                   v.size() * sizeof(float));
}

inline LoaderOptions loader_options() {
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 3;
  o.augment = {.hflip = true, .max_shift = 1};
  return o;
}

inline kiln::LrSchedule cosine(int64_t total_steps) {
  kiln::LrSchedule s;
  s.kind = kiln::LrSchedule::Kind::cosine;
  s.base_lr = 1e-2;
  s.warmup_steps = 2;
  s.total_steps = total_steps;
  return s;
}

// A progress hook that shows nothing and says when it was asked.
struct Quiet : kiln::ProgressHook {
  int every = 1000000;
  std::vector<kiln::ProgressInfo> shown;
  int ends = 0;
  bool due(int64_t batch, int64_t batches) override {
    return (batch + 1) % every == 0 || batch + 1 == batches;
  }
  void show(const kiln::ProgressInfo& info) override { shown.push_back(info); }
  void end_epoch() override { ++ends; }
};

// Two runs' histories are the same, bit for bit (loss, accuracy and learning rate of every epoch).
inline void check_same_history(const std::vector<kiln::EpochRecord>& got,
                               const std::vector<kiln::EpochRecord>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t e = 0; e < want.size(); ++e) {
    INFO("epoch " << e + 1);
    CHECK(got[e].train_loss == want[e].train_loss);
    CHECK(got[e].train_acc == want[e].train_acc);
    CHECK(got[e].lr == want[e].lr);
  }
}

#if KILN_WITH_CUDA
// Runs f() in the asynchronous and in the adversarial ("check") stream mode.
template <typename F>
void in_stream_modes(F f) {
  for (const kiln::simt::StreamMode mode :
       {kiln::simt::StreamMode::kAsync, kiln::simt::StreamMode::kCheck}) {
    kiln::simt::ScopedStreamMode streams(mode);
    INFO("streams " << kiln::simt::to_string(mode));
    f();
  }
}
#endif

}  // namespace kiln::test
