#!/usr/bin/env bash
# `make run`: serves examples/hello.py through the packaged nginx with the
# freshly built module, with the oxwsgi command of the same build, in the
# foreground (the system's nginx and its configuration are not touched).
# Ctrl+C stops everything. PORT chooses another port than 8000.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
exec "$top/target/release/oxwsgi" serve "$top/examples/hello.py" --port "${PORT:-8000}"
