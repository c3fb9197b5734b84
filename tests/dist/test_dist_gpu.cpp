// tests/dist/test_dist_gpu.cpp — [gpu]: the NCCL backend with one rank on a real GPU
// (KILN_DIST_NCCL=1, set by CTest): the collectives of CUDA tensors go through NCCL on the
// backend's communication stream, and a data-parallel training run of one rank keeps the weights
// of the same run without kiln::dist, bit for bit (a sum over one rank is the identity). Two real
// NCCL ranks need two GPUs; the emulated build tests 2 and 3 ranks through the NCCL shim
// (tests/dist/test_dist.cpp).
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <vector>

#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "tests/dist/blobs.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/eager_step.h"

using kiln::Tensor;
using kiln::test::blobs;
namespace dist = kiln::dist;

namespace {

std::unique_ptr<kiln::Sequential> net_for_test() {
  auto net = std::make_unique<kiln::Sequential>();
  net->emplace<kiln::Flatten>();
  net->emplace<kiln::Linear>(16, 12);
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::Linear>(12, 3);
  net->set_input_shape({1, 4, 4, 1});
  net->init(5);
  net->to(kiln::Device::cuda);
  return net;
}

}  // namespace

TEST_CASE("NCCL, one rank: collectives of CUDA tensors and a data-parallel run", "[gpu][dist]") {
  std::unique_ptr<dist::Communicator> comm = dist::connect();
  REQUIRE(comm->size() == 1);
  REQUIRE(comm->device_backend() == dist::Backend::nccl);

  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * float(i);
  Tensor t = Tensor::from_vector<float>({1000}, v).to(kiln::Device::cuda);
  comm->all_reduce_sum(t);
  CHECK(t.to_vector<float>() == v);
  comm->start_all_reduce_sum(t, 2.f);
  Tensor y = Tensor::full({3}, 7.0, kiln::DType::f32, kiln::Device::cuda);
  comm->start_all_reduce_sum(y);
  comm->wait();
  std::vector<float> twice = v;
  for (float& x : twice) x *= 2;
  CHECK(t.to_vector<float>() == twice);
  CHECK(y.to_vector<float>() == std::vector<float>(3, 7.f));
  comm->broadcast(t, 0);
  comm->all_reduce_average(t);
  CHECK(t.to_vector<float>() == twice);

  // One rank through DataParallelStep against the same training without it.
  const kiln::data::Dataset data = blobs(40);
  kiln::data::LoaderOptions options;
  options.batch_size = 8;
  options.seed = 3;
  kiln::LrSchedule schedule;
  schedule.base_lr = 1e-2;
  auto net = net_for_test(), ref = net_for_test();
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  kiln::Adam ref_adam(ref->flat_params(), ref->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  kiln::EagerStep eager(*net, adam, schedule, kiln::Device::cuda, {.clip = 5});
  kiln::EagerStep ref_step(*ref, ref_adam, schedule, kiln::Device::cuda, {.clip = 5});
  dist::DataParallel dp(*comm, *net, {.bucket_bytes = 256});
  dist::DataParallelStep step(dp, eager);
  kiln::data::Loader loader(data, options), ref_loader(data, options);
  kiln::data::Batch batch, ref_batch;
  kiln::Metrics metrics, ref_metrics;
  loader.start_epoch(0);
  ref_loader.start_epoch(0);
  while (loader.next(batch)) {
    REQUIRE(ref_loader.next(ref_batch));
    step.run(batch, metrics);
    ref_step.run(ref_batch, ref_metrics);
    CHECK(dp.buckets_last_step() > 1);
  }
  const std::vector<float> w = net->flat_params().to_vector<float>();
  const std::vector<float> wr = ref->flat_params().to_vector<float>();
  REQUIRE(w.size() == wr.size());
  CHECK(std::memcmp(w.data(), wr.data(), w.size() * sizeof(float)) == 0);
}
