#!/usr/bin/env python3
"""tests/onnx/ort_accuracy.py — the accuracy ONNX Runtime gives an exported model on a split.

Usage (with the build's .venv/ python, where cmake/deps.sh installs onnxruntime):
    build-emu/tests/onnx/kiln_onnx_reference split 1 48 48 /tmp/test.safetensors
    .venv/bin/python tests/onnx/ort_accuracy.py model.onnx /tmp/test.safetensors
Prints the number of images and the accuracy, to compare with `fer_cnn eval --split test
--checkpoint C` (docs/onnx.md). A measurement, not a test: it needs a trained model.
"""
import sys

import numpy as np
import onnxruntime as ort

from ort_onnx import load_safetensors


def main():
    model, split = sys.argv[1], sys.argv[2]
    data, _ = load_safetensors(split, np)
    x, labels = data["images"], data["labels"].astype(np.int64)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    pred = np.concatenate([session.run(["logits"], {"input": x[i:i + 128]})[0].argmax(1)
                           for i in range(0, len(x), 128)])
    print(f"{model}: onnxruntime {ort.__version__}, {len(x)} images, "
          f"accuracy {100 * (pred == labels).mean():.2f}%")


if __name__ == "__main__":
    main()
