#!/usr/bin/env bash
# Training speed of a continued run against the same run from random weights: the
# Shakespeare arm of a finished `make transfer-shakespeare` run folder, STEPS steps each,
# alternated ROUNDS times in one invocation so that both see the same machine. Prints
# each run's median step tokens/s (report.json's step_times) and their ratio.
#
#   scripts/continued-speed.sh runs/transfer-shakespeare-1337 [STEPS] [ROUNDS]
set -euo pipefail
run=${1:?usage: scripts/continued-speed.sh RUN_DIR [STEPS] [ROUNDS]}
steps=${2:-300}
rounds=${3:-2}
bin=${CARGO_TARGET_DIR:-target}/debug/gradus-pretrain
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
grep -m1 'model name' /proc/cpuinfo
median() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step_times']['median_tokens_per_second'])" "$1/report.json"
}
for r in $(seq "$rounds"); do
  for arm in continued scratch; do
    init=()
    [ "$arm" = continued ] && init=(--init-from "$run/general-lm/model")
    "$bin" -c pipelines/transfer-shakespeare/shakespeare.toml "${init[@]}" \
      --set data.tokens="\"$run/shakespeare-tokens\"" \
      --set data.tokenizer="\"$run/tokenizer/tokenizer.json\"" \
      --set train.steps="$steps" --set train.eval_interval=0 --set train.eval_at_start=false \
      -o "$out/$arm-$r" >/dev/null 2>&1
    echo "round $r $arm: $(median "$out/$arm-$r") tokens/s"
  done
  python3 -c "import sys; print('round $r ratio continued/scratch: %.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" \
    "$(median "$out/continued-$r")" "$(median "$out/scratch-$r")"
done
