#!/usr/bin/env bash
# Training speed of a continued run against the same run from random weights: the
# Shakespeare arm of a finished `make transfer-shakespeare` run folder, STEPS steps each,
# alternated ROUNDS times in one invocation so that both see the same machine. Prints
# each run's median step tokens/s (report.json's step_times) and their ratio.
#
#   scripts/continued-speed.sh runs/transfer-shakespeare-1337 [STEPS] [ROUNDS]
set -euo pipefail
run=${1:?usage: scripts/continued-speed.sh RUN_DIR [STEPS] [ROUNDS]}
source "$(dirname "$0")/ab-speed.sh"
arm() {
  local init=()
  if [ "$1" = continued ]; then init=(--init-from "$run/general-lm/model"); fi
  pretrain -c pipelines/transfer-shakespeare/shakespeare.toml "${init[@]}" \
    --set data.tokens="\"$run/shakespeare-tokens\"" \
    --set data.tokenizer="\"$run/tokenizer/tokenizer.json\"" -o "$2"
}
ab_speed continued scratch "${2:-300}" "${3:-2}"
