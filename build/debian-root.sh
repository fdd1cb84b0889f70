#!/usr/bin/env bash
# debian-root.sh SUITE: makes, once, a root of Debian SUITE (trixie) in
# build/out/root-SUITE with debootstrap from Debian's archive, with the
# packages oxwsgi needs to build, test and package there (build/deps.sh's
# list for that release). A second run reuses it; `make test DIST=trixie`
# runs the suite inside it (build/in-root.sh).
set -euo pipefail

suite=${1:?usage: debian-root.sh SUITE}
top=$(cd "$(dirname "$0")/.." && pwd)
root=$top/build/out/root-$suite
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the root holds, besides the base system; `.ready` records it, so a
# package added here is installed on the next run.
packages="build-essential pkg-config git
    python3 python3-dev python3-venv python3-pip
    clang libclang-dev
    nginx nginx-dev apache2 apache2-dev
    debhelper fakeroot dpkg-dev lintian
    curl wrk openssl procps chromium"
packages=$(echo $packages)

if [ -e "$root/.ready" ] && [ "$(cat "$root/.ready")" = "$packages" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "build/debian-root.sh: must run as root (debootstrap, chroot)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi
if [ ! -e "$root/.base" ]; then
    rm -rf "$root"
    debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror"
    touch "$root/.base"
fi
# The packaged servers must not start on install inside the root.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
"$top/build/in-root.sh" "$root" /bin/sh -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $packages
"
echo "$packages" >"$root/.ready"
