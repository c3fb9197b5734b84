#!/usr/bin/env bash
# tests/onnx/fer_cnn_onnx.sh — fer_cnn's ONNX commands end to end (docs/onnx.md):
#   fer_cnn_onnx.sh FER_CNN_EXE OUT_DIR
# Trains a tiny model (two epochs, width 1/8, 200 synthetic images per class), exports it in both
# forms, and checks that `eval --checkpoint M.onnx` gives the checkpoint's test accuracy (exactly
# for the unfolded export, whose logits are the same bits; within one image for the folded one),
# that predict, saliency, filters and report run on an .onnx model, that `train --init-from M.onnx`
# starts from the model's weights (and refuses a batchnorm-folded one), and that a corrupt .onnx
# file is refused with the importer's message and exit code 2.
set -euo pipefail
exe=$1 out=$2
rm -rf "$out" && mkdir -p "$out"
export OMP_WAIT_POLICY=passive
data=(--data synthetic --train-per-class 200 --device cpu)
fail() { echo "FAILED: $*" >&2; exit 1; }

"$exe" train "${data[@]}" --epochs 2 --width 0.125 --out "$out/run" >"$out/train.log"
"$exe" export --checkpoint "$out/run/best.safetensors" --onnx "$out/m.onnx"
"$exe" export --checkpoint "$out/run/best.safetensors" --onnx "$out/m_folded.onnx" --fold-bn

# "... (test split, 140 images): loss 1.2345, accuracy 56.43%" -> "140 1.2345 56.43"
accuracy() {
  "$exe" eval "${data[@]}" --split test --checkpoint "$1" --out "$out/eval" |
    sed -n 's/.*split, \([0-9]*\) images): loss \([0-9.]*\), accuracy \([0-9.]*\)%.*/\1 \2 \3/p'
}
read -r n base_loss base <<<"$(accuracy "$out/run/best.safetensors")"
read -r _ loss unfolded <<<"$(accuracy "$out/m.onnx")"
read -r _ folded_loss folded <<<"$(accuracy "$out/m_folded.onnx")"
echo "test split, $n images: checkpoint loss $base_loss accuracy $base%; ONNX $loss $unfolded%;" \
  "ONNX folded $folded_loss $folded%"
[[ -n $base && $unfolded == "$base" && $loss == "$base_loss" ]] ||
  fail "the ONNX export's loss or accuracy differs from the checkpoint's"
awk -v a="$base" -v b="$folded" -v n="$n" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 100 / n + 1e-9) }' ||
  fail "the folded export's accuracy is more than one image off"

"$exe" saliency "${data[@]}" --checkpoint "$out/m_folded.onnx" --per-class 1 --out "$out/saliency.png" >/dev/null
"$exe" filters "${data[@]}" --checkpoint "$out/m.onnx" --filters 2 --steps 2 --out "$out/filt" >/dev/null
ls "$out/saliency.png" "$out/filt"/*.png >/dev/null || fail "saliency or filters wrote no PNG"
# Any picture will do as predict's input.
"$exe" predict --device cpu --checkpoint "$out/m_folded.onnx" "$out/saliency.png" | grep -q "prediction: " ||
  fail "predict on the ONNX model printed no prediction"

"$exe" report --run "$out/run" --checkpoint "$out/m_folded.onnx" --device cpu --steps 2 --filters 1 \
  --per-class 1 --out "$out/report_onnx.html" >/dev/null
grep -q "<html" "$out/report_onnx.html" || fail "report on the ONNX model wrote no page"

# PyTorch's own export of the trained flagship (Debian's PyTorch, eval mode: batchnorm folded,
# Dropout dropped, opset 13) loads and the report runs on it. cmake/deps.sh installs python3-torch;
# without it this test fails, naming the package (it is not skipped).
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 - "$here/../interop" "$out/run/best.safetensors" "$out/torch.onnx" <<'PY' || fail "PyTorch could not export the trained model (apt-get install python3-torch)"
import sys
sys.path.insert(0, sys.argv[1])
from check_torch import fer_cnn, load_safetensors, torch
state, meta = load_safetensors(sys.argv[2])
convs = [state[f"{5 * i}.weight"] for i in range(5)]
widths = [w.shape[0] for w in convs] + [state["26.weight"].shape[0], state["28.weight"].shape[0]]
size = 48
model = fer_cnn(convs[0].shape[1], size, widths, classes=state["30.weight"].shape[0])
model.load_state_dict(state, strict=True)
model.eval()
torch.onnx.export(model, torch.zeros(2, convs[0].shape[1], size, size), sys.argv[3], opset_version=13,
                  input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
PY
read -r _ torch_loss torch_acc <<<"$(accuracy "$out/torch.onnx")"
echo "PyTorch's export: loss $torch_loss accuracy $torch_acc%"
awk -v a="$base" -v b="$torch_acc" -v n="$n" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 100 / n + 1e-9) }' ||
  fail "PyTorch's export's accuracy is more than one image off the checkpoint's"
"$exe" report --run "$out/run" --checkpoint "$out/torch.onnx" --device cpu --steps 2 --filters 1 \
  --per-class 1 --out "$out/report_torch.html" >/dev/null
grep -q "<html" "$out/report_torch.html" || fail "report on PyTorch's export wrote no page"

# Fine-tuning from an ONNX model: a tiny learning rate leaves the weights where the model had
# them (Adam moves each by at most lr per step), so the new run's first convolution is the
# checkpoint's within 1e-6.
"$exe" train "${data[@]}" --epochs 1 --lr 1e-9 --init-from "$out/m.onnx" --out "$out/tuned" >"$out/tuned.log"
grep -q "init: weights from $out/m.onnx" "$out/tuned.log" || fail "train --init-from did not say where it started"
python3 - "$out/run/best.safetensors" "$out/tuned/last.safetensors" <<'PY' || fail "train --init-from did not start from the model's weights"
import json, struct, sys
from array import array
def tensor(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        b, e = head[name]["data_offsets"]
        f.seek(8 + n + b)
        return array("f", f.read(e - b))
a, b = (tensor(p, "0.weight") for p in sys.argv[1:3])
d = max(abs(x - y) for x, y in zip(a, b))
print(f"--init-from: first convolution within {d:.2e} of the checkpoint's")
sys.exit(0 if len(a) == len(b) and d < 1e-6 else 1)
PY
set +e
msg=$("$exe" train "${data[@]}" --epochs 1 --init-from "$out/m_folded.onnx" --out "$out/tuned2" 2>&1)
code=$?
set -e
[[ $code == 2 && $msg == *"batchnorm-folded"* ]] || fail "--init-from a folded model gave exit $code: $msg"

head -c 200 "$out/m.onnx" >"$out/cut.onnx"
set +e
msg=$("$exe" eval "${data[@]}" --checkpoint "$out/cut.onnx" 2>&1)
code=$?
set -e
[[ $code == 2 && $msg == *"cut.onnx"* ]] || fail "a truncated .onnx gave exit $code: $msg"
echo "truncated model refused: ${msg##*error: }"
echo "ok"
