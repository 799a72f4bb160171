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

.PHONY: dev test bench browser token deps fmt clean fuzz load

$(STAMP): infra/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## deps: install the pinned Python tools (moto server, cfn-lint) into .venv
deps: $(STAMP)

## dev: moto + template resources + dev server on 127.0.0.1:$(PORT); Ctrl-C stops all
dev: $(STAMP)
	@echo "building the functions and the dev server (the first run compiles for several minutes)..."
	cargo run --quiet --locked -p local-stack --bin dev

# The browser tests drive Debian's chromium through chromedriver (tests/src/browser.rs).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
BROWSER_PACKAGES := chromium chromium-driver
# root in CI; sudo elsewhere
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

## browser: install Debian's chromium and chromium-driver when either is missing
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  command -v apt-get >/dev/null || { echo "install chromium at $(CHROMIUM) and chromedriver at $(CHROMEDRIVER)" >&2; exit 1; }; \
	  $(APT_GET) install -y --no-install-recommends $(BROWSER_PACKAGES) \
	  || { $(APT_GET) update && $(APT_GET) install -y --no-install-recommends $(BROWSER_PACKAGES); }; \
	fi

## test: formatting, clippy, cfn-lint, unit and integration tests (what CI runs)
test: $(STAMP) browser
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	cargo test --workspace --locked

# make bench only: cargo lambda (with zig) builds the release bootstraps, x86_64 and arm64.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell sha1sum infra/requirements-bench.txt | cut -c1-12)
LAMBDA_BINS := --bin webhook --bin chatroom --bin media --bin outbound --bin bots --bin scheduler --bin bookings --bin payments --bin calls --bin hello
TARGET_DIR = $(shell cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

$(BENCH_STAMP): infra/requirements-bench.txt
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-bench.txt
	rm -f $(BENCH_VENV)/.installed-*
	touch $(BENCH_STAMP)

## bench: handler CPU and the bot decision (criterion), AWS requests per operation, bot reply
## latency (webhook to the provider sandbox, 100 conversations), conversation list pages over
## 10,000 conversations (~15 min on moto, mostly seeding), media validation memory, AWS requests
## per scheduled-message fire and 1,000 scheduled messages due in one minute (~3 min), AWS
## requests per booking, the booking page's render time and 100 racing bookings, AWS requests
## per payment request and Stripe webhook event, AWS requests per signaling frame, and the
## release bootstraps' size, cold start and peak memory (builds both architectures)
bench: $(STAMP) $(BENCH_STAMP)
	@# Every table is printed even when an earlier one misses a budget; the exit status
	@# says whether all passed.
	@status=0; \
	cargo bench --locked -p shared --bench ingest -- --warm-up-time 1 --measurement-time 3 || status=1; \
	cargo bench --locked -p shared --bench bot_decide || status=1; \
	python3 infra/bench_report.py "$(TARGET_DIR)" || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_requests || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_bots || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_lists || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_media || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_schedules || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_bookings || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_payments || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_calls || status=1; \
	PATH="$(abspath $(BENCH_VENV))/bin:$$PATH" cargo lambda build --release --locked $(LAMBDA_BINS) --lambda-dir "$(TARGET_DIR)/lambda/x86_64" || status=1; \
	PATH="$(abspath $(BENCH_VENV))/bin:$$PATH" cargo lambda build --release --locked --arm64 $(LAMBDA_BINS) --lambda-dir "$(TARGET_DIR)/lambda/arm64" || status=1; \
	cargo run --quiet --locked -p local-stack --bin bench_cold -- "$(TARGET_DIR)/lambda/x86_64" "$(TARGET_DIR)/lambda/arm64" || status=1; \
	exit $$status

## load: 10,000 signed webhooks from 200 concurrent senders (10 % re-delivered) and 1,000 agent sends meanwhile, against an in-process local stack on loopback; fails on any 5xx, loss or duplicate (LOAD_WEBHOOKS, LOAD_SENDERS, LOAD_AGENT_SENDS scale it; posting stops after LOAD_BURST_SECONDS, 20 min, and the figures are over what was posted)
load: $(STAMP)
	cargo run --quiet --locked -p local-stack --bin load

# make fuzz: coverage-guided fuzzing (libFuzzer through cargo-fuzz, on the nightly
# toolchain) of every parser of untrusted bytes, FUZZ_SECONDS a target; without nightly,
# the stable mutation run of the same targets for as long.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := meta_webhook wechat_xml media office_zip stripe_signature ws_frame
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TOOLS := $(HOME)/.cache/chatroom/tools

## fuzz: libFuzzer on the webhook, XML, media, ZIP, Stripe-Signature and WebSocket parsers (FUZZ_SECONDS=60 each)
fuzz:
	@if ! rustup run nightly rustc --version >/dev/null 2>&1; then \
		echo "no nightly toolchain: running the stable mutation fuzzer for $(FUZZ_SECONDS) s a target"; \
		FUZZ_SECONDS=$(FUZZ_SECONDS) cargo test --release --locked -p shared --lib fuzzing_tests -- --test-threads 1; \
		exit $$?; \
	fi; \
	if ! $(FUZZ_TOOLS)/bin/cargo-fuzz --version 2>/dev/null | grep -q "$(CARGO_FUZZ_VERSION)"; then \
		cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(FUZZ_TOOLS); \
	fi; \
	echo "building the fuzz targets (nightly, sanitizer build: the first one takes several minutes)"; \
	PATH="$(FUZZ_TOOLS)/bin:$$PATH" cargo +nightly fuzz build --fuzz-dir fuzz --target-dir "$(TARGET_DIR)/fuzz" || exit 1; \
	status=0; failed=""; \
	for target in $(FUZZ_TARGETS); do \
		case $$target in \
			meta_webhook) seeds="tests/fixtures/webhooks/whatsapp tests/fixtures/webhooks/messenger tests/fixtures/webhooks/instagram";; \
			wechat_xml) seeds="tests/fixtures/webhooks/wechat";; \
			media|office_zip) seeds="tests/fixtures/media";; \
			*) seeds="fuzz/seeds/$$target";; \
		esac; \
		mkdir -p "$(TARGET_DIR)/fuzz/corpus/$$target" "$(TARGET_DIR)/fuzz/artifacts/$$target"; \
		echo "== $$target ($(FUZZ_SECONDS) s)"; \
		PATH="$(FUZZ_TOOLS)/bin:$$PATH" cargo +nightly fuzz run --fuzz-dir fuzz --target-dir "$(TARGET_DIR)/fuzz" \
			$$target "$(TARGET_DIR)/fuzz/corpus/$$target" $$seeds -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=262144 -rss_limit_mb=2048 \
			-artifact_prefix="$(TARGET_DIR)/fuzz/artifacts/$$target/" -print_final_stats=1 2>&1 \
			| grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done [0-9]+ runs)" ; \
		test "$${PIPESTATUS[0]}" -eq 0 || { echo "$$target: FAILED (artifacts in $(TARGET_DIR)/fuzz/artifacts/$$target)"; status=1; failed="$$failed $$target"; }; \
	done; \
	if [ $$status -eq 0 ]; then echo "fuzz: PASS, $(words $(FUZZ_TARGETS)) targets, $(FUZZ_SECONDS) s each, 0 crashes"; \
	else echo "fuzz: FAIL:$$failed"; fi; \
	exit $$status

## token: print a local agent JWT, e.g. `make token TENANT=acme ROLE=agent`
token:
	@cargo run --quiet --locked -p local-stack --bin token -- --tenant $(TENANT) --role $(ROLE) --sub $(SUB)

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) $(BENCH_VENV)
