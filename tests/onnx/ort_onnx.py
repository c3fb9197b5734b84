#!/usr/bin/python3
"""tests/onnx/ort_onnx.py — ONNX Runtime runs Kiln's ONNX exports and gives Kiln's logits.

Usage: ort_onnx.py VENV_PYTHON KILN_ONNX_REFERENCE_EXE OUT_DIR
Re-runs itself under VENV_PYTHON (the build's .venv/, where cmake/deps.sh installs onnxruntime
and numpy from PyPI; Debian has neither). The Kiln program writes the test model's two exports
(batchnorm as nodes, and folded) with an input batch and Kiln's logits; ONNX Runtime runs each on
the whole batch and on one image (the batch dimension is symbolic), and the logits must agree
with Kiln's within the tolerance derived in tests/onnx/test_model.h, with the same predicted
classes. Exit 77 (CTest: SKIPPED) when onnxruntime is not installed, with the reason.
"""
import json
import os
import struct
import subprocess
import sys


def load_safetensors(path, np):
    """Float32 tensors and the metadata of a safetensors file, as numpy arrays."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        assert e["dtype"] == "F32", f"{name}: {e['dtype']}"
        out[name] = np.frombuffer(data[8 + n + begin:8 + n + end], dtype="<f4").reshape(e["shape"])
    return out, meta


def run(exe, out):
    import numpy as np
    import onnxruntime as ort
    subprocess.run([exe, "write", out], check=True)
    io, meta = load_safetensors(f"{out}/io.safetensors", np)
    x, want = io["input_nchw"], io["logits"]
    eps = float(meta["eps"])
    atol, rtol = 2 * eps * np.abs(want).max(), 2 * eps
    ok = True
    for name in ("kiln.onnx", "kiln_folded.onnx"):
        session = ort.InferenceSession(f"{out}/{name}", providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {"input": x})[0]
        one = session.run(["logits"], {"input": x[:1]})[0]
        diff = np.abs(got - want)
        good = bool((diff <= atol + rtol * np.abs(want)).all()) and \
            bool((np.abs(one - want[:1]) <= atol + rtol * np.abs(want[:1])).all())
        same = bool((got.argmax(1) == want.argmax(1)).all())
        print(f"{name}: onnxruntime {ort.__version__}, max |ort - kiln| = {diff.max():.3g} "
              f"(tolerance {atol:.3g} + {rtol:.3g}|kiln|), batch 1 and {len(x)}, "
              f"same predictions: {same}")
        ok = ok and good and same
    return 0 if ok else 1


def main():
    venv_python, exe, out = sys.argv[1:4]
    if os.environ.get("KILN_ORT_CHILD") != "1":
        if not os.access(venv_python, os.X_OK):
            print(f"SKIPPED: {venv_python} does not exist; bash cmake/deps.sh creates the build's "
                  "virtual environment with onnxruntime")
            sys.exit(77)
        env = dict(os.environ, KILN_ORT_CHILD="1")
        sys.exit(subprocess.run([venv_python, __file__] + sys.argv[1:], env=env).returncode)
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed here"
        print(f"SKIPPED: onnxruntime is not importable by {sys.executable} ({e}); "
              "bash cmake/deps.sh installs it into the build's .venv/")
        sys.exit(77)
    sys.exit(run(exe, out))


if __name__ == "__main__":
    main()
