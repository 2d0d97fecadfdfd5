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

.PHONY: all build test lint fmt bench demo clean

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

demo: build
	$(BIN)/gradus import --input data/corpus --output $(RUNS)/demo/documents --overwrite
	$(BIN)/gradus inspect $(RUNS)/demo/documents --head 2
	$(BIN)/gradus verify $(RUNS)/demo/documents

clean:
	rm -rf $(RUNS)
	$(CARGO) clean
