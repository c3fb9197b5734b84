// tests/dist/fault_rank.cpp — a job in which one rank fails:
//   fault_rank stop|kill|none RANK cpu|cuda CHECKPOINT
// trains nothing, it all-reduces a buffer (in host memory, or on the CUDA device: the NCCL backend
// when built) every few milliseconds; after the third round rank 0 writes CHECKPOINT (the reduced
// buffer, atomically, as a training checkpoint is written; a barrier holds the others until it is
// done), and in the fourth rank RANK stops itself (SIGSTOP:
// hung, the case Kiln's own watchdog must catch) or kills itself (SIGKILL: dead, which mpirun
// notices); with `none` the fault comes from elsewhere (the emulated device's NCCL fault switch,
// KILN_SIMT_NCCL_FAULT). The others must then exit non-zero within a bounded time, naming the
// rank (tests/dist/fault_test.sh checks both).
//   fault_rank check CHECKPOINT RANKS
// then checks, alone, that the checkpoint is still the one written before the fault.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "dist/communicator.h"
#include "io/safetensors.h"

namespace {

constexpr int64_t kElems = 1 << 12;

int check(const std::string& path, int ranks) {
  const kiln::StFile f = kiln::read_safetensors(path);
  const kiln::StTensor* t = f.find("sum");
  if (t == nullptr || t->dtype != "F32" || t->shape != std::vector<int64_t>{kElems}) {
    std::fprintf(stderr, "fault_rank: %s holds no F32 tensor 'sum' of %lld elements\n",
                 path.c_str(), static_cast<long long>(kElems));
    return 1;
  }
  const float* v = reinterpret_cast<const float*>(t->bytes.data());
  for (int64_t i = 0; i < kElems; ++i)
    if (v[i] != float(ranks)) {
      std::fprintf(stderr, "fault_rank: %s: sum[%lld] = %g, not %d\n", path.c_str(),
                   static_cast<long long>(i), double(v[i]), ranks);
      return 1;
    }
  std::printf("fault_rank: %s is intact\n", path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "check") == 0) return check(argv[2], std::stoi(argv[3]));
  const std::string mode = argc == 5 ? argv[1] : "", device = argc == 5 ? argv[3] : "";
  if ((mode != "stop" && mode != "kill" && mode != "none") ||
      (device != "cpu" && device != "cuda")) {
    std::fprintf(stderr,
                 "usage: fault_rank stop|kill|none RANK cpu|cuda CHECKPOINT, or fault_rank check "
                 "CHECKPOINT RANKS\n");
    return 2;
  }
  const int victim = std::stoi(argv[2]);
  const bool cuda = device == "cuda";
  auto comm = kiln::dist::connect();
  if (comm->rank() == 0)
    std::printf("fault_rank: %s tensors over %s\n", cuda ? "CUDA" : "CPU",
                kiln::dist::backend_name(cuda ? comm->device_backend() : comm->backend()));
  std::fflush(stdout);
  kiln::Tensor t = kiln::Tensor::full({kElems}, 1.0, kiln::DType::f32,
                                      cuda ? kiln::Device::cuda : kiln::Device::cpu);
  for (int round = 0; round < 1000; ++round) {
    if (round == 3 && comm->rank() == victim && mode != "none")
      std::raise(mode == "stop" ? SIGSTOP : SIGKILL);
    comm->all_reduce_sum(t);
    if (round == 2 && comm->rank() == 0) {
      const kiln::Tensor host = t.to(kiln::Device::cpu);
      kiln::StTensor sum{"sum", "F32", {kElems}, {}};
      sum.bytes.resize(size_t(kElems) * sizeof(float));
      std::memcpy(sum.bytes.data(), host.data<float>(), sum.bytes.size());
      kiln::write_safetensors(argv[4], {{sum}, {{"round", "2"}}});
    }
    if (round == 2) comm->barrier();  // the checkpoint is written before any rank fails
    t.fill(1.0);
  }
  std::printf("rank %d: all rounds done, no fault seen\n", comm->rank());
  return 0;
}
