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
stage=${4:-pretrain}
source "$(dirname "$0")/ab-speed.sh"
arm() {
  local shuffle=false
  if [ "$1" = shuffled ]; then shuffle=true; fi
  pretrain -c "$run/$stage/config.toml" --set data.shuffle="$shuffle" -o "$2"
}
ab_speed shuffled in-order "${2:-300}" "${3:-2}"
