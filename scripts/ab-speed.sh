# Sourced by the *-speed.sh scripts: two arms of gradus-pretrain, each run STEPS steps,
# alternated ROUNDS times in one invocation so that both see the same machine. Prints
# the CPU model, each run's median step tokens/s (report.json's step_times) and each
# round's ratio of the first arm to the second.
#
# The sourcing script defines `arm NAME OUT`, which calls `pretrain` with the flags of
# arm NAME and `-o OUT`, then calls `ab_speed FIRST SECOND STEPS ROUNDS`.
bin=${CARGO_TARGET_DIR:-target}/debug/gradus-pretrain
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
steps=300

median() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step_times']['median_tokens_per_second'])" "$1/report.json"
}

# gradus-pretrain for the round's steps, without evaluations.
pretrain() {
  "$bin" "$@" --set train.steps="$steps" --set train.eval_interval=0 \
    --set train.eval_at_start=false >/dev/null 2>&1
}

ab_speed() {
  local first=$1 second=$2 rounds=$4 r name
  steps=$3
  grep -m1 'model name' /proc/cpuinfo
  for r in $(seq "$rounds"); do
    for name in "$first" "$second"; do
      arm "$name" "$out/$name-$r"
      echo "round $r $name: $(median "$out/$name-$r") tokens/s"
    done
    python3 -c "import sys; print('round $r ratio $first/$second: %.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" \
      "$(median "$out/$first-$r")" "$(median "$out/$second-$r")"
  done
}
