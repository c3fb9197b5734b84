#!/usr/bin/env python3
"""tests/sass_check.py — reads the speed of Kiln's GEMM-shaped kernels from their sm_90 SASS.

Disassembles the sm_90 machine code of a binary (libkiln.so, or an object built by nvcc) with
cuobjdump and, for every instantiation of the implicit-GEMM convolution kernels (forward,
backward-data, backward-filter) and of the linear/GEMM kernels, finds the main loop and fails when

  - it has no 128-bit shared-memory load (LDS.128),
  - it issues fewer than 8 FFMA per shared-memory load instruction (any LDS width), or
  - the kernel touches local memory anywhere (LDL/STL: spills or an indexed register array).

and, for every instantiation of the tensor-core kernels (kernels/linear_tc.cu and
kernels/conv2d_tc.cu on the tile engine of kernels/tc_gemm_tile.cuh, TF32 and BF16), finds the
loop with the most HMMA and fails unless

  - it issues exactly the HMMA count derived from the tile shape: per k-tile a block multiplies
    BM·BN·BK / (16·8·k_mma) mma shapes (k_mma 8 for TF32, 16 for BF16), each of its W warps issues
    1/W of them (TC_TILE below; 16 per warp for both precisions),
  - its ldmatrix count is the derived one: K-major operands (both precisions) load each 16-row
    slice of a k_mma step with one LDSM.16.M88.4; MN-major bf16 operands with LDSM.16.MT88.4;
    MN-major TF32 operands with plain LDS (ldmatrix.trans has no 32-bit form),
  - it copies global → shared with cp.async (LDGSTS), and
  - the kernel touches no local memory.

The main loop: every backward branch (a BRA whose target lies at or before it) closes a loop whose
body is the address range [target, branch]; the main loop is the one whose body holds the most
FFMA. (The tile engine's k-loop — 8 rank-1 updates of an 8×8 register tile, 512 FFMA — dwarfs the
small index-walk loops inside the loaders, which it contains.) Figures are printed per kernel.

Exit status: 0 all pass, 1 a check failed, 77 cuobjdump is not available (CTest reports SKIPPED).
cuobjdump and the nvdisasm it runs come with the CUDA toolkit or from PyPI, which
cmake/deps.sh installs into the repository's own virtual environment, .venv/.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

SKIP = 77
FAMILIES = [
    "conv2d_forward_implicit_gemm_kernel",
    "conv2d_backward_data_implicit_gemm_kernel",
    "conv2d_backward_filter_implicit_gemm_kernel",
    "linear_forward_kernel",
    "linear_backward_data_kernel",
    "linear_backward_weight_kernel",
]
MIN_FFMA_PER_LDS = 8.0

# The tensor-core tile (kernels/tc_gemm_tile.cuh, Config): block BM×BN, warps in a WARPS_M×WARPS_N
# grid, BK = 64 bytes of k. Element type → (BK elements, k of one mma).
TC_TILE = {"BM": 64, "BN": 64, "WARPS_M": 2, "WARPS_N": 2}
TC_PRECISIONS = {"float": ("tf32", 16, 8), "unsigned short": ("bf16", 32, 16)}
# family → (A is K-major, B is K-major)
TC_FAMILIES = {
    "linear_tc_forward_kernel": (True, True),
    "linear_tc_backward_data_kernel": (True, False),
    "linear_tc_backward_weight_kernel": (False, False),
    "conv2d_tc_forward_kernel": (True, True),
    "conv2d_tc_backward_data_kernel": (True, False),
    "conv2d_tc_backward_filter_kernel": (False, False),
}


def tc_expected(family, element):
    """Per warp and k-tile: (HMMA, LDSM.16.M88.4, LDSM.16.MT88.4, 32-bit LDS) derived from the
    tile shape. An MN-major TF32 operand takes its fragments by plain loads: 4 per 16-row A slice,
    2 per 8-column B slice, per k_mma step."""
    _, bk, k_mma = TC_PRECISIONS[element]
    warps = TC_TILE["WARPS_M"] * TC_TILE["WARPS_N"]
    hmma = TC_TILE["BM"] * TC_TILE["BN"] * bk // (16 * 8 * k_mma) // warps
    steps = bk // k_mma
    a_slices = TC_TILE["BM"] // TC_TILE["WARPS_M"] // 16  # 16-row slices of the warp tile
    b_slices = TC_TILE["BN"] // TC_TILE["WARPS_N"] // 16  # pairs of 8-column slices
    m88 = mt88 = lds = 0
    for k_major, slices, loads in zip(TC_FAMILIES[family], (a_slices, b_slices), (4, 4)):
        if k_major:
            m88 += slices * steps
        elif element != "float":
            mt88 += slices * steps
        else:
            lds += loads * slices * steps
    return hmma, m88, mt88, lds

INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)([^;]*);")
FUNC = re.compile(r"Function\s*:\s*(\S+)")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_tool(name, explicit=None):
    """The tool's path: explicit, PATH, the CUDA toolkit, the repository's .venv/ (where
    cmake/deps.sh installs it from PyPI), or this Python's own nvidia/cu*/bin."""
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    found = shutil.which(name)
    if found:
        return found
    roots = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"]
    for root in roots:
        cand = os.path.join(root, "bin", name)
        if root and os.path.isfile(cand):
            return cand
    site_dirs = glob.glob(os.path.join(REPO, ".venv", "lib", "python3*", "site-packages")) + sys.path
    for path in site_dirs:
        for pattern in ("cu*", "cuda_*"):
            for cand in sorted(glob.glob(os.path.join(path, "nvidia", pattern, "bin", name))):
                return cand
    return None


