// dist/launch.cpp — see launch.h.
#include "dist/launch.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace kiln::dist {

namespace {

struct Names {
  const char *launcher, *size, *rank, *local_rank, *local_size;
};
constexpr Names kLaunchers[] = {
    {"mpirun", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"pmi", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
    {"slurm", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
};

// The integer in variable `name`, or `fallback` when it is unset; throws when it is not a number.
int read_int(const std::function<const char*(const char*)>& env, const char* name, int fallback) {
  const char* v = env(name);
  if (v == nullptr) return fallback;
  const std::string s(v);
  size_t used = 0;
  long n = -1;
  try {
    n = std::stol(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  // Slurm writes SLURM_NTASKS_PER_NODE as "2(x3)" on uneven jobs: the leading count is this
  // machine's only when the job is even, so anything after the number is refused below.
  KILN_CHECK(used == s.size() && used > 0 && n >= 0 && n <= 1 << 24, "kiln::dist: the launcher's ",
             name, "='", s, "' is not a rank count; start the job with mpirun -np N or srun -n N");
  return static_cast<int>(n);
}

}  // namespace

LaunchInfo launch_info(const std::function<const char*(const char*)>& env_in) {
  const std::function<const char*(const char*)> env =
      env_in ? env_in : [](const char* n) -> const char* { return std::getenv(n); };
  for (const Names& names : kLaunchers) {
    if (env(names.size) == nullptr) continue;
    LaunchInfo info;
    info.launched = true;
    info.launcher = names.launcher;
    info.size = read_int(env, names.size, 1);
    info.rank = read_int(env, names.rank, 0);
    info.local_rank = read_int(env, names.local_rank, info.rank);
    info.local_size = read_int(env, names.local_size, info.size);
    KILN_CHECK(info.size >= 1 && info.rank < info.size, "kiln::dist: the launcher says rank ",
               info.rank, " of ", info.size, " (", names.rank, ", ", names.size,
               "); a rank must be below the job's size");
    KILN_CHECK(info.local_size >= 1 && info.local_rank < info.local_size,
               "kiln::dist: the launcher says local rank ", info.local_rank, " of ",
               info.local_size, " on this machine (", names.local_rank, ", ", names.local_size,
               "); a local rank must be below the local size");
    return info;
  }
  return {};
}

int threads_per_rank(int cores, int local_size) {
  return std::max(1, cores / std::max(1, local_size));
}

}  // namespace kiln::dist
