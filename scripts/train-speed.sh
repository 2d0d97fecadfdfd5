#!/usr/bin/env bash
# gradus against PyTorch on the two training steps of benches/train_step.rs (nanoGPT's
# CPU recipe and a BERT-mini MLM step), on 1 core (`taskset -c 0`) and on 2, each pair
# alternated ROUNDS times in one invocation so that both see the same machine: one
# bench run of one arm is a median over 60 (nanoGPT) or 15 (BERT-mini) steps, and the
# machine's own speed drifts between runs by more than the differences measured here.
# Prints the machine, every run's tokens/s and ratio, and per pair the median ratio.
#
#   TORCH_PYTHON=/path/to/venv/bin/python scripts/train-speed.sh [ROUNDS]
#
# On a machine without a Rust toolchain, build the bench here (`cargo bench --profile dev
# --bench train_step --no-run`) and point TRAIN_STEP_BIN at the executable it names.
set -euo pipefail
rounds=${1:-3}
python=${TORCH_PYTHON:?set TORCH_PYTHON to a Python with torch}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bench() { # ARGS...: the train_step bench, PyTorch left out
  if [ -n "${TRAIN_STEP_BIN:-}" ]; then
    GRADUS_TORCH_PYTHON= "$TRAIN_STEP_BIN" "$@"
  else
    GRADUS_TORCH_PYTHON= cargo bench -q --profile dev --bench train_step -- "$@"
  fi
}

# The bench's own machine line (CPU model, flags, caches, threads, commit) from a 2-step run.
bench gpt fused 2>/dev/null | sed -n '/^machine:/p'

gradus_tps() { # CPUS MODEL
  taskset -c "$1" bash -c "$(declare -f bench); bench --bench $2 fused" 2>/dev/null |
    sed -n 's/.*\[Fused\].* \([0-9]*\) tokens\/s.*/\1/p'
}

torch_tps() { # CPUS MODEL
  local key=gpt_nanogpt_cpu
  if [ "$2" = bert ]; then key=bert_mini_mlm; fi
  taskset -c "$1" "$python" benches/train_step_torch.py --bench "$2" |
    python3 -c "import json,sys; print(round(json.load(sys.stdin)['$key']))"
}

for cpus in 0 0-1; do
  for model in gpt bert; do
    ratios=()
    for r in $(seq "$rounds"); do
      ours=$(gradus_tps "$cpus" "$model")
      theirs=$(torch_tps "$cpus" "$model")
      ratio=$(python3 -c "print('%.3f' % ($ours / $theirs))")
      ratios+=("$ratio")
      echo "cpus $cpus $model round $r: gradus $ours tokens/s, PyTorch $theirs, ratio $ratio"
    done
    python3 -c "import statistics,sys; print('cpus $cpus $model: median ratio %.3f over %d rounds' % (statistics.median(map(float, sys.argv[1:])), len(sys.argv) - 1))" "${ratios[@]}"
  done
done
