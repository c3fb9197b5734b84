#!/usr/bin/env bash
# tests/dist/resume_test.sh MPIRUN FER_CNN RANKS — a data-parallel fer_cnn run stopped after one
# epoch (--stop-after 1) and resumed (--resume) on the same number of ranks ends with the same
# weights, bit for bit, and the same history as the run that was never stopped; the training state
# records the world size.
set -u
mpirun=$1 fer_cnn=$2 ranks=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "resume_test: FAILED: $*"; exit 1; }
train() {
  "$mpirun" --allow-run-as-root --oversubscribe -np "$ranks" "$fer_cnn" train --device cpu \
    --epochs 3 --train-per-class 8 --width 0.0625 --batch-size $((4 * ranks)) --no-augment "$@"
}
train --out "$dir/a" >"$dir/a.log" 2>&1 || { cat "$dir/a.log"; fail "the uninterrupted run failed"; }
train --out "$dir/b" --stop-after 1 >"$dir/b1.log" 2>&1 || { cat "$dir/b1.log"; fail "the first part failed"; }
grep -q "continue with --resume" "$dir/b1.log" || fail "no stop after epoch 1"
train --out "$dir/b" --resume >"$dir/b2.log" 2>&1 || { cat "$dir/b2.log"; fail "the resume failed"; }
grep -q "resuming after epoch 1" "$dir/b2.log" || fail "the resume did not start after epoch 1"
grep -q "data-parallel: $ranks ranks" "$dir/a.log" || fail "not a data-parallel run"
# history.csv: everything but the seconds (the last column) must agree.
diff <(cut -d, -f1-6 "$dir/a/history.csv") <(cut -d, -f1-6 "$dir/b/history.csv") ||
  fail "the histories differ"
python3 - "$dir/a/last.train.safetensors" "$dir/b/last.train.safetensors" "$ranks" <<'PY' ||
import json, struct, sys
def read(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    return meta, {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
ma, a = read(sys.argv[1])
mb, b = read(sys.argv[2])
assert a.keys() == b.keys(), "different tensors"
differ = [k for k in a if a[k] != b[k]]
assert not differ, "tensors differ: " + ", ".join(differ[:5])
assert mb.get("kiln.world_size") == sys.argv[3], "kiln.world_size is %r" % mb.get("kiln.world_size")
assert mb.get("kiln.sampler") == "epoch 3, batch 0", "kiln.sampler is %r" % mb.get("kiln.sampler")
print("resume_test: %d tensors identical" % len(a))
PY
  fail "the training states differ"
echo "resume_test: passed"
