// core/simt/nccl_shim.cpp — the NCCL calls Kiln makes (kiln_dist's NCCL backend), for the emulated
// device: implemented over MPI between the processes of an mpirun job, queued on the emulator's
// streams. The declarations are the toolkit's own <nccl.h>; only these definitions differ, so
// dist/nccl_communicator.cpp is compiled unchanged against either.
//
// What it is (docs/distributed.md, "The emulated device's NCCL"):
//   - a communicator is a duplicate of MPI_COMM_WORLD: every rank of the job takes part, with its
//     world rank (NCCL's general subsets of ranks are refused with ncclInvalidUsage); a one-rank
//     communicator needs no MPI at all;
//   - ncclUniqueId is a tag ("kiln-simt-nccl", a random number); ncclCommInitRank checks that every
//     rank was given rank 0's;
//   - ncclAllReduce / ncclBroadcast queue one operation on the stream, in order with the stream's
//     other work (events, cudaStreamWaitEvent, graph capture as for a kernel); when the device
//     thread runs it, it calls MPI_Iallreduce / MPI_Ibcast and polls it to completion. MPI is
//     therefore called from the device's thread: the job needs MPI_THREAD_MULTIPLE;
//   - the emulated device runs one operation at a time, so a collective occupies the device while
//     it waits for its peers: the code path and the stream order are NCCL's, the overlap is not;
//   - an MPI error becomes the communicator's asynchronous error (ncclCommGetAsyncError:
//     ncclSystemError, ncclGetLastError says what); ncclCommAbort makes a collective that is
//     waiting give up at once and later ones do nothing;
//   - ncclCommInitRankConfig with config->blocking = 0 returns ncclInProgress at once and makes the
//     communicator on a thread of its own; ncclCommGetAsyncError says ncclInProgress until it is
//     made, then its result (ncclCommFinalize, for such a communicator, has nothing to flush);
//   - fault injection, for the tests (read at each ncclCommInitRank*; docs/distributed.md):
//     KILN_SIMT_NCCL_FAULT=R:K:system (or :remote) makes rank R's K-th collective (K >= 1, counted
//     from the communicator's first) fail: the communicator's asynchronous error becomes
//     ncclSystemError (ncclRemoteError) and the collective never completes, as a real NCCL
//     kernel whose peer or network failed; KILN_SIMT_NCCL_FAULT=R:init makes rank R's
//     ncclCommInitRank* never return (a rank hung in NCCL's bootstrap). A communicator made under
//     a fault switch says on stderr when it is aborted.
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "device_queue.h"

namespace sd = kiln::simt::detail;

namespace {

constexpr char kMagic[] = "kiln-simt-nccl";
constexpr char kFaultVariable[] = "KILN_SIMT_NCCL_FAULT";

// KILN_SIMT_NCCL_FAULT (see the top of the file): rank `rank`'s collective number `op` fails with
// `error`, or (op == 0) its init never returns.
struct Fault {
  int rank = -1;  // -1: no fault
  int64_t op = 0;
  ncclResult_t error = ncclSuccess;
  std::string text;  // the variable's value, for messages
};

// Reads the fault switch; false (and `why`) when it is set but malformed.
bool read_fault(Fault* fault, std::string* why) {
  *fault = {};
  const char* v = std::getenv(kFaultVariable);
  if (v == nullptr || *v == '\0') return true;
  const std::string s(v);
  const size_t a = s.find(':');
  const size_t b = a == std::string::npos ? a : s.find(':', a + 1);
  char* end = nullptr;
  const long rank = std::strtol(s.c_str(), &end, 10);
  bool good = a != std::string::npos && end == s.c_str() + a && a > 0 && rank >= 0;
  Fault f;
  f.rank = int(rank);
  f.text = s;
  if (good && b == std::string::npos) {
    good = s.compare(a + 1, std::string::npos, "init") == 0;
  } else if (good) {
    const long long op = std::strtoll(s.c_str() + a + 1, &end, 10);
    const std::string kind = s.substr(b + 1);
    good = end == s.c_str() + b && b > a + 1 && op >= 1 && (kind == "system" || kind == "remote");
    f.op = op;
    f.error = kind == "system" ? ncclSystemError : ncclRemoteError;
  }
  if (!good) {
    *why = std::string(kFaultVariable) + "='" + s +
           "' is neither R:init (rank R's init never returns) nor R:K:system or R:K:remote (rank "
           "R's K-th collective fails, K >= 1); unset it to run without a fault";
    return false;
  }
  *fault = f;
  return true;
}

struct State {
  MPI_Comm comm = MPI_COMM_NULL;  // MPI_COMM_NULL for one rank
  int rank = 0, size = 1;
  std::atomic<bool> aborted{false};
  std::atomic<ncclResult_t> async{ncclSuccess};
  std::mutex mu;
  std::string last;  // the last error's explanation
  Fault fault;
  int64_t ops = 0;  // collectives called so far (on the calling thread)

