# annot — build, test and run targets. Everything runs from ./.venv.
PY         ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed
N          ?= 4
ANNOTATORS ?= 8
ITEMS      ?= 100
BASE_PORT  ?= 4700
SEEDS      ?= 10000
DATA       ?=
TESTNET    ?= testnet

.PHONY: install js-deps browser webapp-vendor test-deps test lint systemd-verify sim quality bench bench-quick bench-readme scale faults testnet testnet-status testnet-stop testnet-clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Independent reference implementations for the tests (Helia, OpenZeppelin, noble),
# pinned in tests/js/package-lock.json; the runtime never needs Node.
JS_STAMP := tests/js/node_modules/.installed
js-deps: $(JS_STAMP)
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# The web app's vendored JS (pinned in tests/js/package-lock.json): copy the built
# files and their licenses into node/gateway/static/vendor/ (committed; no build at install).
VENDOR := node/gateway/static/vendor
webapp-vendor: $(JS_STAMP)
	mkdir -p $(VENDOR)/noble-ed25519 $(VENDOR)/noble-hashes
	cp tests/js/node_modules/@noble/ed25519/index.js tests/js/node_modules/@noble/ed25519/LICENSE $(VENDOR)/noble-ed25519/
	cp tests/js/node_modules/@noble/hashes/sha2.js tests/js/node_modules/@noble/hashes/_md.js \
		tests/js/node_modules/@noble/hashes/_u64.js tests/js/node_modules/@noble/hashes/utils.js \
		tests/js/node_modules/@noble/hashes/LICENSE $(VENDOR)/noble-hashes/
	sed -i '/sourceMappingURL/d' $(VENDOR)/noble-ed25519/*.js $(VENDOR)/noble-hashes/*.js

# Debian's headless Chromium and its driver for the browser tests (idempotent).
# ... and strace (the power-loss test checks fsync ordering) and iproute2 (tc, ip netns
# for the partition tests): Debian packages, installed only when missing.
SYSTEM_TOOLS := chromium chromedriver strace tc ip
browser:
	@missing=0; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium chromium-driver strace iproute2 >/dev/null; fi

test-deps: install js-deps browser

test: test-deps
	$(BIN)/python -m pytest tests --durations=25

lint: install
	$(BIN)/ruff check protocol node tests
	$(BIN)/mypy --strict protocol node
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint deploy/container/Dockerfile
	$(MAKE) --no-print-directory systemd-verify

# systemd-analyze verify checks the unit offline (no running systemd needed; it runs in
# this container). It also insists that ExecStart's binary exists, and the unit names the
# system-wide install (/usr/local/bin/annot, see README), so it checks a copy whose only
# change is that path, pointed at this venv's annot. Any warning fails. Installs Debian's systemd if missing.
systemd-verify: install
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
	@tmp=$$(mktemp -d) && sed 's|/usr/local/bin/annot|$(abspath $(BIN))/annot|g' \
		deploy/systemd/annot.service > $$tmp/annot.service && \
		out=$$(systemd-analyze verify $$tmp/annot.service 2>&1); rc=$$?; rm -rf $$tmp; \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; exit $$rc  # a warning fails too

sim: install
	$(BIN)/python -m tests.sim.run --seeds $(SEEDS)

# consensus cost per validator and per final item at 4..128 validators on a lossy WAN
# (simulated, real Engine): docs/scaling.json and docs/scaling.png, shown in docs/scaling.md
scale: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[scale]'
	$(BIN)/python -m tests.sim.scale

bench: install
	$(BIN)/python -m tests.bench.run

bench-quick: install
	$(BIN)/python -m tests.bench.run --quick

# README's benchmark table (between its bench-table markers) from tests/bench/results.json
bench-readme: install
	$(BIN)/python -m tests.bench.run --readme

faults: install
	$(BIN)/python -m tests.faults.run

# crowd-kit (the quality extra) beside annot's rules on every set in tests/data/crowd,
# which rewrites tests/data/crowd/crowdkit_accuracy.json; then the 4-validator replay
QUALITY_SETS ?= d_Duck_Identification
QUALITY_STAMP := $(VENV)/.installed-quality
$(QUALITY_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,quality]'
	touch $(QUALITY_STAMP)
quality: install $(QUALITY_STAMP)
	$(BIN)/python -m tests.quality.quality --crowdkit --network --sets $(QUALITY_SETS)

testnet: install
	$(BIN)/python -m node.testnet up --dir $(TESTNET) --n $(N) --annotators $(ANNOTATORS) \
		--base-port $(BASE_PORT) $(if $(DATA),--data $(DATA),--items $(ITEMS))

testnet-status: install
	$(BIN)/python -m node.testnet status --dir $(TESTNET)

testnet-stop: install
	$(BIN)/python -m node.testnet stop --dir $(TESTNET)

testnet-clean: install
	$(BIN)/python -m node.testnet clean --dir $(TESTNET)
