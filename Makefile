# oxwsgi: WSGI apps inside nginx and Apache.
#   make run    build and serve examples/hello.py through nginx on 127.0.0.1:8000
#   make test   every test of the workspace, for Debian 12 and Debian 13
#               (installs what it needs first); DIST=trixie for one release
#   make check  formatting, lints (the workspace's [workspace.lints]), module circles and long functions; make test runs it
#   make build  build the modules (release)
#   make bench  benchmarks (not tests); DIST=trixie in the Debian 13 root
#   make deb    Debian packages into dist/RELEASE/ (DIST=trixie for Debian 13)
#   make fuzz   the fuzz targets, FUZZ_SECONDS each (default 300); make test
#               runs them for 15 s each

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all deps build check test test-here test-suite run bench bench-here deb clean fuzz

# The Debian releases oxwsgi is built and tested for. The machine's own is
# tested on the machine; another runs in a root of that release made from
# Debian's archive (build/in-dist.sh).
RELEASES := bookworm trixie
HOST_DIST := $(shell . /etc/os-release && echo $$VERSION_CODENAME)
ifeq ($(origin DIST),undefined)
TEST_DISTS := $(RELEASES)
DIST := $(HOST_DIST)
else
TEST_DISTS := $(DIST)
endif

all: build

deps:
	@bash build/deps.sh
	@bash build/nginx-tree.sh

build: deps
	$(CARGO) build --release --workspace --exclude oxwsgi-daemon
	bash build/daemon-ext.sh --release

# Formatting and every lint, as errors: the house rules are the build's,
# and so are the layering (no module circle in any crate: build/circles.py)
# and the size of functions (none over 80 lines but flat match tables:
# build/fn_length.py).
check: deps
	/usr/bin/python3 build/circles.py
	/usr/bin/python3 build/fn_length.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-check -- -D warnings

# Every release's suite, even when one fails; fails if any did.
test:
	@failed=""; \
	for d in $(TEST_DISTS); do \
		echo "== make test: Debian $$d"; \
		if [ "$$d" = "$(HOST_DIST)" ]; then $(MAKE) --no-print-directory test-here || failed="$$failed $$d"; \
		else bash build/in-dist.sh "$$d" make --no-print-directory test-suite TESTS="$(TESTS)" || failed="$$failed $$d"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: failed for$$failed"; exit 1; fi

# The suite on this machine: formatting and lints, the tests, and a short
# run of every fuzz target (the same source is fuzzed once, here).
test-here: deps check test-suite
	bash build/fuzz.sh 15

# The fuzz targets (fuzz/, build/fuzz.sh) for as long as asked, each.
FUZZ_SECONDS ?= 300
fuzz: deps
	bash build/fuzz.sh $(FUZZ_SECONDS)

# The tests, on the release make runs on (in another release's root, make
# test comes here: formatting and lints are checked once, on the machine's,
# as the source is the same). The package tests (tests/tests/packages.rs)
# install what `make deb` built; the others load debug builds, whose
# failpoints (core::guard) exist only there. TESTS: nextest's filter
# arguments, e.g. make test TESTS="-E 'test(http3)'".
test-suite: deps deb
	$(CARGO) build -p oxwsgi-nginx -p oxwsgi-apache -p oxwsgi-cli
	bash build/daemon-ext.sh
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --exclude oxwsgi-daemon --no-fail-fast $(TESTS); \
	else \
		$(CARGO) test --workspace --exclude oxwsgi-daemon --no-fail-fast $(TESTS); \
	fi

run: build
	@bash build/run-nginx.sh

# Another release's benchmarks run in its root, with its servers, Python
# and peers (make bench DIST=trixie).
bench:
	@if [ "$(DIST)" = "$(HOST_DIST)" ]; then $(MAKE) --no-print-directory bench-here; \
	else bash build/in-dist.sh $(DIST) make --no-print-directory bench-here; fi

bench-here: build
	@bash build/deps.sh --bench
	$(CARGO) bench -p oxwsgi-core --bench hello
	/usr/bin/python3 bench/run.py
	/usr/bin/python3 bench/apache.py
	bash bench/interp_speed.sh

deb: deps
	@bash packaging/build-deb.sh --dist $(DIST)

clean:
	$(CARGO) clean
