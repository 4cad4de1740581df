#!/usr/bin/env bash
# The built-in routes with curl over a Unix socket.
#   examples/curl_calls.sh [SOCKET]     (default ./udshttp.sock; start udshttpd first)
set -euo pipefail
sock=${1:-./udshttp.sock}
c() { echo "\$ curl --unix-socket $sock $*" >&2; curl -sS --fail-with-body --unix-socket "$sock" "$@"; echo; }

c http://localhost/hello
c http://localhost/hello/Ada
c -H 'Accept: application/json' http://localhost/hello/Ada
printf 'any bytes \x00\x01\x02' > "${TMPDIR:-/tmp}/udshttp-example.bin"
c --data-binary "@${TMPDIR:-/tmp}/udshttp-example.bin" -H 'Content-Type: application/octet-stream' \
  http://localhost/echo | od -c | sed -n 1,2p
c http://localhost/echo
c http://localhost/healthz
c http://localhost/metrics | sed -n 1,3p
rm -f "${TMPDIR:-/tmp}/udshttp-example.bin"
