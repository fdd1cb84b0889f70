#!/usr/bin/env bash
# Builds the Debian packages libapache2-mod-oxwsgi, libnginx-mod-http-oxwsgi
# and oxwsgi (the command)
# (`make deb`) for one Debian release: packaging/debian/ is copied into a
# staging directory with a generated changelog, and debhelper builds both
# modules from this workspace against that release's nginx, Apache and
# Python. Another release than the machine's is built inside its root
# (build/in-dist.sh: made once by build/debian-root.sh, and prepared).
#
# Usage: packaging/build-deb.sh [--dist SUITE] [--version VERSION] [--out DIR]
#   SUITE    bookworm (Debian 12) or trixie (Debian 13); default: the
#            machine's own release
#   VERSION  the Debian version (default: the workspace's version plus the
#            number of commits, then the release, e.g. 0.1.0+git300-1+deb13,
#            so each build of a newer commit upgrades the previous one and a
#            Debian 12 build sorts before the Debian 13 one)
#   DIR      where the .deb files go (default: dist/SUITE/)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
here=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
dist=$here
version=""
out=""
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --dist) dist="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--dist SUITE] [--version VERSION] [--out DIR]" >&2; exit 2 ;;
    esac
done

if [ "$dist" != "$here" ]; then
    # The same script, inside that release's root (the repository is at the
    # same path there): its servers' headers, its Python, its lintian.
    exec "$top/build/in-dist.sh" "$dist" bash packaging/build-deb.sh "${args[@]}"
fi
out=${out:-$top/dist/$dist}
# shellcheck source=../build/dist-env.sh
. "$top/build/dist-env.sh"

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
    echo "build-deb.sh: cargo is missing: install Rust with rustup (Debian 12's rustc is too old for pyo3)" >&2
    exit 1
fi

upstream=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -1)
if [ -z "$version" ]; then
    commits=$(git -C "$top" rev-list --count HEAD 2>/dev/null || echo 0)
    release=$(. /etc/os-release && echo "${VERSION_ID:?}")
    version="$upstream+git$commits-1+deb$release"
fi

stage="$top/build/out/deb-$dist"
rm -rf "$stage"
mkdir -p "$stage" "$out"
# One build in the output directory at a time: the tests install "the" build.
rm -f "$out"/libapache2-mod-oxwsgi_*.deb "$out"/libnginx-mod-http-oxwsgi_*.deb "$out"/oxwsgi_*.deb
cp -r "$top/packaging/debian" "$stage/debian"
cp "$top/README.md" "$stage/debian/README.md"
printf 'debian/README.md\n' >"$stage/debian/libapache2-mod-oxwsgi.docs"
printf 'debian/README.md\n' >"$stage/debian/libnginx-mod-http-oxwsgi.docs"
printf 'debian/README.md\n' >"$stage/debian/oxwsgi.docs"

# The changelog carries the version; its date is the last commit's, so two
# builds of one commit are the same package.
date=$(git -C "$top" log -1 --format=%aD 2>/dev/null || date -R)
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$stage/debian/changelog" <<CHANGES
oxwsgi ($version) $dist; urgency=medium

  * Built from commit $commit.

 -- oxwsgi maintainers <maintainers@users.noreply.r-seed-58c5bd5b.example>  $date
CHANGES

cd "$stage"
dpkg-checkbuilddeps || {
    echo "build-deb.sh: missing build dependencies: run build/deps.sh (make deb does)" >&2
    exit 1
}
export OXWSGI_TOP="$top" OXWSGI_DEB_OUT="$out"
debian/rules build
fakeroot debian/rules binary
ls -1 "$out"/*_"${version#*:}"_*.deb

# Lintian: errors and warnings fail the build; the overrides that remain
# (debian/*.lintian-overrides) are explained in packaging/README.md.
if ! lintian --fail-on error,warning "$out"/*_"${version#*:}"_*.deb; then
    echo "build-deb.sh: lintian found errors or warnings (above)" >&2
    exit 1
fi
