#!/usr/bin/env bash
# tests/dist/train_device_test.sh MPIRUN FER_CNN_EMU RANKS BACKEND — `fer_cnn_emu train --device
# cuda` (the emulated CUDA device) as a data-parallel job: it must train, say that its collectives
# went through BACKEND (nccl: the NCCL backend over the emulator's NCCL shim), and write its run
# from rank 0 alone.
set -u
mpirun=$1 fer_cnn=$2 ranks=$3 backend=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "train_device_test: FAILED: $*"; exit 1; }
KILN_DIST_TIMEOUT=60 "$mpirun" --allow-run-as-root --oversubscribe -np "$ranks" "$fer_cnn" train \
  --device cuda --epochs 1 --train-per-class 4 --width 0.0625 --batch-size $((4 * ranks)) \
  --no-augment --sync-bn --out "$dir/run" >"$dir/log" 2>&1 || { cat "$dir/log"; fail "the job failed"; }
cat "$dir/log"
grep -q "data-parallel: $ranks ranks (mpirun, collectives over $backend)" "$dir/log" ||
  fail "not a data-parallel run over $backend"
[[ -s $dir/run/history.csv ]] || fail "rank 0 wrote no history"
echo "train_device_test: passed"
