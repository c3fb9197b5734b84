#!/usr/bin/env bash
# tests/dist/fault_test.sh MPIRUN FAULT_RANK RANKS MODE [cpu|cuda [BACKEND]] — one rank of a job
# fails; the job must end non-zero within LIMIT seconds and name the rank, and the checkpoint rank 0
# wrote before the fault must be intact. MODE:
#   stop, kill    the rank stops (SIGSTOP: the watchdog's line names it) or dies (mpirun's line);
#   nccl-system, nccl-remote
#                 the emulated device's NCCL fails the rank's 4th collective (KILN_SIMT_NCCL_FAULT=
#                 1:4:system|remote): the rank's NCCL watchdog must report the error, naming the
#                 rank and NCCL's error string, and call ncclCommAbort, long before the deadline;
#   nccl-init     the rank's ncclCommInitRank* never returns (KILN_SIMT_NCCL_FAULT=1:init): the
#                 others' watchdog must name it at the deadline and abort their NCCL communicator.
# With cuda the buffer is a CUDA tensor, and BACKEND (nccl) is the backend its collectives must
# have gone through.
set -u
mpirun=$1 program=$2 ranks=$3 mode=$4 device=${5:-cpu} backend=${6:-}
victim=1 limit=60
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export KILN_DIST_TIMEOUT=3
signal=$mode
case $mode in
  nccl-system | nccl-remote) export KILN_SIMT_NCCL_FAULT=$victim:4:${mode#nccl-} KILN_DIST_TIMEOUT=30 signal=none ;;
  nccl-init) export KILN_SIMT_NCCL_FAULT=$victim:init signal=none ;;
esac
start=$(date +%s)
out=$(timeout -s KILL $limit "$mpirun" --allow-run-as-root --oversubscribe -np "$ranks" \
      "$program" "$signal" $victim "$device" "$dir/checkpoint.safetensors" 2>&1)
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
case $mode in
  stop) grep -q "rank(s) $victim, which did not reach it" <<<"$out" || fail "no rank named rank $victim" ;;
  kill)
    grep -Eq "rank $victim .*(exited on signal|killed)|rank\(s\) $victim" <<<"$out" ||
      fail "nothing named the dead rank $victim"
    ;;
  nccl-system | nccl-remote)
    [[ $mode == nccl-system ]] && text="unhandled system error" ||
      text="remote process exited or there was a network error"
    grep -q "kiln: rank $victim of $ranks: NCCL all-reduce failed: $text: KILN_SIMT_NCCL_FAULT" <<<"$out" ||
      fail "the watchdog did not report rank $victim's NCCL error ($text)"
    grep -q "kiln-simt-nccl: rank $victim: ncclCommAbort" <<<"$out" ||
      fail "rank $victim did not abort its NCCL communicator"
    ((took < KILN_DIST_TIMEOUT)) || fail "the error was not seen before the deadline"
    ;;
  nccl-init)
    grep -q "NCCL init #[0-9]* has waited [0-9]* s for rank(s) $victim, which did not reach it" <<<"$out" ||
      fail "the watchdog did not name rank $victim, hung in the NCCL bootstrap"
    grep -q "kiln-simt-nccl: rank 0: ncclCommAbort" <<<"$out" ||
      fail "rank 0 did not abort its NCCL communicator"
    ;;
  *) fail "unknown mode $mode" ;;
esac
if [[ -e $dir/checkpoint.safetensors ]]; then
  "$program" check "$dir/checkpoint.safetensors" "$ranks" || fail "the checkpoint written before the fault is damaged"
elif [[ $mode != nccl-init ]]; then
  fail "rank 0 wrote no checkpoint before the fault"
fi
echo "fault_test: passed"
