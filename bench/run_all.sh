#!/usr/bin/env bash
# bench/run_all.sh — builds Kiln's benchmarks (Release), runs all of them and writes docs/perf.md.
#
#   bench/run_all.sh                      # build dir build/bench, all cores, docs/perf.md
#   KILN_BENCH_BUILD=/tmp/b KILN_BENCH_THREADS=2 bench/run_all.sh
#
# GPU part (when a CUDA device answers): kiln_bench_gpu (every kernel beside cuDNN/cuBLAS),
# kiln_bench_train --device cuda and bench/pytorch_reference.py --device cuda (eager and
# torch.compile, tf32 off and on). Without a GPU that part says so in docs/perf.md and nothing of
# it is measured.
# CPU part (always): kiln_bench_cpu (conv and GEMM GFLOP/s), kiln_bench_train --device cpu, and the
# same training step in Debian's python3-torch (/usr/bin/python3) with the same thread count, in
# the same run. About 3-5 minutes on 2 quiet cores.
#
# Environment: KILN_BENCH_BUILD (build dir), KILN_BENCH_THREADS (threads for OpenMP/OpenBLAS and
# PyTorch; default nproc), KILN_BENCH_JOBS (ninja -j), KILN_BENCH_OUT (default docs/perf.md),
# KILN_BENCH_TORCH_PYTHON (default /usr/bin/python3 for the CPU reference, python3 for the GPU one),
# KILN_BENCH_GPU_REPS (timed launches per GPU row, default 100), KILN_BENCH_SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KILN_BENCH_BUILD:-$ROOT/build/bench}
THREADS=${KILN_BENCH_THREADS:-$(nproc)}
JOBS=${KILN_BENCH_JOBS:-$(nproc)}
OUT=${KILN_BENCH_OUT:-$ROOT/docs/perf.md}
CPU_PY=${KILN_BENCH_TORCH_PYTHON:-/usr/bin/python3}
GPU_PY=${KILN_BENCH_TORCH_PYTHON:-python3}
GPU_REPS=${KILN_BENCH_GPU_REPS:-100}
RAW=$BUILD/bench-results
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS

log() { printf '[run_all %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---- build ------------------------------------------------------------------------------------------
if [[ "${KILN_BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "configure + build (Release) in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_BENCH=ON \
    -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_EXAMPLES=OFF >"$BUILD.cmake.log" 2>&1 ||
    { cat "$BUILD.cmake.log"; exit 1; }
  targets=(kiln_bench_cpu kiln_bench_train)
  if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^kiln_bench_gpu:'; then
    targets+=(kiln_bench_gpu)
  fi
  if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^kiln_bench_train_emu:'; then
    targets+=(kiln_bench_train_emu)
  fi
  ninja -C "$BUILD" -j"$JOBS" "${targets[@]}"
fi
BIN=$BUILD/bench
mkdir -p "$RAW"
rm -f "$RAW"/*.json "$RAW"/*.txt

uptime_load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "$(uptime_load)" >"$RAW/load_start.txt"

# ---- GPU part -----------------------------------------------------------------------------------------
GPU_MSG=""
if [[ -x "$BIN/kiln_bench_gpu" ]]; then
  log "kiln_bench_gpu (--reps=$GPU_REPS)"
  "$BIN/kiln_bench_gpu" --reps="$GPU_REPS" --benchmark_out="$RAW/gpu_kernels.json" \
    --benchmark_out_format=json | tee "$RAW/gpu_kernels.txt"
  if grep -q '^no GPU:' "$RAW/gpu_kernels.txt"; then
    GPU_MSG=$(grep -m1 '^no GPU:' "$RAW/gpu_kernels.txt")
    rm -f "$RAW/gpu_kernels.json"
  fi
else
  GPU_MSG="no GPU benchmark: kiln_bench_gpu was not built (needs nvcc and cuDNN)"
fi
if [[ -z "$GPU_MSG" ]]; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit \
    --format=csv >"$RAW/nvidia_smi.txt" 2>&1 || true
  for input in 1x48x48 3x128x128; do
    for batch in 64 256; do
      log "kiln_bench_train --device cuda $input b$batch"
      "$BIN/kiln_bench_train" --device cuda --input "$input" --batch "$batch" --width 1 \
        --steps 20 --warmup 3 --json "$RAW/train_cuda_${input}_b${batch}.json"
    done
  done
  log "pytorch_reference.py --device cuda"
  "$GPU_PY" "$ROOT/bench/pytorch_reference.py" --device cuda --steps 20 --warmup 3 \
    --json "$RAW/torch_cuda.json" || log "pytorch_reference.py --device cuda failed"
else
  log "$GPU_MSG"
  printf '%s\n' "$GPU_MSG" >"$RAW/no_gpu.txt"
fi

# ---- CPU part -----------------------------------------------------------------------------------------
log "kiln_bench_cpu ($THREADS threads)"
"$BIN/kiln_bench_cpu" --benchmark_out="$RAW/cpu_kernels.json" --benchmark_out_format=json

# input batch width timed-steps breakdown(1/0) — the report's width and the CPU default (x0.25,
# examples/fer_cnn), the 3x128x128 preset at a small batch (one step at full width is seconds).
CPU_CASES=(
  "1x48x48 64 1 3 1"
  "1x48x48 64 0.25 5 1"
  "3x128x128 16 0.25 3 0"
  "3x128x128 16 1 2 0"
)
for c in "${CPU_CASES[@]}"; do
  read -r input batch width steps breakdown <<<"$c"
  tag="${input}_b${batch}_w${width}"
  extra=()
  [[ "$breakdown" == 1 ]] || extra+=(--no-breakdown)
  [[ "$width" == 1 && "$input" == 3x128x128 ]] && extra+=(--no-loader)
  log "kiln_bench_train --device cpu $tag"
  "$BIN/kiln_bench_train" --device cpu --input "$input" --batch "$batch" --width "$width" \
    --steps "$steps" --warmup 1 "${extra[@]}" --json "$RAW/train_cpu_$tag.json"
  log "pytorch_reference.py --device cpu $tag"
  "$CPU_PY" "$ROOT/bench/pytorch_reference.py" --device cpu --threads "$THREADS" \
    --input "$input" --batch "$batch" --width "$width" --steps "$steps" --warmup 1 \
    --json "$RAW/torch_cpu_$tag.json" ||
    log "pytorch_reference.py (CPU) failed: is python3-torch installed? (apt-get install python3-torch)"
done
echo "$(uptime_load)" >"$RAW/load_end.txt"

# ---- counts per step on the emulated device (kiln_bench_train_emu: launches, graph launches, host
# synchronisations, allocations, peak memory; counts, not times; and the cost model of the same
# steps, a model). Width 0.125 keeps the emulated steps short; the counts depend on the shapes only
# through split-K choices.
if [[ -x "$BIN/kiln_bench_train_emu" ]]; then
  for batch in 14 256; do
    log "kiln_bench_train_emu counts 1x48x48 x0.125 b$batch"
    "$BIN/kiln_bench_train_emu" --device cuda --input 1x48x48 --batch "$batch" --width 0.125 \
      --steps 2 --warmup 4 --no-resident --no-loader --no-breakdown --top-kernels 15 \
      --json "$RAW/counts_emu_b${batch}.json" || log "kiln_bench_train_emu failed"
  done
fi

# ---- the report ---------------------------------------------------------------------------------------
log "writing $OUT"
python3 "$ROOT/bench/perf_report.py" --raw "$RAW" --build "$BUILD" --root "$ROOT" \
  --threads "$THREADS" --out "$OUT"
log "done"
