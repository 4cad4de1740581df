#!/usr/bin/python3
"""A server that fails first: for the CLI's --retry tests (tests/e2e_test.cpp).

    flaky_server.py SOCKET_PATH FAILURES STATUS [RETRY_AFTER]

Listens on the Unix socket SOCKET_PATH. The first FAILURES requests are answered STATUS with
the body "failure N" (and Retry-After: RETRY_AFTER when given); every later one 200 "ok".
Each answer closes its connection (HTTP/1.0). Stops on SIGTERM."""

import http.server
import os
import signal
import socketserver
import sys

path, failures, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
retry_after = sys.argv[4] if len(sys.argv) > 4 else None
seen = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global seen
        seen += 1
        failing = seen <= failures
        body = (f"failure {seen}" if failing else "ok").encode()
        self.send_response(status if failing else 200)
        if failing and retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


class Server(socketserver.UnixStreamServer):
    pass


if os.path.exists(path):
    os.unlink(path)
server = Server(path, Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server.serve_forever()
