#!/usr/bin/env bash
# tests/fuzz/run.sh — the fuzzing stage of tests/run.sh (docs/fuzzing.md):
#   1. builds the libFuzzer harnesses with clang (ASan + UBSan) in build-fuzz/, a project of its own
#      that compiles only the readers and what they need,
#   2. replays the seed corpus (tests/fuzz/corpus/<fuzzer>/): every file must pass,
#   3. fuzzes each harness for a fixed number of runs from a fixed seed, so that the stage is
#      reproducible and never fails an unrelated commit by chance.
#   KILN_FUZZ_RUNS=N        runs per harness (default 10000)
#   KILN_FUZZ_SEED=N        the fuzzers' seed (default 1)
#   KILN_JOBS=N             build jobs (default: nproc)
# New inputs the fuzzers find go to a temporary folder, never into the kept corpus.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${KILN_FUZZ_BUILD:-$root/build-fuzz}
jobs=${KILN_JOBS:-$(nproc)}
runs=${KILN_FUZZ_RUNS:-10000}
seed=${KILN_FUZZ_SEED:-1}
fuzzers=(fuzz_fer_csv fuzz_image fuzz_safetensors fuzz_model_state fuzz_training_state fuzz_onnx)
start=$(date +%s)

clang=$(command -v clang++-14 || command -v clang++ || true)
[[ -n $clang ]] || { echo "kiln fuzz: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$clang" >/dev/null
cmake --build "$build" -j "$jobs" --target "${fuzzers[@]}"
echo "kiln fuzz: built in $(( $(date +%s) - start )) s"

# Any allocation above 256 MB from an input of at most 4 KB is a finding: readers must bound their
# memory by what the input holds.
opts=(-max_len=4096 -timeout=20 -rss_limit_mb=1536 -malloc_limit_mb=256 -print_final_stats=1)
export OMP_NUM_THREADS=1  # one thread: deterministic and no idle pool per execution
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for f in "${fuzzers[@]}"; do
  corpus="$root/tests/fuzz/corpus/$f"
  # Replay: each kept file once, then fuzz from them; new inputs go to $work/$f.
  "$build/$f" "${opts[@]}" -runs=0 "$corpus" >"$work/$f.replay.log" 2>&1 ||
    { cat "$work/$f.replay.log"; echo "kiln fuzz: $f failed on its seed corpus" >&2; exit 1; }
  mkdir -p "$work/$f"
  if ! "$build/$f" "${opts[@]}" -seed="$seed" -runs="$runs" -artifact_prefix="$work/" \
      "$work/$f" "$corpus" >"$work/$f.log" 2>&1; then
    tail -n 60 "$work/$f.log"
    echo "kiln fuzz: $f found a failure (seed $seed); reproduce with: $build/$f $work/<crash file>" >&2
    mkdir -p "$build/artifacts" && cp "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-* \
      "$build/artifacts/" 2>/dev/null || true
    exit 1
  fi
  echo "kiln fuzz: $f: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/$f.log" | grep -o '[0-9]*$') executions, $(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$work/$f.log" | tail -1)"
done
echo "kiln fuzz: done in $(( $(date +%s) - start )) s"
