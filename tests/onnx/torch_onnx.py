#!/usr/bin/python3
"""tests/onnx/torch_onnx.py — PyTorch exports the flagship with Kiln's weights; Kiln imports it.

Usage: torch_onnx.py KILN_ONNX_REFERENCE_EXE OUT_DIR
1. The Kiln program writes the test model's checkpoint and an input batch (tests/onnx/test_model.h).
2. Debian's PyTorch (1.13) builds the same network as an nn.Sequential, loads the checkpoint
   (load_state_dict, strict) and exports it twice with torch.onnx.export:
     - eval mode, constant folding on, opset 13: batchnorm folded into Conv, Dropout dropped;
     - training=TrainingMode.PRESERVE, do_constant_folding=False, opset 17: BatchNormalization kept.
   Both with a symbolic batch dimension; PyTorch's eval logits for the input are saved beside.
3. The Kiln program imports each export and compares its logits with PyTorch's (the tolerance
   derived in tests/onnx/test_model.h) and the predicted classes.
Exit 77 (CTest: SKIPPED) when torch is not importable, with the reason.
"""
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from check_torch import fer_cnn, load_safetensors, torch  # noqa: E402  (exits 77 without torch)


def save_safetensors(path, tensors, metadata):
    """Float32 tensors as safetensors (8-byte header length, JSON header, raw data)."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def main():
    exe, out = sys.argv[1], sys.argv[2]
    subprocess.run([exe, "write", out], check=True)
    state, _ = load_safetensors(f"{out}/model.safetensors")
    io, meta = load_safetensors(f"{out}/io.safetensors")
    widths = [int(w) for w in meta["widths"].split(",")]
    model = fer_cnn(int(meta["channels"]), int(meta["size"]), widths)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = io["input_nchw"]
    with torch.no_grad():
        logits = model(x)
    save_safetensors(f"{out}/torch_io.safetensors",
                     {"input_nhwc": io["input_nhwc"], "logits": logits}, {"eps": meta["eps"]})
    common = dict(input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    exports = [("torch_folded.onnx", 0, dict(opset_version=13)),
               ("torch_preserve.onnx", 5,
                dict(opset_version=17, training=torch.onnx.TrainingMode.PRESERVE,
                     do_constant_folding=False))]
    ok = True
    for name, batchnorms, options in exports:
        torch.onnx.export(model, x, f"{out}/{name}", **common, **options)
        r = subprocess.run([exe, "compare", f"{out}/{name}", f"{out}/torch_io.safetensors",
                            str(batchnorms)])
        ok = ok and r.returncode == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