  ~State() {
    // An aborted communicator's peers may be gone: its MPI communicator is left to the exit.
    if (comm != MPI_COMM_NULL && !aborted) MPI_Comm_free(&comm);
  }
};

std::mutex g_mu;
std::string g_last;  // the last error of a call without a communicator

ncclResult_t error(ncclResult_t r, State* st, const std::string& why) {
  std::lock_guard<std::mutex> lock(st != nullptr ? st->mu : g_mu);
  (st != nullptr ? st->last : g_last) = why;
  return r;
}

bool mpi_type(ncclDataType_t t, MPI_Datatype* m, size_t* bytes) {
  switch (t) {
    case ncclFloat32:
      *m = MPI_FLOAT, *bytes = 4;
      return true;
    case ncclFloat64:
      *m = MPI_DOUBLE, *bytes = 8;
      return true;
    case ncclInt32:
      *m = MPI_INT32_T, *bytes = 4;
      return true;
    case ncclInt64:
      *m = MPI_INT64_T, *bytes = 8;
      return true;
    case ncclUint8:
      *m = MPI_UINT8_T, *bytes = 1;
      return true;
    default:
      return false;
  }
}

bool mpi_op(ncclRedOp_t op, MPI_Op* m) {
  switch (op) {
    case ncclSum:
      *m = MPI_SUM;
      return true;
    case ncclProd:
      *m = MPI_PROD;
      return true;
    case ncclMax:
      *m = MPI_MAX;
      return true;
    case ncclMin:
      *m = MPI_MIN;
      return true;
    default:
      return false;
  }
}

// On the device thread: polls a started MPI request until it completes, fails, or the
// communicator is aborted.
void complete(State& st, int started, MPI_Request request, const char* call) {
  if (started == MPI_SUCCESS) {
    for (int spins = 0;; ++spins) {
      if (st.aborted) return;
      int done = 0;
      started = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      if (started != MPI_SUCCESS || done) break;
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (started == MPI_SUCCESS) return;
  }
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(started, text, &len);
  error(ncclSystemError, &st,
        std::string(call) +
            " failed in the emulated device's NCCL: " + std::string(text, size_t(len)));
  st.async = ncclSystemError;
}

}  // namespace

// NCCL's opaque communicator: a handle on the state the queued operations share (an aborted
// handle is freed while its operations may still be draining).
struct ncclComm {
  std::shared_ptr<State> state;
};

namespace {
// The checks every collective makes at the call, as NCCL does.
ncclResult_t check_call(ncclComm_t comm, size_t count, ncclDataType_t type, cudaStream_t stream,
                        MPI_Datatype* m, size_t* bytes) {
  if (comm == nullptr) return error(ncclInvalidArgument, nullptr, "the communicator is NULL");
  State* st = comm->state.get();
  if (st->async == ncclInProgress)
    return error(ncclInvalidUsage, st,
                 "the communicator is still being made: poll ncclCommGetAsyncError until it says "
                 "ncclSuccess before the first collective");
  if (!mpi_type(type, m, bytes))
    return error(ncclInvalidArgument, st,
                 "the emulated device's NCCL moves float32, float64, int32, int64 and uint8 only");
  if (count > size_t(INT32_MAX))
    return error(ncclInvalidArgument, st,
                 "the emulated device's NCCL moves at most 2^31 - 1 elements per call");
  if (sd::check_stream(stream) != cudaSuccess)
    return error(ncclInvalidArgument, st, "the stream is not a stream of the emulated device");
  return ncclSuccess;
}

// Checks a collective's arguments and queues it on `stream`: when the device runs it, `start`
// (State&, MPI type, element bytes, MPI_Request*) does the local part and starts the MPI call (or
// leaves the request null when there is none), which is then polled to completion.
template <typename Start>
ncclResult_t queue_collective(ncclComm_t comm, size_t count, ncclDataType_t datatype,
                              cudaStream_t stream, const char* call, Start start) {
  MPI_Datatype type;
  size_t bytes = 0;
  if (const ncclResult_t r = check_call(comm, count, datatype, stream, &type, &bytes);
      r != ncclSuccess)
    return r;
  std::shared_ptr<State> st = comm->state;
  const int64_t op = ++st->ops;
  const bool fail = st->fault.rank == st->rank && st->fault.op == op;
  if (count == 0 && !fail) return ncclSuccess;
  sd::enqueue(stream, [st, type, bytes, call, start, op, fail] {
    if (st->aborted) return;
    if (fail) {
      // As a real NCCL kernel whose peer or network failed: the error is the communicator's, the
      // collective never completes (until ncclCommAbort).
      error(st->fault.error, st.get(),
            std::string(kFaultVariable) + "=" + st->fault.text + " failed collective #" +
                std::to_string(op) + " of rank " + std::to_string(st->rank));
      st->async = st->fault.error;
      while (!st->aborted) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return;
    }
    MPI_Request request = MPI_REQUEST_NULL;
    const int started = start(*st, type, bytes, &request);
    // No request: done locally (one rank, which may run without MPI at all).
    if (started != MPI_SUCCESS || request != MPI_REQUEST_NULL)
      complete(*st, started, request, call);
  });
  return ncclSuccess;
}
}  // namespace

extern "C" {

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error";
    case ncclSystemError:
      return "unhandled system error";
    case ncclInternalError:
      return "internal error";
    case ncclInvalidArgument:
      return "invalid argument";
    case ncclInvalidUsage:
      return "invalid usage";
    case ncclRemoteError:
      return "remote process exited or there was a network error";
    case ncclInProgress:
      return "NCCL operation in progress";
    default:
      return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t comm) {
  thread_local std::string copy;
  if (comm == nullptr) {
    std::lock_guard<std::mutex> lock(g_mu);
    copy = g_last;
  } else {
    std::lock_guard<std::mutex> lock(comm->state->mu);
    copy = comm->state->last;
  }
  return copy.c_str();
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId) {
  if (uniqueId == nullptr) return error(ncclInvalidArgument, nullptr, "uniqueId is NULL");
  std::memset(uniqueId->internal, 0, sizeof uniqueId->internal);
  std::memcpy(uniqueId->internal, kMagic, sizeof kMagic);
  std::random_device seed;
  const uint64_t tag = (uint64_t(seed()) << 32) ^ seed() ^ uint64_t(getpid());
  std::memcpy(uniqueId->internal + sizeof kMagic, &tag, sizeof tag);
  return ncclSuccess;
}

namespace {
// The collective part of making a communicator (over MPI for several ranks); errors are `st`'s.
ncclResult_t make_comm(State* st, ncclUniqueId commId) {
  if (st->size == 1) return ncclSuccess;
  int initialised = 0, level = 0, world = 0, me = 0;
  MPI_Initialized(&initialised);
  if (!initialised)
    return error(ncclInvalidUsage, st,
                 "the emulated device's NCCL runs over MPI: start the job with mpirun and "
                 "initialise MPI first");
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE)
    return error(ncclInvalidUsage, st,
                 "the emulated device's NCCL calls MPI from the device thread: initialise MPI "
                 "with MPI_THREAD_MULTIPLE");
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (world != st->size || me != st->rank)
    return error(ncclInvalidUsage, st,
                 "the emulated device's NCCL makes communicators of the whole MPI job only, each "
                 "rank with its MPI rank");
  if (MPI_Comm_dup(MPI_COMM_WORLD, &st->comm) != MPI_SUCCESS)
    return error(ncclSystemError, st, "MPI_Comm_dup failed");
  MPI_Comm_set_errhandler(st->comm, MPI_ERRORS_RETURN);
  // Every rank must hold rank 0's id (as NCCL requires); a rank that does not fails, and so do
  // the others.
  ncclUniqueId root = commId;
  int any = 0;
  if (MPI_Bcast(root.internal, int(sizeof root.internal), MPI_BYTE, 0, st->comm) != MPI_SUCCESS)
    return error(ncclSystemError, st, "the id exchange over MPI failed");
  int differs = std::memcmp(root.internal, commId.internal, sizeof root.internal) != 0;
  if (MPI_Allreduce(&differs, &any, 1, MPI_INT, MPI_MAX, st->comm) != MPI_SUCCESS)
    return error(ncclSystemError, st, "the id exchange over MPI failed");
  if (any != 0)
    return error(ncclInvalidUsage, st,
                 "the ranks were given different unique ids: broadcast rank 0's to every rank");
  return ncclSuccess;
}

// ncclCommInitRank and ncclCommInitRankConfig: blocking, or (blocking = false) ncclInProgress at
// once with the communicator made on a thread of its own.
ncclResult_t init_rank(ncclComm_t* comm, int nranks, const ncclUniqueId& commId, int rank,
                       bool blocking) {
  if (comm == nullptr) return error(ncclInvalidArgument, nullptr, "comm is NULL");
  *comm = nullptr;
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return error(ncclInvalidArgument, nullptr, "rank is not below nranks");
  if (std::memcmp(commId.internal, kMagic, sizeof kMagic) != 0)
    return error(
        ncclInvalidArgument, nullptr,
        "the unique id was not made by ncclGetUniqueId (broadcast rank 0's to every rank)");
  auto st = std::make_shared<State>();
  st->rank = rank;
  st->size = nranks;
  std::string why;
  if (!read_fault(&st->fault, &why)) return error(ncclInvalidArgument, nullptr, why);
  if (st->fault.rank == rank && st->fault.op == 0)
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // the injected hang
  if (blocking) {
    if (const ncclResult_t r = make_comm(st.get(), commId); r != ncclSuccess)
      return error(r, nullptr, st->last);
    *comm = new ncclComm{std::move(st)};
    return ncclSuccess;
  }
  st->async = ncclInProgress;
  *comm = new ncclComm{st};
  std::thread([st, commId] { st->async = make_comm(st.get(), commId); }).detach();
  return ncclInProgress;
}
}  // namespace

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank) {
  return init_rank(comm, nranks, commId, rank, /*blocking=*/true);
}

