#!/usr/bin/env bash
# in-root.sh ROOT COMMAND...: runs COMMAND inside the Debian root ROOT (made
# by build/debian-root.sh) as root, in a mount namespace of its own, so
# nothing it mounts outlives it: /proc, /sys, /dev and /dev/pts, the
# repository at the same path as outside, and the host's Rust toolchain
# (rustup's and cargo's homes: the root has no Rust of its own). Loopback
# networking is the host's.
set -euo pipefail

root=$(cd "$1" && pwd)
shift
top=$(cd "$(dirname "$0")/.." && pwd)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

exec unshare --mount --propagation private -- /bin/bash -s "$root" "$top" "$rustup_home" "$cargo_home" "$@" <<'INNER'
set -euo pipefail
root=$1 top=$2 rustup_home=$3 cargo_home=$4
shift 4
bind() {
    mkdir -p "$root$2"
    mount --rbind "$1" "$root$2"
}
mount -t proc proc "$root/proc"
bind /sys /sys
bind /dev /dev
bind "$top" "$top"
[ -d "$rustup_home" ] && bind "$rustup_home" /root/.rustup
[ -d "$cargo_home" ] && bind "$cargo_home" /root/.cargo
cp -f /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# The host's certificate authorities: a registry behind a proxy of the
# host's is trusted inside as outside (pip, cargo).
if [ -f /etc/ssl/certs/ca-certificates.crt ] && [ -f "$root/etc/ssl/certs/ca-certificates.crt" ]; then
    mount --bind /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
# How the host reaches the registries (proxies, pip's index and
# certificates), and nothing else of its environment.
pass=()
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY \
    PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_CERT PIP_DEFAULT_TIMEOUT \
    SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; do
    [ -n "${!v:-}" ] && pass+=("$v=${!v}")
done
exec chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo "${pass[@]}" "$@"
INNER
