#!/usr/bin/python3
"""Drive a udshttp server with Python's standard http.client over a connected AF_UNIX socket.
Usage: httpclient_peer.py SOCKET_PATH BODY_LIMIT. Every request goes over one keep-alive
connection. Prints 'http.client: N checks passed' and exits 0, or the first failure and 1."""

import http.client
import json
import socket
import sys

import checklist

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.unix_path = path
        self.connects = 0

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)
        self.connects += 1


def main(path: str, body_limit: int, checks: checklist.Checklist) -> None:
    expect = checks.expect

    conn = UnixHTTPConnection(path)

    def call(method, target, body=None, headers=None, encode_chunked=False):
        conn.request(method, target, body=body, headers=headers or {},
                     encode_chunked=encode_chunked)
        r = conn.getresponse()
        return r, r.read()

    r, body = call("GET", "/hello")
    expect(r.status == 200 and body == b"Hello Anonymous", f"GET /hello: {r.status} {body!r}")
    r, body = call("GET", "/hello/Ada", headers={"Accept": "application/json"})
    expect(json.loads(body) == {"message": "Hello Ada", "name": "Ada"}, f"hello JSON {body!r}")

    payload = bytes(range(256)) * 1024  # 256 KiB, every byte value
    r, body = call("POST", "/echo", payload, {"Content-Type": "application/x-peer"})
    expect(r.getheader("Content-Type") == "application/x-peer", "echo Content-Type")
    expect(body == payload, "echo bytes")

    pieces = [bytes([i]) * (1000 + i) for i in range(50)]
    r, body = call("POST", "/echo", iter(pieces), encode_chunked=True)
    expect(r.status == 200 and body == b"".join(pieces), "chunked upload echo")

    r, body = call("HEAD", "/hello")
    expect(r.status == 200 and body == b"" and r.getheader("Content-Length") == "15", "HEAD")

    r, body = call("GET", "/nope")
    expect(r.status == 404 and json.loads(body)["error"]["code"] == "not_found", "404")
    r, body = call("DELETE", "/echo")
    expect(r.status == 405 and "POST" in r.getheader("Allow", ""), "405 with Allow")
    expect(json.loads(body)["error"]["code"] == "method_not_allowed", "405 body")
    expect(conn.connects == 1, f"one keep-alive connection, not {conn.connects}")

    # One byte over the limit: 413 with a JSON error, and the server closes the connection.
    r, body = call("POST", "/echo", b"x" * (body_limit + 1))
    expect(r.status == 413, f"413, not {r.status}")
    expect(json.loads(body)["error"]["code"] == "payload_too_large", "413 body")
    expect(r.getheader("Connection", "").lower() == "close", "413 closes")

    # A malformed request on a raw socket: 400 with a JSON error.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost localhost\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    expect(raw.startswith(b"HTTP/1.1 400 "), f"400 for a malformed field: {raw[:40]!r}")
    expect(b'"code":"bad_request"' in raw, "400 body")


if __name__ == "__main__":
    checklist.finish("http.client", lambda checks: main(sys.argv[1], int(sys.argv[2]), checks))
