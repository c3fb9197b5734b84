// tests/dist/fault_rank.cpp — a job in which one rank fails: `fault_rank stop|kill RANK` trains
// nothing, it all-reduces a buffer every few milliseconds; after the third round rank RANK stops
// itself (SIGSTOP: hung, the case Kiln's own watchdog must catch) or kills itself (SIGKILL: dead,
// which mpirun notices). The others must then exit non-zero within a bounded time, naming the rank
// (tests/dist/fault_test.sh checks both).
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[1], "stop") != 0 && std::strcmp(argv[1], "kill") != 0)) {
    std::fprintf(stderr, "usage: fault_rank stop|kill RANK\n");
    return 2;
  }
  const int victim = std::stoi(argv[2]);
  auto comm = kiln::dist::connect();
  kiln::Tensor t = kiln::Tensor::full({1 << 12}, 1.0);
  for (int round = 0; round < 1000; ++round) {
    if (round == 3 && comm->rank() == victim) std::raise(argv[1][0] == 's' ? SIGSTOP : SIGKILL);
    comm->all_reduce_sum(t);
    t.fill(1.0);
  }
  std::printf("rank %d: all rounds done, no fault seen\n", comm->rank());
  return 0;
}
