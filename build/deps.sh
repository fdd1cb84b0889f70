#!/usr/bin/env bash
# Installs, from Debian's packages, everything oxwsgi needs to build, test and
# benchmark. Idempotent: it asks apt only for what is missing, so `make test`
# can call it every time at the cost of one dpkg query.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# What is unpacked under build/out is per Debian release, as the nginx tree
# is (build/nginx-tree.sh): OXWSGI_DIST is set inside another release's root.
out="$top/build/out"
suffix=${OXWSGI_DIST:+-$OXWSGI_DIST}

packages=(
    # The release's CPython the modules embed (3.11 on Debian 12, 3.13 on
    # Debian 13): /usr/bin/python3, see .cargo/config.toml
    python3 python3-dev libpython3-dev python3-venv python3-pip
    # bindgen (nginx-sys, the Apache bindings) needs libclang
    clang libclang-dev
    # the servers, and the headers/trees the modules are built against
    nginx nginx-dev apache2 apache2-dev
    # the Debian packages (make deb) and their checks
    debhelper fakeroot dpkg-dev lintian
    # tests and benchmarks
    curl wrk openssl
    # systemd-analyze verifies the units the oxwsgi command writes
    systemd
    # network namespaces and a load balancer that polls readiness
    # (tests/tests/scale_out.rs)
    iproute2 haproxy
    # the Kubernetes example is read as Kubernetes reads it
    # (tests/tests/container.rs)
    python3-yaml
    # the status page is rendered in a real browser (headless) by the tests
    chromium
)

# `deps.sh --bench` adds the peers the benchmarks measure against.
if [ "${1:-}" = "--bench" ]; then
    packages+=(uwsgi uwsgi-plugin-python3)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build/deps.sh: missing packages: ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "build/deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The packaged servers must not start on install and take ports the
    # tests want: policy-rc.d tells invoke-rc.d to leave them alone.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# unpack PACKAGE DIR FILE: Debian's PACKAGE unpacked into DIR rather than
# installed, unless DIR/FILE is already there.
unpack() {
    local package=$1 dir=$2 file=$3
    [ -e "$dir/$file" ] && return 0
    local download
    download=$(mktemp -d)
    chmod 755 "$download"
    if ! (cd "$download" && apt-get download -qq "$package" 2>/dev/null); then
        apt-get update -qq
        (cd "$download" && apt-get download -qq "$package")
    fi
    mkdir -p "$dir"
    dpkg-deb -x "$download/${package}"_*.deb "$dir"
    rm -rf "$download"
}

# Debian's mod_wsgi, the reference the Apache module is compared with (tests)
# and measured against (benchmarks): it conflicts with libapache2-mod-oxwsgi
# (the same directives), which the package tests install and purge.
unpack libapache2-mod-wsgi-py3 "$out/mod_wsgi$suffix" usr/lib/apache2/modules/mod_wsgi.so
# promtool, from Debian's Prometheus, checks the status page's metrics in
# the tests; unpacked, so no Prometheus server is installed or started.
# Debian 13 ships it as a package of its own.
promtool=prometheus
apt-cache show promtool >/dev/null 2>&1 && promtool=promtool
unpack "$promtool" "$out/prometheus$suffix" usr/bin/promtool
