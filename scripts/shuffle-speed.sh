#!/usr/bin/env bash
# Training speed with the shuffled epoch order against dataset order: a finished run
# folder's pretraining stage (its config, tokens and tokenizer) rerun for STEPS steps
# with `data.shuffle` true and false, alternated ROUNDS times in one invocation so that
# both see the same machine. Prints each run's median step tokens/s (report.json's
# step_times) and their ratio.
#
#   scripts/shuffle-speed.sh runs/shakespeare-char-1337 [STEPS] [ROUNDS] [STAGE]
#   scripts/shuffle-speed.sh runs/demo 300 2 pretrain
set -euo pipefail
run=${1:?usage: scripts/shuffle-speed.sh RUN_DIR [STEPS] [ROUNDS] [STAGE]}
steps=${2:-300}
rounds=${3:-2}
stage=${4:-pretrain}
bin=${CARGO_TARGET_DIR:-target}/debug/gradus-pretrain
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
grep -m1 'model name' /proc/cpuinfo
median() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step_times']['median_tokens_per_second'])" "$1/report.json"
}
for r in $(seq "$rounds"); do
  for shuffle in true false; do
    "$bin" -c "$run/$stage/config.toml" --set data.shuffle="$shuffle" \
      --set train.steps="$steps" --set train.eval_interval=0 --set train.eval_at_start=false \
      -o "$out/$shuffle-$r" >/dev/null 2>&1
    echo "round $r shuffle=$shuffle: $(median "$out/$shuffle-$r") tokens/s"
  done
  python3 -c "import sys; print('round $r ratio shuffled/in order: %.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" \
    "$(median "$out/true-$r")" "$(median "$out/false-$r")"
done
