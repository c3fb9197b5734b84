#!/usr/bin/env bash
# cmake/deps.sh — installs the Debian packages (and the one PyPI tool) Kiln's build and tests need,
# skipping what is already there. Used by tests/run.sh, examples/fer_cnn/run.sh and .ci/run.
#   bash cmake/deps.sh            build + test dependencies
#   bash cmake/deps.sh --minimal  only what building the library and fer_cnn needs
set -euo pipefail

minimal=0
[[ "${1:-}" == "--minimal" ]] && minimal=1

packages=(cmake ninja-build g++ pkg-config catch2 libopenblas-dev libcli11-dev nlohmann-json3-dev
          libstb-dev libomp-dev libcairo2-dev)
if [[ $minimal == 0 ]]; then
  # clang-14 and its runtime libraries (libFuzzer, ASan, UBSan) build tests/fuzz.
  packages+=(libbenchmark-dev chromium python3-torch python3-numpy clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "kiln: installing missing Debian packages: ${missing[*]}"
  sudo=""
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "kiln: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "kiln: note: nvcc is in /usr/local/cuda/bin but not on PATH; CMake will still find it"
fi

# cuobjdump and nvdisasm (for the SASS check of the kernels' main loops) are not in the CUDA toolkit
# image here; NVIDIA publishes them on PyPI.
if [[ $minimal == 0 ]] && ! command -v cuobjdump >/dev/null && [[ ! -x /usr/local/cuda/bin/cuobjdump ]]; then
  if ! python3 -m pip show -q nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm >/dev/null 2>&1; then
    echo "kiln: installing cuobjdump and nvdisasm from PyPI (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm)"
    python3 -m pip install -q nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm >/dev/null 2>&1 ||
      echo "kiln: note: could not install cuobjdump; the SASS check will be reported as skipped"
  fi
fi
