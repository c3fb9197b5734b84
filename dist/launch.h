// dist/launch.h — how this process was started: alone, or as one rank of a job that a launcher
// (Open MPI's mpirun, an MPICH/PMI launcher, Slurm's srun) started. Read from the launcher's
// environment only, so a process started by hand never calls MPI_Init (which, in a "singleton",
// forks a daemon) and works exactly as a Kiln program always has.
#pragma once

#include <functional>
#include <string>

namespace kiln::dist {

struct LaunchInfo {
  bool launched = false;   // a launcher started this process (even as a job of one rank)
  std::string launcher;    // "mpirun", "pmi", "slurm"; empty when not launched
  int rank = 0, size = 1;  // in the job
  int local_rank = 0, local_size = 1;  // on this machine: picks the GPU, divides the cores
};

// Reads the variables each launcher sets, the first found in this order:
//   Open MPI:  OMPI_COMM_WORLD_SIZE, _RANK, _LOCAL_RANK, _LOCAL_SIZE
//   PMI:       PMI_SIZE, PMI_RANK, MPI_LOCALRANKID, MPI_LOCALNRANKS (MPICH's Hydra)
//   Slurm:     SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS_PER_NODE
// A missing local value is taken as the whole job on one machine. Throws kiln::Error naming the
// variable when one is present but not a number or out of range. `env` is getenv by default
// (tests pass their own).
LaunchInfo launch_info(const std::function<const char*(const char*)>& env = {});

// The OpenMP threads each rank should run: the cores of the machine divided among its local ranks,
// at least 1 (3 ranks on 2 cores run one thread each, not two).
int threads_per_rank(int cores, int local_size);

}  // namespace kiln::dist
