#!/usr/bin/env bash
# tests/dist/fault_test.sh MPIRUN FAULT_RANK RANKS stop|kill [cpu|cuda [BACKEND]] — one rank of a job
# stops or dies; the job must end non-zero within LIMIT seconds and name the rank (the watchdog's
# line for a stopped rank, mpirun's for a dead one). With cuda the buffer is a CUDA tensor, and
# BACKEND (nccl) is the backend its collectives must have gone through.
set -u
mpirun=$1 program=$2 ranks=$3 mode=$4 device=${5:-cpu} backend=${6:-}
victim=1 limit=60
export KILN_DIST_TIMEOUT=3
start=$(date +%s)
out=$(timeout -s KILL $limit "$mpirun" --allow-run-as-root --oversubscribe -np "$ranks" \
      "$program" "$mode" $victim "$device" 2>&1)
rc=$?
took=$(($(date +%s) - start))
echo "$out"
echo "fault_test: $mode rank $victim of $ranks: exit status $rc after $took s"
fail() { echo "fault_test: FAILED: $*"; exit 1; }
[[ $rc != 0 ]] || fail "the job exited 0"
if [[ -n $backend ]]; then
  grep -q "tensors over $backend" <<<"$out" || fail "the collectives did not go through $backend"
fi
((took < limit)) || fail "the job hung until the test's own limit of $limit s"
if [[ $mode == stop ]]; then
  grep -q "rank(s) $victim, which did not reach it" <<<"$out" || fail "no rank named rank $victim"
else
  grep -Eq "rank $victim .*(exited on signal|killed)|rank\(s\) $victim" <<<"$out" ||
    fail "nothing named the dead rank $victim"
fi
echo "fault_test: passed"
