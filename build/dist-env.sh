# Sourced by the scripts that build inside another Debian release's root
# (OXWSGI_DIST is set there): that release's nginx tree (build/nginx-tree.sh)
# and a cargo target directory of its own, so neither release's build
# invalidates the other's. On the machine's own release, nothing changes.
if [ -n "${OXWSGI_DIST:-}" ]; then
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    export NGINX_SOURCE_DIR=$top/build/out/nginx-$OXWSGI_DIST/src
    export NGINX_BUILD_DIR=$top/build/out/nginx-$OXWSGI_DIST/objs
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/build/out/target-$OXWSGI_DIST}
fi
