#!/usr/bin/env bash
# How fast the same Python code runs in Debian's /usr/bin/python3.X (linked
# statically, PGO) and in libpython3.X.so.1.0 (what an embedding server
# loads), for the release's Python: the Flask request of
# bench/flask_call.py, in both, on CPU 0 (make bench runs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/../build/out/venv-bench${OXWSGI_DIST:+-$OXWSGI_DIST}"
[ -x "$venv/bin/python3" ] || { echo "run make bench first (it makes $venv)" >&2; exit 1; }
v=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/embed.c" <<C
#include <Python.h>
int main(void) {
    PyConfig c;
    PyConfig_InitPythonConfig(&c);
    PyConfig_SetBytesString(&c, &c.program_name, "$venv/bin/python3");
    Py_InitializeFromConfig(&c);
    FILE *f = fopen("$here/flask_call.py", "r");
    PyRun_SimpleFile(f, "$here/flask_call.py");
    return Py_FinalizeEx() < 0;
}
C
gcc -O2 -o "$tmp/embed" "$tmp/embed.c" $("python$v-config" --includes) "-lpython$v"
echo "static /usr/bin/python$v: $(taskset -c 0 "$venv/bin/python3" "$here/flask_call.py")"
echo "shared libpython$v.so:    $(taskset -c 0 "$tmp/embed")"