def demangle(names):
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt:
        return {n: n for n in names}
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True).stdout
    return dict(zip(names, out.splitlines()))


def short_name(demangled):
    """'kiln::cuda::(anon)::conv2d_forward_implicit_gemm_kernel<Config<128,128>, true, false>'."""
    s = re.sub(r"\(anonymous namespace\)::", "", demangled)
    s = s.replace("kiln::cuda::tile::Config", "Config").replace("kiln::cuda::", "")
    return re.sub(r"\(.*\)$", "", s)


def parse(sass):
    """{function name: [(address, opcode, operands)]}"""
    functions, current = {}, None
    for line in sass.splitlines():
        m = FUNC.search(line)
        if m:
            current = m.group(1)
            functions[current] = []
            continue
        m = INSTR.search(line)
        # "@!PT" never executes: ptxas pads with such instructions (e.g. @!PT LDS RZ, [RZ]).
        if m and current is not None and (m.group(2) or "").strip() != "@!PT":
            functions[current].append((int(m.group(1), 16), m.group(3), m.group(4)))
    return functions


def loops_of(instrs):
    """[(first, last) address of the body of each loop closed by a backward branch]"""
    loops = []
    for addr, op, operands in instrs:
        if op.startswith("BRA"):
            t = re.search(r"0x([0-9a-f]+)", operands)
            if t and int(t.group(1), 16) <= addr:
                loops.append((int(t.group(1), 16), addr))
    return loops


def analyse(instrs):
    loops = loops_of(instrs)
    local = sum(1 for _, op, _ in instrs if op.startswith(("LDL", "STL")))
    best = None
    for lo, hi in loops:
        body = [op for a, op, _ in instrs if lo <= a <= hi]
        ffma = sum(1 for op in body if op.startswith("FFMA"))
        if best is None or ffma > best["ffma"]:
            lds = [op for op in body if op.startswith("LDS")]
            best = {
                "range": (lo, hi),
                "ffma": ffma,
                "lds": len(lds),
                "lds128": sum(1 for op in lds if ".128" in op),
                "ldg": sum(1 for op in body if op.startswith("LDG")),
                "sts": sum(1 for op in body if op.startswith("STS")),
                "bar": sum(1 for op in body if op.startswith("BAR")),
            }
    return best, local


def analyse_tc(instrs):
    """The loop with the most HMMA: its HMMA, LDSM (.M88.4 / .MT88.4), LDGSTS and LDS counts."""
    best = None
    for lo, hi in loops_of(instrs):
        body = [op for a, op, _ in instrs if lo <= a <= hi]
        hmma = sum(1 for op in body if op.startswith("HMMA"))
        if best is None or hmma > best["hmma"]:
            best = {
                "hmma": hmma,
                "m88": sum(1 for op in body if op.startswith("LDSM.16.M88.4")),
                "mt88": sum(1 for op in body if op.startswith("LDSM.16.MT88.4")),
                "ldgsts": sum(1 for op in body if op.startswith("LDGSTS")),
                "lds": sum(1 for op in body if op.startswith("LDS") and not op.startswith("LDSM")),
            }
    return best


