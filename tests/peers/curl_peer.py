#!/usr/bin/python3
"""What udshttpd does not serve, for the CLI's parity with curl (tests/cli_parity_test.cpp).

    curl_peer.py SOCKET_PATH

Listens on the Unix socket SOCKET_PATH (HTTP/1.1, keep-alive) and answers:
  /redirect/N       302 to /redirect/N-1; /redirect/0 is 200 "landed"
  /absolute         301 to http://localhost/landed (absolute)
  /relative/a/b     302 to ../c (relative to the path)
  /see-other        303 to /landed, whatever the method
  /temporary        307 to /landed (the method and body are kept)
  /landed           200 "landed METHOD BODY"
  /gzip /deflate /raw-deflate   a body in that encoding (Content-Encoding gzip or deflate)
  /bad-gzip         Content-Encoding: gzip over bytes that are not gzip
  /version          200 with the request's HTTP version
Stops on SIGTERM."""

import gzip
import http.server
import os
import signal
import socketserver
import sys
import zlib

TEXT = ("The quick brown fox jumps over the lazy dog.\n" * 200).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        p = self.path.split("?")[0]
        if p.startswith("/redirect/"):
            n = int(p.rsplit("/", 1)[1])
            if n == 0:
                return self.answer(200, b"landed\n")
            return self.answer(302, b"moved\n", [("Location", f"/redirect/{n - 1}")])
        if p == "/absolute":
            return self.answer(301, b"moved\n", [("Location", "http://localhost/landed")])
        if p == "/relative/a/b":
            return self.answer(302, b"moved\n", [("Location", "../c")])
        if p == "/see-other":
            return self.answer(303, b"see\n", [("Location", "/landed")])
        if p == "/temporary":
            return self.answer(307, b"again\n", [("Location", "/landed")])
        if p in ("/landed", "/relative/c"):
            return self.answer(200, f"landed {self.command} {p} ".encode() + body + b"\n")
        if p == "/gzip":
            return self.answer(200, gzip.compress(TEXT), [("Content-Encoding", "gzip")])
        if p == "/deflate":
            return self.answer(200, zlib.compress(TEXT), [("Content-Encoding", "deflate")])
        if p == "/raw-deflate":
            c = zlib.compressobj(wbits=-15)
            return self.answer(200, c.compress(TEXT) + c.flush(),
                               [("Content-Encoding", "deflate")])
        if p == "/bad-gzip":
            return self.answer(200, b"this is not gzip at all", [("Content-Encoding", "gzip")])
        if p == "/version":
            return self.answer(200, (self.request_version + "\n").encode())
        return self.answer(404, b"no such path\n")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = serve

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if os.path.exists(sys.argv[1]):
    os.unlink(sys.argv[1])
server = Server(sys.argv[1], Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
server.serve_forever()
