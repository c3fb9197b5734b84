#!/usr/bin/env bash
# cmake/deps.sh — installs the Debian packages and the PyPI tools Kiln's build and tests need,
# skipping what is already there, and fails (with the reason) when it cannot. Used by tests/run.sh,
# examples/fer_cnn/run.sh and .ci/run.
#   bash cmake/deps.sh            build + test dependencies
#   bash cmake/deps.sh --minimal  only what building the library and fer_cnn needs
# PyPI tools go into the build's own virtual environment, .venv/ at the repository root
# (git-ignored): Debian's Python refuses `pip install` outside one (PEP 668, "externally managed
# environment"). tests/sass_check.py, tests/sass/CMakeLists.txt and the top-level CMakeLists.txt
# (CUTLASS's headers, for tests/tensor_core) look for them there.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"

die() {
  echo "kiln: error: $*" >&2
  exit 1
}

# apt_install PACKAGE...: the Debian packages not yet installed.
apt_install() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "kiln: installing missing Debian packages: ${missing[*]}"
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install ${missing[*]}"
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# venv_install REQUIREMENT...: pip requirements (e.g. "nvidia-cuda-cuobjdump==13.*") into .venv/,
# creating it first (with Debian's python3-venv when the venv module is missing).
venv_install() {
  if [[ ! -x $venv/bin/python ]]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    echo "kiln: creating the virtual environment $venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  fi
  # pip itself skips what is already satisfied (versions included), without the network.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" ||
    die "pip could not install $* into $venv (its message is above); the test suite" \
        "needs them: fix the cause (network, PyPI) and run bash cmake/deps.sh again"
}

minimal=0
[[ "${1:-}" == "--minimal" ]] && minimal=1

# libonnx-dev + libprotobuf-dev: onnx/ (kiln_onnx: ONNX export and import, fer_cnn export).
packages=(cmake ninja-build g++ pkg-config catch2 libopenblas-dev libcli11-dev nlohmann-json3-dev
          libstb-dev libomp-dev libcairo2-dev libonnx-dev libprotobuf-dev libopenmpi-dev openmpi-bin)
if [[ $minimal == 0 ]]; then
  # clang-14 and its runtime libraries (libFuzzer, ASan, UBSan) build tests/fuzz.
  packages+=(libbenchmark-dev chromium python3-torch python3-numpy clang-14 libclang-rt-14-dev)
fi

apt_install "${packages[@]}"

if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "kiln: note: nvcc is in /usr/local/cuda/bin but not on PATH; CMake will still find it"
fi

# cuobjdump and nvdisasm (for the SASS check of the kernels' main loops, which needs nvcc) are not
# in the CUDA toolkit image here; NVIDIA publishes them on PyPI, one release per CUDA version: take
# the one of nvcc's major version.
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ $minimal == 0 && -x $nvcc ]] && ! command -v cuobjdump >/dev/null &&
   [[ ! -x /usr/local/cuda/bin/cuobjdump ]]; then
  cuda_major=$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  [[ -n $cuda_major ]] || die "could not read the CUDA version from $nvcc --version"
  venv_install "nvidia-cuda-cuobjdump==$cuda_major.*" "nvidia-cuda-nvdisasm==$cuda_major.*"
fi

# CUTLASS's C++ headers, the oracle of the fragment-layout test (tests/tensor_core: cute's layouts,
# evaluated by a host program that nvcc compiles): PyPI's nvidia-cutlass ships them under
# cutlass_library/source/include. Only the headers are needed, so not its Python dependencies.
if [[ $minimal == 0 && -x $nvcc ]] &&
   ! compgen -G "$venv/lib/python3*/site-packages/cutlass_library/source/include/cute" >/dev/null; then
  venv_install --no-deps "nvidia-cutlass==4.2.0.0"
fi

# ONNX Runtime (with numpy) runs Kiln's ONNX exports in tests/onnx (kiln_onnx_runtime, which also
# works without a GPU: the CPU wheel).
if [[ $minimal == 0 ]]; then
  venv_install onnxruntime numpy
fi
