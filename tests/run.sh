#!/usr/bin/env bash
# tests/run.sh — Kiln's whole test suite from a fresh clone, every step included:
#   1. installs missing Debian packages (cmake/deps.sh),
#   2. builds the library twice in one tree — kernels by nvcc (the product) and by g++ under the SIMT
#      emulator (what the tests run) — plus the tests, examples and benchmarks, and runs every test,
#   3. builds the emulator and kernel-parity tests with AddressSanitizer + UBSan and runs them,
#   4. builds the emulator, kernel-parity and layer tests with ThreadSanitizer (the race detector,
#      docs/simt.md) and runs them: any data race reported fails the step,
#   5. builds the readers' libFuzzer harnesses with clang, replays their seed corpus and fuzzes each
#      with a fixed seed and run count (tests/fuzz/run.sh, docs/fuzzing.md).
# Tests that need a GPU are reported by CTest as skipped on a machine without one, never as passed.
#   KILN_JOBS=N   parallel build/test jobs (default: nproc)
#   KILN_SKIP_SANITIZER=1   skip step 3 (CI never sets it)
#   KILN_SKIP_RACE=1        skip step 4 (CI never sets it)
#   KILN_SKIP_FUZZ=1        skip step 5 (CI never sets it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=${KILN_JOBS:-$(nproc)}
start=$(date +%s)
# Each stage says how long it took, so the suite's cost per stage can be read off a CI log.
stage_start=$start
stage_done() { echo "== kiln: $1 took $(( $(date +%s) - stage_start )) s =="; stage_start=$(date +%s); }

bash "$root/cmake/deps.sh"
stage_done "dependencies"

echo "== kiln: build (nvcc product + emulated variant) =="
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j "$jobs"
echo "== kiln: tests =="
ctest --test-dir "$root/build" -j "$jobs" --output-on-failure --timeout 900
stage_done "main build and tests"

if [[ "${KILN_SKIP_SANITIZER:-0}" != 1 ]]; then
  echo "== kiln: sanitizer build (ASan + UBSan): emulator and kernel-parity tests =="
  cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKILN_SANITIZE=ON -DKILN_NVCC=OFF -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCH=OFF >/dev/null
  cmake --build "$root/build-asan" -j "$jobs" --target kiln_tests_simt kiln_tests_parity
  ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$root/build-asan" -j "$jobs" --output-on-failure \
    --timeout 1800 -R '^kiln_tests_(simt|parity)|^simt_'
  stage_done "sanitizer stage"
fi
if [[ "${KILN_SKIP_RACE:-0}" != 1 ]]; then
  echo "== kiln: race-detector build (ThreadSanitizer): emulator, kernel-parity, layer and graph-step tests =="
  cmake -S "$root" -B "$root/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKILN_TSAN=ON -DKILN_NVCC=OFF -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCH=OFF >/dev/null
  cmake --build "$root/build-tsan" -j "$jobs" --target kiln_tests_simt kiln_tests_parity \
    kiln_tests_layers kiln_tests_train
  ctest --test-dir "$root/build-tsan" -j "$jobs" --output-on-failure --timeout 1800 \
    -R '^kiln_tests_(simt|parity|layers)|^simt_race|^kiln_tests_train:graph step'
  stage_done "race-detector stage"
fi
if [[ "${KILN_SKIP_FUZZ:-0}" != 1 ]]; then
  echo "== kiln: fuzzing the readers (libFuzzer + ASan + UBSan, fixed seed and runs) =="
  KILN_JOBS=$jobs bash "$root/tests/fuzz/run.sh"
  stage_done "fuzzing stage"
fi
echo "== kiln: all tests done in $(( $(date +%s) - start )) s =="
