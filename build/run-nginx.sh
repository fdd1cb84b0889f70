#!/usr/bin/env bash
# `make run`: serves examples/hello.py through the packaged nginx with the
# freshly built module, in the foreground, from a config of its own (the
# system's nginx configuration is not touched). Ctrl+C stops everything.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
module="$top/target/release/libngx_http_oxwsgi_module.so"
dir="$top/build/out/run"
port="${PORT:-8000}"
mkdir -p "$dir/logs" "$dir/tmp"
cat >"$dir/nginx.conf" <<CONF
load_module $module;
daemon off;
worker_processes 1;
error_log stderr notice;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/tmp;
    server {
        listen 127.0.0.1:$port;
        location / {
            wsgi_app $top/examples/hello.py;
        }
    }
}
CONF
/usr/sbin/nginx -t -q -p "$dir" -c "$dir/nginx.conf"
echo "oxwsgi: serving examples/hello.py through nginx on http://127.0.0.1:$port/ (Ctrl+C stops it)"
exec /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf"
