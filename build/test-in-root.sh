#!/usr/bin/env bash
# test-in-root.sh SUITE [NEXTEST ARGS...]: builds the modules for Debian
# SUITE inside its root (build/debian-root.sh makes it, once) against that
# release's Python and nginx tree, with a target directory of its own, and
# runs the workspace's tests there (`make test-dist DIST=SUITE`). The host's
# Rust toolchain is used (build/in-root.sh binds it in).
set -euo pipefail

suite=${1:?usage: test-in-root.sh SUITE [nextest args]}
shift
top=$(cd "$(dirname "$0")/.." && pwd)
root=$top/build/out/root-$suite

bash "$top/build/debian-root.sh" "$suite"
# The host's cargo-nextest, when it has one (a static binary).
if nextest=$(command -v cargo-nextest); then
    install -m 755 "$nextest" "$root/usr/local/bin/cargo-nextest"
fi
# in-root.sh reads its own script from standard input: this one goes
# through a file (the repository is at the same path inside the root).
script=$top/build/out/test-in-root-$suite.sh
cat >"$script" <<'INNER'
set -euo pipefail
top=$1 suite=$2
shift 2
cd "$top"
OXWSGI_DIST=$suite bash build/nginx-tree.sh
out=$top/build/out
export PYO3_PYTHON=/usr/bin/python3
export NGINX_SOURCE_DIR=$out/nginx-$suite/src NGINX_BUILD_DIR=$out/nginx-$suite/objs
export CARGO_TARGET_DIR=$out/target-$suite
export OXWSGI_NGINX_MODULE=$CARGO_TARGET_DIR/debug/libngx_http_oxwsgi_module.so
export OXWSGI_APACHE_MODULE=$CARGO_TARGET_DIR/debug/libmod_oxwsgi.so
export OXWSGI_DIST=$suite
cargo build -p oxwsgi-nginx -p oxwsgi-apache
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
INNER
exec "$top/build/in-root.sh" "$root" /bin/bash "$script" "$top" "$suite" "$@"
