#!/usr/bin/env bash
# in-dist.sh SUITE COMMAND...: runs COMMAND in the repository inside Debian
# SUITE's root, prepared as `make` expects on that release: the root made
# (build/debian-root.sh, once), what oxwsgi needs from that release's
# archive (build/deps.sh), its nginx tree (build/nginx-tree.sh), and the
# release's own directories (build/dist-env.sh: its nginx tree and cargo
# target directory). `make test`, `make bench` and `make deb` come here for
# a release that is not the machine's.
# The host's Rust toolchain is used (build/in-root.sh binds it in), with its
# cargo-nextest when it has one.
set -euo pipefail

suite=${1:?usage: in-dist.sh SUITE COMMAND...}
shift
[ $# -gt 0 ] || { echo "usage: in-dist.sh SUITE COMMAND..." >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
root=$top/build/out/root-$suite

bash "$top/build/debian-root.sh" "$suite"
# cargo-nextest is a static binary.
if nextest=$(command -v cargo-nextest); then
    install -m 755 "$nextest" "$root/usr/local/bin/cargo-nextest"
fi
exec "$top/build/in-root.sh" "$root" /usr/bin/env OXWSGI_DIST="$suite" /bin/bash -c '
    set -euo pipefail
    cd "$0"
    bash build/deps.sh
    bash build/nginx-tree.sh
    . build/dist-env.sh
    exec "$@"' "$top" "$@"
