#!/usr/bin/env python3
"""bench/pytorch_reference.py -- the PyTorch yardstick for Kiln's training step.

Trains the same network as layers/fer_cnn.h (five blocks Conv2d 3x3 pad 1 -> BatchNorm2d ->
LeakyReLU(0.01) -> MaxPool2d(2) -> Dropout(0.25) with 64/128/256/512/512 channels, then
Linear(512*s, 1024) -> LeakyReLU -> Linear(1024, 512) -> LeakyReLU -> Linear(512, 7), every hidden
width times --width, rounded as fer_cnn_widths does) with Adam (lr 1e-3) and CrossEntropyLoss on one
random batch resident on the device, the step Kiln's kiln_bench_train times:
    zero_grad -> forward -> loss (read back with .item(), as Kiln's loss is) -> backward -> step
and reports images/s in eager mode and with torch.compile, with tf32 off and on (CUDA only).

One command on a GPU machine with PyTorch:
    python3 bench/pytorch_reference.py --device cuda
On a CPU (Debian's python3-torch 1.13 has no torch.compile: the output says so):
    /usr/bin/python3 bench/pytorch_reference.py --device cpu --threads 2 --batch 64 --input 1x48x48
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn as nn


def widths(multiplier):
    # Python's round() is banker's rounding; fer_cnn_widths uses std::lround (half away from 0).
    return [max(1, int(math.floor(w * multiplier + 0.5))) for w in (64, 128, 256, 512, 512, 1024, 512)]


def fer_cnn(channels, height, width, classes=7, multiplier=1.0, dropout=0.25):
    w = widths(multiplier)
    layers, c, h, wd = [], channels, height, width
    for block in range(5):
        layers += [nn.Conv2d(c, w[block], 3, padding=1), nn.BatchNorm2d(w[block]),
                   nn.LeakyReLU(0.01), nn.MaxPool2d(2), nn.Dropout(dropout)]
        c, h, wd = w[block], h // 2, wd // 2
    layers += [nn.Flatten(), nn.Linear(c * h * wd, w[5]), nn.LeakyReLU(0.01),
               nn.Linear(w[5], w[6]), nn.LeakyReLU(0.01), nn.Linear(w[6], classes)]
    return nn.Sequential(*layers)


def parse_input(s):
    c, h, w = (int(v) for v in s.lower().split("x"))
    return c, h, w


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(device, spec, batch, multiplier, mode, tf32, steps, warmup, channels_last):
    c, h, w = spec
    torch.manual_seed(1)
    model = fer_cnn(c, h, w, multiplier=multiplier).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = torch.rand(batch, c, h, w, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 7, (batch,), device=device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    run = model
    if mode == "compile":
        run = torch.compile(model)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(run(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    t_first = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warmup_s = time.perf_counter() - t_first
    t0 = time.perf_counter()
    loss = 0.0
    for _ in range(steps):
        loss = step()
    sync(device)
    seconds = time.perf_counter() - t0
    if not math.isfinite(loss):
        raise RuntimeError("training diverged (loss %r)" % loss)
    params = sum(p.numel() for p in model.parameters())
    return {"input": "%dx%dx%d" % spec, "batch": batch, "width": multiplier, "mode": mode,
            "tf32": tf32 if device.type == "cuda" else None, "params": params, "steps": steps,
            "warmup_s": warmup_s, "step_ms": 1e3 * seconds / steps,
            "images_per_s": batch * steps / seconds, "last_loss": loss}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def compile_status():
    if not hasattr(torch, "compile"):
        return "torch.compile is not available in PyTorch %s (it arrived in 2.0)" % torch.__version__
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--input", action="append", help="CxHxW (repeatable; default 1x48x48 and 3x128x128)")
    ap.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 64 and 256)")
    ap.add_argument("--width", type=float, action="append", help="width multiplier (repeatable; default 1)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (torch.compile: at least 3)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--modes", default="eager,compile", help="comma list of eager, compile")
    ap.add_argument("--tf32", default="off,on", help="comma list of off, on (CUDA only)")
    ap.add_argument("--memory-format", default="auto", choices=["auto", "channels_last", "contiguous"],
                    help="auto: channels_last (NHWC, as Kiln) on CUDA, contiguous on the CPU")
    ap.add_argument("--json", help="also write the results to this JSON file")
    a = ap.parse_args()

    if a.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(a.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            print("no GPU: torch.cuda.is_available() is False (PyTorch %s)" % torch.__version__)
            return 0
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    channels_last = (a.memory_format == "channels_last" or
                     (a.memory_format == "auto" and device.type == "cuda"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # cuDNN's autotuner: PyTorch at its best
    inputs = [parse_input(s) for s in (a.input or ["1x48x48", "3x128x128"])]
    batches = a.batch or [64, 256]
    mults = a.width or [1.0]
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    tf32s = [t.strip() == "on" for t in a.tf32.split(",") if t.strip()] if device.type == "cuda" else [False]

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    header = {"torch": torch.__version__, "device": device.type, "device_name": name,
              "threads": torch.get_num_threads(), "memory_format":
              "channels_last" if channels_last else "contiguous", "python": sys.version.split()[0]}
    print("pytorch_reference: PyTorch %(torch)s, %(device)s (%(device_name)s), %(threads)d threads, "
          "%(memory_format)s" % header, flush=True)
    results, notes = [], []
    cs = compile_status()
    if "compile" in modes and cs:
        notes.append(cs)
        print("  note: " + cs + "; compile rows skipped", flush=True)
    for spec in inputs:
        for batch in batches:
            for mult in mults:
                for mode in modes:
                    if mode == "compile" and cs:
                        continue
                    for tf32 in tf32s:
                        try:
                            r = measure(device, spec, batch, mult, mode, tf32, a.steps,
                                        max(a.warmup, 3 if mode == "compile" else a.warmup),
                                        channels_last)
                        except Exception as e:  # a failing torch.compile is reported, not fatal
                            msg = "%s %dx%dx%d b%d: %s: %s" % (mode, *spec, batch, type(e).__name__, e)
                            notes.append(msg.splitlines()[0][:300])
                            print("  failed: " + notes[-1], flush=True)
                            continue
                        results.append(r)
                        print("  %-9s b%-4d x%-5g %-7s tf32 %-3s  %9.2f ms/step  %10.1f images/s"
                              % (r["input"], batch, mult, mode,
                                 "n/a" if r["tf32"] is None else ("on" if tf32 else "off"),
                                 r["step_ms"], r["images_per_s"]), flush=True)
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"header": header, "notes": notes, "results": results}, f, indent=2)
        os.replace(a.json + ".tmp", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
