#!/usr/bin/env bash
# How fast the same Python code runs in Debian's /usr/bin/python3.11 (linked
# statically, PGO) and in libpython3.11.so.1.0 (what an embedding server
# loads): the Flask request of bench/flask_call.py, in both, on CPU 0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/../build/out/venv-bench"
[ -x "$venv/bin/python3" ] || { echo "run make bench first (it makes $venv)" >&2; exit 1; }
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
    PyRun_SimpleFile(f, "flask_call.py");
    return Py_FinalizeEx() < 0;
}
C
gcc -O2 -o "$tmp/embed" "$tmp/embed.c" $(python3.11-config --includes) -lpython3.11
echo "static /usr/bin/python3.11: $(taskset -c 0 "$venv/bin/python3" "$here/flask_call.py")"
echo "shared libpython3.11.so:    $(taskset -c 0 "$tmp/embed")"
