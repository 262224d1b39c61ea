# eventml — one front door for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help bootstrap demo test lint bench kafka-start kafka-stop clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@scripts/bootstrap
	@rm -f $(VENV)/.installed-* && touch $@

bootstrap: $(STAMP) ## Create .venv and install eventml with all extras (idempotent)

demo: bootstrap ## Run the fraud-detection demo on the embedded log
	$(BIN)/eventml demo fraud

test: bootstrap ## Provision Kafka, Redis and PostgreSQL, lint, type-check and run the whole suite
	@scripts/test

lint: bootstrap ## ruff + mypy
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench: bootstrap ## Log benchmarks: embedded (fsync) and Kafka, each against its raw baseline
	$(BIN)/eventml bench log --broker embedded://$$(mktemp -d)/bench --events 500000
	@addr=$$(scripts/kafka start | tail -n1) && $(BIN)/eventml bench log --broker kafka://$$addr --events 500000

kafka-start: bootstrap ## Start (or reuse) the local test broker; prints its address
	@scripts/kafka start

kafka-stop: ## Stop the local test broker
	@scripts/kafka stop

clean: ## Remove the venv, caches and local data (keeps the Kafka jar cache)
	rm -rf $(VENV) .eventml .pytest_cache .mypy_cache .ruff_cache
