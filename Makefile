# Two set-up commands: `make dev` runs the local stack, `make test` runs every test.
# Both install what they need: the pinned Python tools into .venv, Rust crates via cargo.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum infra/requirements.txt | cut -c1-12)

# The emulator launcher and the tests find moto through this.
export MOTO_PYTHON := $(abspath $(PY))
export PORT ?= 3000

TENANT ?= acme
ROLE ?= admin
SUB ?= agent-1

.PHONY: dev test bench token deps fmt clean

$(STAMP): infra/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## deps: install the pinned Python tools (moto server, cfn-lint) into .venv
deps: $(STAMP)

## dev: moto + template resources + dev server on 127.0.0.1:$(PORT); Ctrl-C stops all
dev: $(STAMP)
	cargo run --quiet --locked -p local-stack --bin dev

## test: formatting, clippy, cfn-lint, unit and integration tests (what CI runs)
test: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	cargo test --workspace --locked

## bench: handler CPU (criterion), AWS requests per operation, media validation memory
bench: $(STAMP)
	cargo bench --locked -p shared --bench ingest -- --warm-up-time 1 --measurement-time 3
	python3 infra/bench_report.py "$$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
	cargo run --quiet --locked -p local-stack --bin bench_requests
	cargo run --quiet --locked -p local-stack --bin bench_media

## token: print a local agent JWT, e.g. `make token TENANT=acme ROLE=agent`
token:
	@cargo run --quiet --locked -p local-stack --bin token -- --tenant $(TENANT) --role $(ROLE) --sub $(SUB)

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV)