// Of the configuration only `blocking` means anything to the emulated device (unset: blocking).
ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank,
                                    ncclConfig_t* config) {
  const bool blocking =
      config == nullptr || config->blocking == NCCL_CONFIG_UNDEF_INT || config->blocking != 0;
  return init_rank(comm, nranks, commId, rank, blocking);
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
  MPI_Op mop;
  if (!mpi_op(op, &mop))
    return error(
        ncclInvalidArgument, comm != nullptr ? comm->state.get() : nullptr,
        "the emulated device's NCCL reduces with ncclSum, ncclProd, ncclMax, ncclMin only");
  return queue_collective(comm, count, datatype, stream, "MPI_Iallreduce",
                          [=](State& st, MPI_Datatype type, size_t bytes, MPI_Request* request) {
                            if (st.size == 1) {
                              if (sendbuff != recvbuff)
                                std::memmove(recvbuff, sendbuff, count * bytes);
                              return MPI_SUCCESS;
                            }
                            return MPI_Iallreduce(sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff,
                                                  recvbuff, int(count), type, mop, st.comm,
                                                  request);
                          });
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  if (comm != nullptr && (root < 0 || root >= comm->state->size))
    return error(ncclInvalidArgument, comm->state.get(), "root is not a rank of the communicator");
  return queue_collective(comm, count, datatype, stream, "MPI_Ibcast",
                          [=](State& st, MPI_Datatype type, size_t bytes, MPI_Request* request) {
                            if (st.rank == root && sendbuff != recvbuff)
                              std::memmove(recvbuff, sendbuff, count * bytes);
                            if (st.size == 1) return MPI_SUCCESS;
                            return MPI_Ibcast(recvbuff, int(count), type, root, st.comm, request);
                          });
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError) {
  if (comm == nullptr || asyncError == nullptr)
    return error(ncclInvalidArgument, nullptr, "comm or asyncError is NULL");
  *asyncError = comm->state->async;
  return ncclSuccess;
}

// Operations still queued on a stream keep the state alive; they see `aborted` and do nothing.
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  if (comm->state->fault.rank >= 0) {
    std::fprintf(stderr, "kiln-simt-nccl: rank %d: ncclCommAbort\n", comm->state->rank);
    std::fflush(stderr);
  }
  comm->state->aborted = true;
  delete comm;
  return ncclSuccess;
}

// The streams are synchronised by the caller and every operation of the shim's runs on them:
// nothing is left to flush.
ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  if (comm == nullptr) return error(ncclInvalidArgument, nullptr, "the communicator is NULL");
  return ncclSuccess;
}

// As NCCL's: the caller has synchronised the streams it used (the state is freed, and its MPI
// communicator with it, once the last queued operation has run).
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}

}  // extern "C"
