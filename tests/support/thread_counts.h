// tests/support/thread_counts.h — run a check at several OpenMP thread counts.
//
//   kiln::test::at_thread_counts({1, 3, 8}, [&](int threads) {
//     INFO(threads << " threads");
//     CHECK(load(...) == expected);  // the same result whatever the thread count
//   });
//
// Sets omp_set_num_threads(t) for each t in turn and restores the previous count afterwards (also
// when the check throws). Built without OpenMP, it runs the check once, with threads = 1: that is
// then the only count there is. Catch2-independent: plain C++.
#pragma once

#include <initializer_list>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln::test {

template <typename Check>
void at_thread_counts(std::initializer_list<int> counts, const Check& check) {
#ifdef _OPENMP
  struct Restore {
    int threads = omp_get_max_threads();
    ~Restore() { omp_set_num_threads(threads); }
  } restore;
  for (int t : counts) {
    omp_set_num_threads(t);
    check(t);
  }
#else
  (void)counts;
  check(1);
#endif
}

}  // namespace kiln::test
