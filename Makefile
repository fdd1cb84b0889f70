# oxwsgi: WSGI apps inside nginx and Apache.
#   make run    build and serve examples/hello.py through nginx on 127.0.0.1:8000
#   make test   every test of the workspace (installs what it needs first)
#   make test-dist DIST=trixie   the same suite in a Debian 13 root
#   make check  formatting and lints (the workspace's [workspace.lints]); make test runs it
#   make build  build the modules (release)
#   make bench  benchmarks (not tests)
#   make deb    Debian packages into dist/

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all deps build check test test-dist run bench deb clean

all: build

deps:
	@bash build/deps.sh
	@bash build/nginx-tree.sh

build: deps
	$(CARGO) build --release --workspace

# Formatting and every lint, as errors: the house rules are the build's.
check: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The package tests (tests/tests/packages.rs) install what `make deb` built.
test: deps check deb
	$(CARGO) build -p oxwsgi-nginx -p oxwsgi-apache
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

# The suite inside another Debian release's root, made from Debian's archive
# by build/debian-root.sh (e.g. `make test-dist DIST=trixie`); not yet part
# of `make test` (issue #14).
test-dist:
	@bash build/test-in-root.sh $(DIST)

run: build
	@bash build/run-nginx.sh

bench: build
	@bash build/deps.sh --bench
	$(CARGO) bench -p oxwsgi-core --bench hello
	/usr/bin/python3.11 bench/run.py
	/usr/bin/python3.11 bench/apache.py

deb: deps
	@bash packaging/build-deb.sh

clean:
	$(CARGO) clean
