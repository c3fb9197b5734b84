#!/usr/bin/env bash
# examples/fer_cnn/run.sh — the README's first command: installs what is missing, builds fer_cnn
# (once), trains it on the built-in synthetic faces, then writes the run's HTML report
# (runs/fer_cnn/report.html). On a machine with a GPU it trains there; on a CPU it uses the CPU
# defaults (a narrower network, fewer images: printed at the start), which reach >= 90%
# validation accuracy in a few minutes on 2 cores. Run again, it keeps the previous run as
# runs/fer_cnn.1 (.2, ...) and trains a new one.
#   bash examples/fer_cnn/run.sh [fer_cnn train options...]   e.g. --width 1 --epochs 30
#   KILN_JOBS=N   parallel build jobs (default: nproc)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
jobs=${KILN_JOBS:-$(nproc)}

bash "$root/cmake/deps.sh" --minimal
echo "== fer_cnn: build (once) =="
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j "$jobs" --target fer_cnn
echo "== fer_cnn: train =="
cd "$root"
run="$root/runs/fer_cnn"
# fer_cnn train refuses a folder that holds a run (it would replace its best model): keep the
# previous run under the first free runs/fer_cnn.N instead of deleting it.
if [ -e "$run/last.train.safetensors" ] || [ -e "$run/best.safetensors" ] || [ -e "$run/history.csv" ]; then
  n=1
  while [ -e "$run.$n" ]; do n=$((n + 1)); done
  mv "$run" "$run.$n"
  echo "the previous run in runs/fer_cnn was moved to runs/fer_cnn.$n (delete it when not needed)"
fi
"$root/build/examples/fer_cnn/fer_cnn" train --out "$run" "$@"
echo "== fer_cnn: report (test-set evaluation, saliency maps, filter visualisation) =="
"$root/build/examples/fer_cnn/fer_cnn" report --run "$root/runs/fer_cnn"
