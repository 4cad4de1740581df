#!/bin/sh
# Calls udshttpd over a Unix socket with curl --unix-socket (the host in the URL is only the
# Host header).
#
#   examples/clients/curl.sh /run/app.sock
set -eu
sock=$1
echo "hello: $(curl -sS --unix-socket "$sock" http://localhost/hello)"
echo "json: $(curl -sS --unix-socket "$sock" -H 'Accept: application/json' 'http://localhost/hello/Ada%20L' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["message"])')"
echo "echo: $(curl -sS --unix-socket "$sock" --data-binary ping http://localhost/echo)"
body=$(mktemp)
trap 'rm -f "$body"' EXIT
status=$(curl -sS --unix-socket "$sock" -o "$body" -w '%{http_code}' http://localhost/nope)
echo "error: $status $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$body")"
