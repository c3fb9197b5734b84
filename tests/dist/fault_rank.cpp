// tests/dist/fault_rank.cpp — a job in which one rank fails: `fault_rank stop|kill RANK [cpu|cuda]`
// trains nothing, it all-reduces a buffer (in host memory, or on the CUDA device: the NCCL backend
// when built) every few milliseconds; after the third round rank RANK stops
// itself (SIGSTOP: hung, the case Kiln's own watchdog must catch) or kills itself (SIGKILL: dead,
// which mpirun notices). The others must then exit non-zero within a bounded time, naming the rank
// (tests/dist/fault_test.sh checks both).
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  const bool cuda = argc == 4 && std::strcmp(argv[3], "cuda") == 0;
  if ((argc != 3 && !(argc == 4 && (cuda || std::strcmp(argv[3], "cpu") == 0))) ||
      (std::strcmp(argv[1], "stop") != 0 && std::strcmp(argv[1], "kill") != 0)) {
    std::fprintf(stderr, "usage: fault_rank stop|kill RANK [cpu|cuda]\n");
    return 2;
  }
  const int victim = std::stoi(argv[2]);
  auto comm = kiln::dist::connect();
  const kiln::Device device = cuda ? kiln::Device::cuda : kiln::Device::cpu;
  if (comm->rank() == 0)
    std::printf("fault_rank: %s tensors over %s\n", cuda ? "CUDA" : "CPU",
                kiln::dist::backend_name(cuda ? comm->device_backend() : comm->backend()));
  std::fflush(stdout);
  kiln::Tensor t = kiln::Tensor::full({1 << 12}, 1.0, kiln::DType::f32, device);
  for (int round = 0; round < 1000; ++round) {
    if (round == 3 && comm->rank() == victim) std::raise(argv[1][0] == 's' ? SIGSTOP : SIGKILL);
    comm->all_reduce_sum(t);
    t.fill(1.0);
  }
  std::printf("rank %d: all rounds done, no fault seen\n", comm->rank());
  return 0;
}
