// data/parallel.h — the one parallel loop of data/ (internal to data/).
//
// The readers and the synthetic generator fill a data set item by item (a CSV row, an image file, a
// generated face), each item into its own slot, so the items can run in any order on any thread.
// They share this loop: OpenMP, as the CPU kernels use, so one setting (OMP_NUM_THREADS) governs
// every thread Kiln starts, and no hand-made pool is left to maintain.
//
// An exception must not leave an OpenMP region (the program would terminate), so each item's
// exception is caught, and after the loop the one of the smallest index is rethrown. Items are
// independent, so that is the error of the first bad item in the data set's order, whatever the
// timing or the number of threads. Once an item has failed, later items are skipped (their outcome
// can no longer matter); earlier ones still run, so a smaller failing index is still found.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln::data::detail {

// Calls fn(i) for every i in [0, n), spread over `threads` OpenMP threads (0 or less: OpenMP's
// default, OMP_NUM_THREADS or else one per core; built without OpenMP, the loop runs on the caller's
// thread). requires: fn(i) writes only what belongs to item i. ensures: every item ran, or the
// exception of the smallest failing i is rethrown.
template <typename Fn>
void parallel_for(size_t n, const Fn& fn, int threads = 0) {
  std::atomic<size_t> first_failed{n};
  std::exception_ptr first_error;
#ifdef _OPENMP
  const int team = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for num_threads(team) schedule(dynamic) if (n > 1)
#else
  (void)threads;
#endif
  for (size_t i = 0; i < n; ++i) {
    if (i > first_failed.load(std::memory_order_relaxed)) continue;
    try {
      fn(i);
    } catch (...) {
#ifdef _OPENMP
#pragma omp critical(kiln_data_parallel_for)
#endif
      if (i < first_failed.load(std::memory_order_relaxed)) {
        first_failed.store(i, std::memory_order_relaxed);
        first_error = std::current_exception();
      }
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace kiln::data::detail
