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
source "$(dirname "$0")/ab-speed.sh"
arm() {
  local config=pipelines/shakespeare-char/pretrain.toml
  if [ "$1" = llama ]; then config=pipelines/shakespeare-char/pretrain-llama.toml; fi
  pretrain -c "$config" \
    --set data.tokens="\"$run/tokens\"" \
    --set data.tokenizer="\"$run/tokenizer/tokenizer.json\"" -o "$2"
}
ab_speed llama gpt "${2:-300}" "${3:-2}"
