#!/usr/bin/env bash
# GPU check: the same short GPT training (nanoGPT's Shakespeare recipe, 200 steps) on the
# CPU and on CUDA device 0, from the same seed, so from the same initial weights and the
# same batches. Fails unless the first 20 losses agree within 1e-3 relative (f32 on both;
# the CPU runs gradus's fused kernels, the GPU candle's CUDA ops), then prints each
# device's median training tokens/s. About 3 minutes on one GPU after the build.
#
#   scripts/gpu-check.sh                    # builds with --features cuda (needs nvcc)
#   GRADUS_BIN=DIR scripts/gpu-check.sh     # binaries built with --features cuda elsewhere
#
# GRADUS_SHARED_DATASETS names the shared datasets folder (default ../shared/datasets);
# RUN the scratch folder (default runs/gpu-check); GPU_DEVICE the device compared with
# the CPU (default cuda:0; `cpu` runs the script itself on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GRADUS_SHARED_DATASETS:-../shared/datasets}
RUN=${RUN:-runs/gpu-check}
STEPS=${STEPS:-200}
GPU_DEVICE=${GPU_DEVICE:-cuda:0}
if [[ -z "${GRADUS_BIN:-}" ]]; then
    cargo build --features cuda --bin gradus --bin gradus-tokenize --bin gradus-pretrain
    GRADUS_BIN="${CARGO_TARGET_DIR:-target}/debug"
fi
B=$GRADUS_BIN
mkdir -p "$RUN"
"$B/gradus" import -c pipelines/shakespeare-char/import.toml \
    --input "$SHARED/tinyshakespeare/input.txt" --output "$RUN/documents" --overwrite
"$B/gradus-tokenize" train -c pipelines/shakespeare-char/tokenizer.toml \
    --input "$RUN/documents" --output "$RUN/tokenizer" --overwrite
"$B/gradus-tokenize" encode -c pipelines/shakespeare-char/encode.toml \
    --tokenizer "$RUN/tokenizer/tokenizer.json" --input "$RUN/documents" \
    --output "$RUN/tokens" --overwrite
train() {
    "$B/gradus-pretrain" -c pipelines/shakespeare-char/pretrain.toml \
        --set data.tokens="$RUN/tokens" --set data.tokenizer="$RUN/tokenizer/tokenizer.json" \
        --set train.steps="$STEPS" --set train.eval_interval=0 \
        --set train.checkpoint_interval=0 --set device="$1" \
        --output "$RUN/pretrain-$2" --overwrite
}
train cpu cpu
train "$GPU_DEVICE" gpu
# The per-step losses and tokens/s of a run's train.jsonl, one step a line.
column() { grep -o "\"$2\":[-0-9.e+]*" "$RUN/pretrain-$1/train.jsonl" | cut -d: -f2; }
paste <(column cpu loss | head -20) <(column gpu loss | head -20) | awk '
    { d = $1 - $2; if (d < 0) d = -d; rel = d / ($1 < 0 ? -$1 : $1)
      if (rel > worst) worst = rel
      printf "step %2d  cpu %.6f  gpu %.6f  rel %.2e\n", NR, $1, $2, rel }
    END { printf "largest relative difference over the first 20 steps: %.2e\n", worst
          if (NR < 20 || worst > 1e-3) { print "FAIL: losses differ"; exit 1 } }'
for device in cpu gpu; do
    column "$device" tokens_per_second | sort -g | awk -v d="$device" \
        '{ v[NR] = $1 } END { printf "%s: median %.0f training tokens/s over %d steps\n", d, v[int((NR + 1) / 2)], NR }'
done
