#!/usr/bin/env python3
"""bench/perf_report.py -- turns the raw results of bench/run_all.sh into docs/perf.md.

Reads only what run_all.sh measured in this run (RAW/*.json, *.txt); writes measured figures, and
the cost model of the counted steps, labelled as a model.
"""
import argparse
import datetime
import glob
import json
import os
import re
import subprocess


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def sh(*cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cmake_cache(build):
    cache = {}
    for line in read(os.path.join(build, "CMakeCache.txt")).splitlines():
        m = re.match(r"^([A-Za-z0-9_]+):[A-Z]+=(.*)$", line)
        if m:
            cache[m.group(1)] = m.group(2)
    return cache


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def f(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return "{:,.{}f}".format(v, digits)


def bench_entries(doc):
    """Google Benchmark JSON -> [(name, entry)] of the plain (non-aggregate) runs, in order."""
    out = []
    for b in (doc or {}).get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        out.append((b["name"].split("/manual_time")[0].split("/real_time")[0].split("/iterations:")[0], b))
    return out


def ms(entry):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[entry.get("time_unit", "ns")]
    return entry["real_time"] * scale


# ---- header -------------------------------------------------------------------------------------


def header(a, raw, gpu_msg):
    cache = cmake_cache(a.build)
    cxx = cache.get("CMAKE_CXX_COMPILER", "c++")
    cxx_version = sh(cxx, "--version").splitlines()[:1]
    commit = sh("git", "rev-parse", "--short", "HEAD", cwd=a.root)
    subject = sh("git", "log", "-1", "--format=%s", cwd=a.root)
    dirty = [l for l in sh("git", "status", "--porcelain", "--untracked-files=no", cwd=a.root).splitlines() if l]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Kiln performance: measured figures",
        "",
        "Written by `bench/run_all.sh` (do not edit by hand: re-run it). Every figure below was measured",
        "in the run described here; targets and yardsticks are explained in the project's",
        "docs/targets.md. Ratios compare runs made in this same run, on this machine.",
        "",
        "## The run",
        "",
        table(["", ""], [
            ["date", now],
            ["machine", "%s, %s logical CPUs (`nproc`)" % (cpu_model(), sh("nproc") or "?")],
            ["GPU", gpu_msg or read(os.path.join(raw, "nvidia_smi.txt")).replace("\n", "<br>")],
            ["threads", "%d (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, torch.set_num_threads)" % a.threads],
            ["load average (1/5/15 min)", "start %s, end %s" % (read(os.path.join(raw, "load_start.txt"), "?"),
                                                                read(os.path.join(raw, "load_end.txt"), "?"))],
            ["commit", "%s (%s)%s" % (commit, subject,
                                      "; the working tree differed in %d tracked files" % len(dirty) if dirty else "")],
            ["compiler", cxx_version[0] if cxx_version else cxx],
            ["build", "CMAKE_BUILD_TYPE=%s, CXX flags `%s %s`, KILN_NVCC=%s, CUDA archs %s, OpenBLAS %s" % (
                cache.get("CMAKE_BUILD_TYPE", "?"), cache.get("CMAKE_CXX_FLAGS", "").strip(),
                cache.get("CMAKE_CXX_FLAGS_RELEASE", ""), cache.get("KILN_NVCC", "?"),
                cache.get("CMAKE_CUDA_ARCHITECTURES", "the project's default (sm_80, sm_90 + PTX)"
                                    if cache.get("KILN_NVCC") == "ON" else "—"), cache.get("KILN_OPENBLAS_LIBRARY", "not found"))],
        ]),
        "",
    ]
    try:
        load1 = float(read(os.path.join(raw, "load_start.txt"), "0").split()[0])
        ncpu = int(sh("nproc") or "1")
        if load1 > ncpu:
            lines += ["**The machine was shared while this ran** (load average above the CPU count): CPU",
                      "figures are lower than a quiet machine gives; Kiln's and PyTorch's rows were measured",
                      "alternately under the same load, so their ratio is the more meaningful figure. Small",
                      "ops (LeakyReLU, the narrow linear layers) show times of ~20 ms that a quiet machine",
                      "would not: with more runnable threads than cores, an OpenMP team likely waits for a",
                      "descheduled thread for a scheduler time slice. Re-run on a quiet machine before",
                      "drawing conclusions about those rows.", ""]
    except ValueError:
        pass
    return lines


# ---- GPU ----------------------------------------------------------------------------------------


def gpu_section(raw, gpu_msg):
    lines = ["## GPU", ""]
    doc = load(os.path.join(raw, "gpu_kernels.json"))
    if gpu_msg or doc is None:
        lines += ["**No GPU figure was measured in this run.** %s." % (gpu_msg or "kiln_bench_gpu produced no results"),
                  "The GPU benchmarks (`kiln_bench_gpu`, `kiln_bench_train --device cuda`,",
                  "`bench/pytorch_reference.py --device cuda`) are built and ready: `bench/run_all.sh` runs",
                  "them on a machine with a CUDA device and fills this section.", ""]
        return lines
    ctx = doc.get("context", {})
    lines += ["GPU %s, cuDNN %s, cuBLAS %s; %s timed launches per row, L2 flushed before each; median."
              % (ctx.get("gpu", "?"), ctx.get("cudnn", "?"), ctx.get("cublas", "?"), ctx.get("reps", "?")),
              "Ratio = Kiln's median time ÷ the yardstick's (below 1: Kiln is faster). fp32, tf32 off.", ""]
    groups, order = {}, []
    for name, e in bench_entries(doc):
        group, impl = name.rsplit("/", 1)
        if group not in groups:
            groups[group] = {}
            order.append(group)
        groups[group][impl] = e
    families = []
    for g in order:
        fam = g.split("/")[0]
        if fam not in families:
            families.append(fam)
    for fam in families:
        rows = []
        for g in order:
            if g.split("/")[0] != fam:
                continue
            impls = groups[g]
            k = impls.get("kiln", {})
            kus = k.get("median_us")
            row = [g.split("/", 1)[1], f(kus, 1),
                   f(k.get("GFLOP/s"), 0) if "GFLOP/s" in k else "—", f(k.get("GB/s"), 0)]
            ys = [i for i in impls if i != "kiln"]
            for y in ys:
                e = impls[y]
                if e.get("error_occurred"):
                    row += ["%s: skipped (%s)" % (y, e.get("error_message", "")), "—"]
                else:
                    row += ["%s — %s µs" % (e.get("label", y), f(e.get("median_us"), 1)), f(k.get("x_" + y), 2)]
            if k.get("error_occurred"):
                row[1] = "error: " + k.get("error_message", "")
            rows.append(row)
        nys = max((len(r) - 4) // 2 for r in rows) if rows else 0
        heads = ["shape", "Kiln µs", "Kiln GFLOP/s", "GB/s"]
        for i in range(nys):
            heads += ["yardstick %d" % (i + 1), "ratio"]
        rows = [r + ["", ""] * (nys - (len(r) - 4) // 2) for r in rows]
        lines += ["### %s" % fam, "", table(heads, rows), ""]

    # training on the GPU
    torch_doc = load(os.path.join(raw, "torch_cuda.json")) or {}
    trows = []
    for path in sorted(glob.glob(os.path.join(raw, "train_cuda_*.json"))):
        t = load(path)
        if not t:
            continue
        res = t.get("resident", {})
        tr = {(r["mode"], r["tf32"]): r for r in torch_doc.get("results", [])
              if r["input"] == t["input"] and r["batch"] == t["batch"] and r["width"] == t["width"]}
        row = [t["input"], t["batch"], f(res.get("images_per_s"), 0), f(res.get("step_ms"), 2),
               f(t.get("loader", {}).get("images_per_s"), 0)]
        for key in (("eager", False), ("compile", False), ("eager", True), ("compile", True)):
            r = tr.get(key)
            row.append(f(r["images_per_s"], 0) if r else "—")
        for key in (("eager", False), ("compile", False)):
            r = tr.get(key)
            row.append(f(res["images_per_s"] / r["images_per_s"], 2) if r and res else "—")
        trows.append(row)
    if trows:
        lines += ["### Training step on the GPU (images/s; ratio = Kiln ÷ PyTorch images/s, fp32)", "",
                  table(["input", "batch", "Kiln resident", "Kiln ms/step", "Kiln + Loader",
                         "PyTorch eager", "PyTorch compile", "eager tf32", "compile tf32",
                         "× eager", "× compile"], trows), ""]
        for n in torch_doc.get("notes", []):
            lines.append("- PyTorch: " + n)
        lines.append("")
    lines += breakdown_section(os.path.join(raw, "train_cuda_1x48x48_b256.json"))
    return lines


def breakdown_section(path):
    t = load(path)
    if not t or "breakdown" not in t:
        return []
    b = t["breakdown"]
    total = b["total_ms"]
    rows = [[r["index"], r["layer"], f(r["forward_ms"], 3), f(r["backward_ms"], 3),
             f(100 * (r["forward_ms"] + r["backward_ms"]) / total, 1)] for r in b["layers"]]
    rows += [["", "zero_grad", f(b["zero_grad_ms"], 3), "", f(100 * b["zero_grad_ms"] / total, 1)],
             ["", "softmax cross-entropy (+ loss read back)", f(b["loss_ms"], 3), "",
              f(100 * b["loss_ms"] / total, 1)],
             ["", "Adam", "", f(b["optimizer_ms"], 3), f(100 * b["optimizer_ms"] / total, 1)],
             ["", "**total**", "", "", "%s ms" % f(total, 2)]]
    return ["#### Per-layer time, %s, %s x%g, batch %d (device synchronised around every call; ms per step)"
            % (t["device_name"], t["input"], t["width"], t["batch"]), "",
            table(["#", "layer", "forward ms", "backward ms", "% of step"], rows), ""]


# ---- CPU ----------------------------------------------------------------------------------------


def cpu_section(raw, threads):
    lines = ["## CPU", ""]
    doc = load(os.path.join(raw, "cpu_kernels.json"))
    if doc:
        rows = []
        for name, e in bench_entries(doc):
            parts = name.split("/")
            if e.get("error_occurred"):
                rows.append(parts[:6] + ["error: " + e.get("error_message", ""), ""])
                continue
            rows.append([parts[0], parts[1], parts[2][1:], parts[3][1:], parts[4],
                         parts[5] if len(parts) > 5 else "", f(ms(e), 2), f(e["FLOP"] * 1e-9 if "FLOP" in e else None, 1)])
        lines += ["### Kernels: the CPU fast path (im2col + OpenBLAS sgemm, OpenMP), %d threads" % threads, "",
                  "Batches reduced from the GPU's 64/256 to keep the run short; x1 is the report's width,",
                  "x0.25 the CPU default of examples/fer_cnn. Wall-clock time per call.", "",
                  table(["op", "input", "batch", "width", "layer", "C_in->C_out@H", "ms", "GFLOP/s"], rows), ""]
    trows, notes, breakdown = [], set(), None
    for path in sorted(glob.glob(os.path.join(raw, "train_cpu_*.json")),
                       key=lambda p: (("3x128" in p), os.path.getmtime(p))):
        t = load(path)
        if not t:
            continue
        tag = os.path.basename(path)[len("train_cpu_"):-len(".json")]
        tdoc = load(os.path.join(raw, "torch_cpu_%s.json" % tag)) or {}
        for n in tdoc.get("notes", []):
            notes.add(n)
        eager = next((r for r in tdoc.get("results", []) if r["mode"] == "eager"), None)
        res = t.get("resident", {})
        kin = res.get("images_per_s")
        row = [t["input"], t["batch"], "x%g%s" % (t["width"], " (report)" if t["width"] == 1 else " (CPU default)"),
               "{:,}".format(t["params"]), f(kin, 1), f(res.get("step_ms"), 0),
               f(t.get("loader", {}).get("images_per_s"), 1) if "loader" in t else "—",
               f(eager["images_per_s"], 1) if eager else "—", f(eager["step_ms"], 0) if eager else "—",
               f(kin / eager["images_per_s"], 2) if eager and kin else "—"]
        trows.append(row)
        if "breakdown" in t and breakdown is None:
            breakdown = path
        if tdoc.get("header"):
            notes.add("PyTorch %s (%s), %d threads, %s memory format" % (
                tdoc["header"]["torch"], tdoc["header"]["python"], tdoc["header"]["threads"],
                tdoc["header"]["memory_format"]))
    if trows:
        lines += ["### Training step on the CPU, Kiln beside PyTorch (same step, same threads, same run)", "",
                  "Step: zero_grad, forward, softmax cross-entropy (loss read back), backward, Adam.",
                  "Resident: one random batch reused; Loader: data::Loader over the synthetic faces (flip,",
                  "shift, a background thread), each batch copied in. Ratio = Kiln ÷ PyTorch images/s",
                  "(above 1: Kiln is faster).", "",
                  table(["input", "batch", "width", "params", "Kiln images/s", "Kiln ms/step",
                         "Kiln + Loader images/s", "PyTorch eager images/s", "PyTorch ms/step",
                         "ratio"], trows), ""]
        for n in sorted(notes):
            lines.append("- " + n)
        lines.append("")
    if breakdown:
        lines += breakdown_section(breakdown)
    return lines


COUNTS_HEADING = "## Counts on the emulated device"


def kept_counts(path):
    """The counts section of the existing report (measured by tests, not by this run), kept as is."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        old = fh.read().split("\n")
    if COUNTS_HEADING not in old:
        return []
    start = old.index(COUNTS_HEADING)
    end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
    return old[start:end]


def counts_section(raw):
    """Counts per step of the library's CUDA steps on the emulated device (kiln_bench_train_emu)."""
    files = sorted(glob.glob(os.path.join(raw, "counts_emu_b*.json")),
                   key=lambda p: (load(p).get("width", 0), load(p).get("batch", 0)))
    if not files:
        return []
    lines = ["## Counts per step on the emulated device", "",
             "Counted by `kiln_bench_train_emu` (the library built against the SIMT emulator, which",
             "counts kernel launches, graph launches and host synchronisations; see docs/simt.md,",
             "\"Counts\"), per step after warm-up, over the data::Loader; fer_cnn 1x48x48. Counts, not",
             "times: no GPU was involved. A host synchronisation is any host wait on device work.", ""]
    rows = []
    for path in files:
        doc = load(path)
        for step in ("eager_step", "graph_step"):
            c = doc.get("counts", {}).get(step, {})
            label = "%s x%g, batch %d" % (doc.get("input", "?"), doc.get("width", 0), doc.get("batch", 0))
            if "refused" in c:
                rows.append([label, step, "refused: " + c["refused"].split(", which")[0], "", "", "", ""])
                continue
            if not c:
                continue
            rows.append([label, step, f(c.get("kernel_launches_per_step"), 1),
                         f(c.get("graph_launches_per_step"), 1),
                         f(c.get("host_synchronizations_per_step"), 1),
                         f(c.get("device_allocations_per_step"), 1),
                         "%.1f MB" % (c.get("device_bytes_peak", 0) / 1e6)])
    lines += [table(["run", "step", "kernel launches", "graph launches", "host syncs",
                     "device allocations", "peak device memory"], rows), ""]
    return lines


def as_graph(m):
    """The model's fp32 bound with the step's kernels as the nodes of one graph launch."""
    a = m["assumptions"]
    return m["arithmetic_ms"] + (m["kernel_launches_per_step"] * a["graph_node_us"] + a["graph_launch_us"]) * 1e-3


def cost_section(raw, root):
    """The cost model of the same steps (kiln_bench_train_emu's cost_model): a model, labelled so."""
    files = sorted(glob.glob(os.path.join(raw, "counts_emu_b*.json")),
                   key=lambda p: (load(p).get("width", 0), load(p).get("batch", 0)))
    runs = []
    for path in files:
        doc = load(path)
        for step in ("eager_step", "graph_step"):
            m = doc.get("counts", {}).get(step, {}).get("cost_model")
            if m:
                runs.append((doc, step, m))
    if not runs:
        return []
    a = runs[0][2]["assumptions"]
    commit = sh("git", "rev-parse", "--short", "HEAD", cwd=root)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = ["## Cost model of the step (a model, not a measurement)", "",
             "The lower bound the step's kernels put on an H200's step time, from the FLOPs and bytes",
             "each launch of the counted steps above must compute and move (docs/cost-model.md: what is",
             "counted, and why it is a bound). **A model, not a measurement**: no GPU ran anything.",
             "Assumed: %s; fp32 %g, TF32 %g, BF16 %g TFLOP/s; HBM %g TB/s; %g us a kernel launch, %g us a"
             % (a["machine"], a["fp32_simt_tflops"], a["tf32_tensor_tflops"], a["bf16_tensor_tflops"],
                a["hbm_tb_per_s"], a["launch_us"], a["graph_node_us"]),
             "graph node, %g us a graph launch. Computed %s at commit %s." % (a["graph_launch_us"], now, commit),
             ""]
    rows = []
    for doc, step, m in runs:
        fl = m["flops_per_step"]
        byp = m["lower_bound_ms_by_precision"]
        rows.append(["%s x%g, batch %d" % (doc.get("input", "?"), doc.get("width", 0), doc.get("batch", 0)),
                     step, f(m["kernel_launches_per_step"], 1), f(m["graph_launches_per_step"], 1),
                     f(m["launches_without_cost_entry_per_step"], 1),
                     f(fl["fp32 SIMT"] * 1e-9, 3), f(m["bytes_per_step"] * 1e-6, 1),
                     f(m["arithmetic_ms"], 4), f(m["launch_overhead_ms"], 4),
                     f(byp.get("fp32"), 4), f(byp.get("tf32"), 4), f(byp.get("bf16"), 4),
                     f(as_graph(m), 4) if m["precision"] == "fp32" else "—"])
    lines += [table(["run", "step", "launches", "graph launches", "launches without a cost entry",
                     "GFLOP (as fp32)", "MB moved", "arithmetic and memory, ms (fp32)",
                     "launches, ms", "lower bound fp32, ms", "lower bound tf32, ms",
                     "lower bound bf16, ms", "fp32, the same kernels as one graph launch, ms"],
                    rows), ""]
    lines += ["\"Arithmetic and memory\" is Σ max(FLOPs / peak, bytes / bandwidth) over the kernels; tf32",
              "models the convolutions on TF32 tensor cores and the linear layers in fp32 (PyTorch's",
              "default), bf16 both on BF16 tensor cores, with today's fp32 bytes. The last column is the",
              "fp32 bound were the step's kernels the nodes of one graph launch (launch costs only change).",
              ""]
    doc, step, m = max(runs, key=lambda r: (r[0].get("batch", 0), r[1] == "eager_step"))
    total = m["lower_bound_ms"] * 1e3
    lines += ["Per kernel, %s x%g, batch %d, %s, at %s (the %d kernels of the largest modelled time, of %d):"
              % (doc.get("input", "?"), doc.get("width", 0), doc.get("batch", 0), step, m["precision"],
                 len(m["top_kernels"]), m["kernels"]), ""]
    krows = [[r["kernel"], r["class"], f(r["calls"], 1), f(r["flops"] * 1e-6, 1), f(r["bytes"] * 1e-6, 2),
              f(r["modelled_us"], 1), f(100.0 * r["modelled_us"] / total, 1)] for r in m["top_kernels"]]
    lines += [table(["kernel", "class", "calls", "MFLOP", "MB", "modelled us (with launches)",
                     "% of the bound"], krows), ""]
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    gpu_msg = read(os.path.join(a.raw, "no_gpu.txt"))
    lines = header(a, a.raw, gpu_msg) + gpu_section(a.raw, gpu_msg) + cpu_section(a.raw, a.threads)
    lines += kept_counts(a.out)


    lines += counts_section(a.raw)
    lines += cost_section(a.raw, a.root)
    lines += ["## How to reproduce", "",
              "`bench/run_all.sh` (environment: KILN_BENCH_BUILD, KILN_BENCH_THREADS, KILN_BENCH_OUT; see its",
              "header). Single parts: `kiln_bench_cpu`, `kiln_bench_gpu --reps=100`, `kiln_bench_train --help`,",
              "`bench/pytorch_reference.py --help`; raw JSON of this run is under the build directory's",
              "`bench-results/`.", ""]
    tmp = a.out + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines))
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
