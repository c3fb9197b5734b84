#!/usr/bin/env bash
# tests/onnx/fer_cnn_onnx.sh — fer_cnn's ONNX commands end to end (docs/onnx.md):
#   fer_cnn_onnx.sh FER_CNN_EXE OUT_DIR
# Trains a tiny model (two epochs, width 1/8, 200 synthetic images per class), exports it in both
# forms, and checks that `eval --checkpoint M.onnx` gives the checkpoint's test accuracy (exactly
# for the unfolded export, whose logits are the same bits; within one image for the folded one),
# that predict, saliency and filters run on an .onnx model, and that a corrupt .onnx file is
# refused with the importer's message and exit code 2.
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

head -c 200 "$out/m.onnx" >"$out/cut.onnx"
set +e
msg=$("$exe" eval "${data[@]}" --checkpoint "$out/cut.onnx" 2>&1)
code=$?
set -e
[[ $code == 2 && $msg == *"cut.onnx"* ]] || fail "a truncated .onnx gave exit $code: $msg"
echo "truncated model refused: ${msg##*error: }"
echo "ok"
