#!/usr/bin/python3
"""tests/interop/check_torch.py — a Kiln checkpoint loads into PyTorch and predicts the same.

Usage: check_torch.py MAKE_REFERENCE_EXE OUT_DIR
Runs the Kiln program that writes checkpoints, inputs and Kiln's logits, then builds the report's
network as a torch nn.Sequential, loads each checkpoint with load_state_dict(strict=True) and
compares the eval-mode logits (max abs difference <= 1e-4). Exit 77 (CTest: SKIPPED) when torch is
not importable, with the reason.
"""
import json
import struct
import subprocess
import sys

try:
    import torch
    from torch import nn
except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
    print(f"SKIPPED: torch is not importable by {sys.executable} ({e}); "
          "apt-get install python3-torch to run this check")
    sys.exit(77)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
          "U8": torch.uint8}


def load_safetensors(path):
    """The ten-line reader docs/checkpoints.md shows (Debian has no safetensors package)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        buf = bytearray(data[8 + n + begin:8 + n + end])
        t = torch.frombuffer(buf, dtype=DTYPES[e["dtype"]]) if buf else torch.empty(0, dtype=DTYPES[e["dtype"]])
        tensors[name] = t.reshape(e["shape"])
    return tensors, meta


def fer_cnn(channels, size, widths, classes=7):
    layers, c = [], channels
    for w in widths[:5]:
        layers += [nn.Conv2d(c, w, 3, 1, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.01),
                   nn.MaxPool2d(2, 2, 0), nn.Dropout(0.25)]
        c, size = w, size // 2
    layers += [nn.Flatten(), nn.Linear(c * size * size, widths[5]), nn.LeakyReLU(0.01),
               nn.Linear(widths[5], widths[6]), nn.LeakyReLU(0.01), nn.Linear(widths[6], classes)]
    return nn.Sequential(*layers)


def main():
    exe, out = sys.argv[1], sys.argv[2]
    subprocess.run([exe, out], check=True)
    ok = True
    for name in ("gray48", "rgb64"):
        state, _ = load_safetensors(f"{out}/{name}.safetensors")
        io, meta = load_safetensors(f"{out}/{name}.io.safetensors")
        widths = [int(w) for w in meta["widths"].split(",")]
        model = fer_cnn(int(meta["channels"]), int(meta["size"]), widths)
        assert len(state) == 41, f"{name}: {len(state)} tensors, expected 41"
        model.load_state_dict(state, strict=True)
        model.eval()
        x = io["input_nhwc"].permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        with torch.no_grad():
            logits = model(x)
        diff = (logits - io["logits"]).abs().max().item()
        same = torch.equal(logits.argmax(1), io["logits"].argmax(1))
        print(f"{name}: max |torch - kiln| = {diff:.3g}, same predictions: {same}")
        ok = ok and diff <= 1e-4 and same
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
