// dist/backends.h — internal: the backends connect() chooses between (not installed).
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace kiln::dist {

// MPI over the launcher's job (dist/mpi_communicator.cpp); only in a build with MPI.
std::unique_ptr<Communicator> connect_mpi(const LaunchInfo& info);

}  // namespace kiln::dist
