#!/usr/bin/env bash
# debian-root.sh SUITE: makes, once, a root of Debian SUITE (trixie) in
# build/out/root-SUITE with debootstrap from Debian's archive. What oxwsgi
# needs there to build, test and package is build/deps.sh's, run inside it
# (build/in-dist.sh does, every time: it asks apt only for what is
# missing); this script adds what a minimal base lacks and a host has.
set -euo pipefail

suite=${1:?usage: debian-root.sh SUITE}
top=$(cd "$(dirname "$0")/.." && pwd)
root=$top/build/out/root-$suite
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# `.ready` records the list, so a package added here is installed next run.
packages="build-essential pkg-config git procps ca-certificates"

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
# The packaged servers must never start on install inside the root: the
# tests start their own, on ports of their choosing.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
"$top/build/in-root.sh" "$root" /bin/sh -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $packages
"
echo "$packages" >"$root/.ready"
