# gemini-edge-pool — every command installs what it needs on a fresh machine.
#   make test         unit tests + end-to-end tests (Viceroy + simulator + official SDKs)
#   make demo         the proxy on 127.0.0.1:7676 in front of the bundled Gemini simulator
#   make serve        the proxy on 127.0.0.1:7676 in front of the real Gemini API
#   make bench        latency/throughput against a bare pass-through, on both edges
#   make bench-quota  quota benchmark, smart vs seed cooling profiles, on both edges
#   make bench-burst  bursts of concurrent clients: calls per success, late hits, lost verdicts
#   make bench-instructions  instructions per request against the floor (valgrind; noise-free)
#   make bench-upload uploads of 8 MiB to 512 MiB through Viceroy: the proxy's memory stays flat
#   make simulate     the request flow against production stores as they behave (seeded, minutes)
#   make fuzz         every fuzz target for FUZZ_SECONDS each (nightly + cargo-fuzz, installed here)
#   make build-cf     the Cloudflare Workers edge (cloudflare/); then `npx wrangler dev` in cloudflare/
#   make demo-cf      the Workers edge under wrangler dev (local workerd) in front of the simulator

SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM := bin/main.wasm
SIM := target/release/gemini-sim
VENV := .venv
PY := $(VENV)/bin/python
VICEROY_VERSION := 0.22.0

.PHONY: simulate all build floor sim tools viceroy venv browser agents cf-tools build-cf demo-cf test unit e2e demo serve bench bench-quota bench-burst bench-instructions bench-upload fuzz clean fmt lint wasm-target

all: build

$(WASM): Cargo.toml Cargo.lock core/build.rs $(shell find src core/src -type f) | wasm-target
	$(CARGO) build --locked --release --target $(WASM_TARGET) --bin gemini-edge-pool
	mkdir -p bin
	cp target/$(WASM_TARGET)/release/gemini-edge-pool.wasm $(WASM)

build: $(WASM)

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

sim: $(SIM)

$(SIM): $(shell find tests/gemini-sim/src -name '*.rs') tests/gemini-sim/Cargo.toml
	$(CARGO) build --locked --release -p gemini-sim

# `cargo install --locked NAME --version V`; if the registry lacks a crate version the tool's
# lock file names (a new machine's crates.io index may), the same version of the tool with its
# dependencies resolved afresh.
cargo_install = $(CARGO) install --locked $(1) --version $(2) || \
	{ echo "$(1) $(2): its Cargo.lock names a crate the registry lacks; resolving its dependencies afresh"; \
	  $(CARGO) install $(1) --version $(2); }

viceroy:
	@command -v viceroy >/dev/null 2>&1 || { echo "installing viceroy $(VICEROY_VERSION) (first build takes 10-25 min)"; \
		$(call cargo_install,viceroy,$(VICEROY_VERSION)); }

venv: $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt
	touch $@

tools: viceroy venv browser agents

# The real coding agents the tests drive (Claude Code, Codex), pinned in
# tests/agents/package-lock.json; each test runs them with a HOME of its own, offline.
agents: tests/agents/node_modules/.installed

tests/agents/node_modules/.installed: tests/agents/package-lock.json
	cd tests/agents && npm ci --no-audit --no-fund >/dev/null
	touch $@

