#!/usr/bin/env bash
# Training speed of the Llama-style decoder against the GPT of the same size on the
# nanoGPT Shakespeare recipe: pipelines/shakespeare-char/pretrain-llama.toml against
# pretrain.toml on a finished `make shakespeare-llama` run folder's tokens, STEPS steps
# each, alternated ROUNDS times in one invocation so that both see the same machine.
# Prints each run's median step tokens/s (report.json's step_times) and their ratio.
#
#   scripts/llama-speed.sh runs/shakespeare-llama-1337 [STEPS] [ROUNDS]
set -euo pipefail
run=${1:?usage: scripts/llama-speed.sh RUN_DIR [STEPS] [ROUNDS]}
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
  for arm in llama gpt; do
    config=pipelines/shakespeare-char/pretrain.toml
    [ "$arm" = llama ] && config=pipelines/shakespeare-char/pretrain-llama.toml
    "$bin" -c "$config" \
      --set data.tokens="\"$run/tokens\"" \
      --set data.tokenizer="\"$run/tokenizer/tokenizer.json\"" \
      --set train.steps="$steps" --set train.eval_interval=0 --set train.eval_at_start=false \
      -o "$out/$arm-$r" >/dev/null 2>&1
    echo "round $r $arm: $(median "$out/$arm-$r") tokens/s"
  done
  python3 -c "import sys; print('round $r ratio llama/gpt: %.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" \
    "$(median "$out/llama-$r")" "$(median "$out/gpt-$r")"
done
