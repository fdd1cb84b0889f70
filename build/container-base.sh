#!/usr/bin/env bash
# container-base.sh SUITE: makes, once, a minimal Debian SUITE root in
# build/out/container-base-SUITE (debootstrap's minbase: what Debian's
# -slim images hold) for container recipes to be carried out in
# (build/recipe.sh); each run copies it first.
set -euo pipefail
suite=${1:?usage: container-base.sh SUITE}
top=$(cd "$(dirname "$0")/.." && pwd)
base=$top/build/out/container-base-$suite
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -e "$base/.base" ] && exit 0
if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi
rm -rf "$base"
debootstrap --variant=minbase "$suite" "$base" "$mirror" >/dev/null
# As in an image: no init, and packages start no service on install.
printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
chmod +x "$base/usr/sbin/policy-rc.d"
touch "$base/.base"
