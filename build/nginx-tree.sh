#!/usr/bin/env bash
# Prepares the nginx tree the module is built against: Debian's nginx-dev
# source (/usr/share/nginx/src), configured out of tree with the very flags
# the packaged /usr/sbin/nginx was built with (its conf_flags), so the module's
# signature matches the binary ("not binary compatible" otherwise). Only
# ./configure runs; nginx-sys needs the headers it generates, not a build.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
src=/usr/share/nginx/src
# One tree per Debian release (OXWSGI_DIST: set inside another release's
# root, build/debian-root.sh), each for that release's nginx.
out="$top/build/out/nginx${OXWSGI_DIST:+-$OXWSGI_DIST}"
stamp="$out/.configured"
version=$(dpkg-query -W -f='${Version}' nginx-dev)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
    exit 0
fi
echo "build/nginx-tree.sh: configuring nginx $version in $out"
rm -rf "$out"
mkdir -p "$out"
cp -r "$src" "$out/src"
(
    cd "$out/src"
    # shellcheck disable=SC1091
    source ./conf_flags
    ./configure "${NGX_CONF_FLAGS[@]}" --builddir="$out/objs" >"$out/configure.log" 2>&1
) || { tail -20 "$out/configure.log" >&2; exit 1; }
echo "$version" >"$stamp"