def check_tc(functions, names, failures):
    """The tensor-core kernels' checks (module docstring); returns how many were checked."""
    seen = {f: 0 for f in TC_FAMILIES}
    print(f"\n{'tensor-core kernel':<60} {'HMMA':>9} {'LDSM':>7} {'LDSM.T':>7} {'LDGSTS':>6} "
          f"{'LDS':>7} {'LDL/STL':>7}")
    for mangled in sorted(functions, key=lambda n: names[n]):
        family = next((f for f in TC_FAMILIES if f in mangled), None)
        if family is None:
            continue
        name = short_name(names[mangled])
        element = next((e for e in TC_PRECISIONS if f"<{e}>" in name), None)
        if element is None:
            failures.append(f"{name}: unknown element type")
            continue
        seen[family] += 1
        hmma, m88, mt88, lds = tc_expected(family, element)
        best = analyse_tc(functions[mangled])
        local = sum(1 for _, op, _ in functions[mangled] if op.startswith(("LDL", "STL")))
        if best is None:
            failures.append(f"{name}: no loop found")
            continue
        label = f"{name} [{TC_PRECISIONS[element][0]}]"
        print(f"{label:<60} {best['hmma']:>4}/{hmma:<4} {best['m88']:>3}/{m88:<3} "
              f"{best['mt88']:>3}/{mt88:<3} {best['ldgsts']:>6} {best['lds']:>3}/{lds:<3} {local:>7}")
        if best["hmma"] != hmma:
            failures.append(f"{name}: {best['hmma']} HMMA in the main loop, derived {hmma}")
        if best["m88"] != m88 or best["mt88"] != mt88:
            failures.append(f"{name}: LDSM.M88.4/.MT88.4 {best['m88']}/{best['mt88']} in the main "
                            f"loop, derived {m88}/{mt88}")
        if best["lds"] != lds:
            failures.append(f"{name}: {best['lds']} plain shared loads in the main loop, derived {lds}")
        if best["ldgsts"] == 0:
            failures.append(f"{name}: no cp.async (LDGSTS) in the main loop")
        if local:
            failures.append(f"{name}: {local} local-memory instructions (LDL/STL)")
    for family, count in seen.items():
        if count != len(TC_PRECISIONS):
            failures.append(f"{family}: {count} instantiations found, {len(TC_PRECISIONS)} expected")
    return sum(seen.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="+", help="libkiln.so or nvcc-built objects")
    ap.add_argument("--cuobjdump", default=None, help="path of cuobjdump (default: search)")
    ap.add_argument("--nvdisasm", default=None, help="path of nvdisasm (default: search)")
    ap.add_argument("--arch", default="sm_90")
    args = ap.parse_args()

    cuobjdump = find_tool("cuobjdump", args.cuobjdump)
    nvdisasm = find_tool("nvdisasm", args.nvdisasm)
    if cuobjdump is None or nvdisasm is None:
        print("sass_check: SKIPPED: cuobjdump and nvdisasm are needed (not found on PATH, in "
              "/usr/local/cuda/bin, in the repository's .venv/ or in Python's nvidia/cu*/bin). "
              "Install them with\n    bash cmake/deps.sh", file=sys.stderr)
        return SKIP
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(nvdisasm), env.get("PATH", "")])

    functions = {}
    for binary in args.binaries:
        res = subprocess.run([cuobjdump, "--dump-sass", "--gpu-architecture", args.arch, binary],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(f"sass_check: cuobjdump failed on {binary}:\n{res.stderr}", file=sys.stderr)
            return 1
        functions.update(parse(res.stdout))

    names = demangle(list(functions))
    failures, seen = [], {f: 0 for f in FAMILIES}
    print(f"{'kernel (' + args.arch + ')':<86} {'FFMA':>5} {'LDS':>4} {'.128':>4} "
          f"{'FFMA/LDS':>8} {'LDG':>4} {'BAR':>3} {'LDL/STL':>7}")
    for mangled in sorted(functions, key=lambda n: names[n]):
        family = next((f for f in FAMILIES if f in mangled), None)
        if family is None:
            continue
        seen[family] += 1
        name = short_name(names[mangled])
        best, local = analyse(functions[mangled])
        if best is None:
            failures.append(f"{name}: no loop found")
            continue
        ratio = best["ffma"] / best["lds"] if best["lds"] else float("inf")
        print(f"{name:<86} {best['ffma']:>5} {best['lds']:>4} {best['lds128']:>4} {ratio:>8.1f} "
              f"{best['ldg']:>4} {best['bar']:>3} {local:>7}")
        if best["lds128"] == 0:
            failures.append(f"{name}: main loop has no LDS.128")
        if ratio < MIN_FFMA_PER_LDS:
            failures.append(f"{name}: {ratio:.1f} FFMA per shared load (< {MIN_FFMA_PER_LDS})")
        if local:
            failures.append(f"{name}: {local} local-memory instructions (LDL/STL)")
    for family, count in seen.items():
        if count == 0:
            failures.append(f"{family}: not found in {', '.join(args.binaries)}")
    tc_count = check_tc(functions, names, failures)
    if failures:
        print("sass_check: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(f"sass_check: passed ({sum(seen.values())} kernels, {tc_count} tensor-core kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
