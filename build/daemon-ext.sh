#!/bin/bash
# Builds oxwsgi's daemon extension module (daemon_ext) and puts it beside
# the server modules of the same profile, as oxwsgi_daemon.so, where they
# look for it. PYO3_BUILD_EXTENSION_MODULE=1 keeps libpython out of its
# links (an extension takes CPython from the interpreter that loads it);
# the variable changes how every pyo3 crate is built, so the extension has
# a target directory of its own and the modules' builds never redo theirs.
#   build/daemon-ext.sh [--release] [cargo build options...]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
args=("$@")
if [ "${1:-}" = "--release" ]; then profile=release; fi
target="${CARGO_TARGET_DIR:-target}"
PYO3_BUILD_EXTENSION_MODULE=1 CARGO_TARGET_DIR="$target/ext" \
    "${CARGO:-cargo}" build -p oxwsgi-daemon "${args[@]}"
mkdir -p "$target/$profile"
cp "$target/ext/$profile/liboxwsgi_daemon.so" "$target/$profile/oxwsgi_daemon.so.new"
mv "$target/$profile/oxwsgi_daemon.so.new" "$target/$profile/oxwsgi_daemon.so"
