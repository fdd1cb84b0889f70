#!/usr/bin/env bash
# test-in-root.sh SUITE [NEXTEST ARGS...]: `make test` for Debian SUITE,
# inside its root (build/debian-root.sh makes it, once): what it needs from
# that release's archive (build/deps.sh), its nginx tree, its packages
# (packaging/build-deb.sh: the modules in release mode against that
# release's Python, nginx and Apache, into a target directory of its own,
# checked by its lintian), then the workspace's tests, the package test
# among them (`make test DIST=SUITE`; `make test` runs it for every release
# but the machine's). Formatting and lints are checked once, on the
# machine's release: the source is the same.
# The host's Rust toolchain is used (build/in-root.sh binds it in).
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
export OXWSGI_DIST=$suite
bash build/deps.sh
bash build/nginx-tree.sh
. build/dist-env.sh
bash packaging/build-deb.sh
# The tests load debug builds, as on the machine's own release: their
# failpoints (core::guard) exist only there.
cargo build -p oxwsgi-nginx -p oxwsgi-apache
export OXWSGI_NGINX_MODULE=$CARGO_TARGET_DIR/debug/libngx_http_oxwsgi_module.so
export OXWSGI_APACHE_MODULE=$CARGO_TARGET_DIR/debug/libmod_oxwsgi.so
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
INNER
exec "$top/build/in-root.sh" "$root" /bin/bash "$script" "$top" "$suite" "$@"