# The Workers edge: worker-build and wasm-bindgen-cli from crates.io (the version of
# wasm-bindgen must equal the one in cloudflare/Cargo.lock), wrangler (with workerd) from npm,
# and Miniflare (what the tests and the bench run the Worker in: cloudflare/local.mjs) from npm,
# pinned in cloudflare/package-lock.json; no telemetry, no prompts.
WORKER_BUILD_VERSION := 0.8.7
WASM_BINDGEN_VERSION := $(shell grep -A1 '^name = "wasm-bindgen"$$' cloudflare/Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
CF_SHIM := cloudflare/build/worker/shim.mjs
export WRANGLER_SEND_METRICS := false

cf-tools:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@worker-build --version 2>/dev/null | grep -q '$(WORKER_BUILD_VERSION)' || \
		{ $(call cargo_install,worker-build,$(WORKER_BUILD_VERSION)); }
	@wasm-bindgen --version 2>/dev/null | grep -q '$(WASM_BINDGEN_VERSION)' || \
		{ $(call cargo_install,wasm-bindgen-cli,$(WASM_BINDGEN_VERSION)); }
	@$(MAKE) --no-print-directory cloudflare/node_modules/.installed

cloudflare/node_modules/.installed: cloudflare/package-lock.json
	cd cloudflare && npm ci --no-audit --no-fund >/dev/null
	touch $@

$(CF_SHIM): cloudflare/Cargo.toml cloudflare/Cargo.lock core/build.rs $(shell find cloudflare/src core/src -type f) | cf-tools
	cd cloudflare && WASM_BINDGEN_BIN="$$(command -v wasm-bindgen)" CI=1 worker-build --release --no-opt

build-cf: $(CF_SHIM)

demo-cf: build-cf sim
	PATH="$$HOME/.cargo/bin:$$PATH" scripts/demo.sh --workers

# Debian's Chromium (driven by Playwright from PyPI, never its own download) and a CJK font
# for the console's Chinese screenshots.
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wenquanyi || \
		{ apt-get install -y chromium fonts-wqy-microhei >/dev/null 2>&1 || \
		  { apt-get update >/dev/null && apt-get install -y chromium fonts-wqy-microhei >/dev/null; }; }

unit:
	$(CARGO) test --locked -p gemini-pool-core -p gemini-pool-checks -p gemini-pool-simulate

e2e: build build-cf sim tools
	PATH="$$HOME/.cargo/bin:$$PATH" $(PY) -m pytest -q tests/e2e

test: unit e2e

demo: build sim viceroy
	PATH="$$HOME/.cargo/bin:$$PATH" scripts/demo.sh

serve: build viceroy
	PATH="$$HOME/.cargo/bin:$$PATH" scripts/serve.sh

bench: build floor build-cf sim tools
	@command -v wrk >/dev/null 2>&1 || apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
	PATH="$$HOME/.cargo/bin:$$PATH" $(PY) bench/latency.py

bench-instructions: build floor sim tools
	@command -v valgrind >/dev/null 2>&1 || apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
	PATH="$$HOME/.cargo/bin:$$PATH" $(PY) bench/instructions.py

bench-upload: build sim tools
	PATH="$$HOME/.cargo/bin:$$PATH" $(PY) bench/upload.py

floor: | wasm-target
	$(CARGO) build --locked --release --target $(WASM_TARGET) -p passthrough

bench-quota: build build-cf sim tools
	PATH="$$HOME/.cargo/bin:$$PATH" $(PY) bench/quota.py

bench-burst: build sim tools
	PATH="$$HOME/.cargo/bin:$$PATH" $(PY) bench/burst.py $(BURST_ARGS)

simulate:
	$(CARGO) run --locked --release -p gemini-pool-simulate --bin simulate

FUZZ_TARGETS := google_answer request openai_body key_list settings state_item attempt_loop scrub messages_request messages_answer responses_request responses_answer
FUZZ_SECONDS ?= 60

fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && cargo +nightly fuzz run -O $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 \
			| grep -E '^(stat::number_of_executed_units|==|SUMMARY|thread)' | sed "s/^/$$t: /" || exit 1; \
		cargo +nightly fuzz cmin -O $$t corpus/$$t >/dev/null 2>&1; \
	done

lint: | cf-tools
	$(CARGO) clippy --workspace --all-targets --exclude gemini-edge-pool --exclude passthrough -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) -p gemini-edge-pool -p passthrough -- -D warnings
	$(CARGO) fmt --all --check
	cd cloudflare && $(CARGO) clippy --locked --target wasm32-unknown-unknown -- -D warnings && $(CARGO) fmt --check

fmt:
	$(CARGO) fmt --all
	cd cloudflare && $(CARGO) fmt

clean:
	rm -rf bin target/e2e .local
