#!/usr/bin/python3
"""Calls udshttpd over a Unix socket with nothing but the standard library: http.client with a
connection whose socket is AF_UNIX.

    examples/clients/python_http_client.py /run/app.sock
"""
import http.client
import json
import socket
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")  # the Host header
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


conn = UnixHTTPConnection(sys.argv[1])  # one keep-alive connection for all four
conn.request("GET", "/hello")
print("hello:", conn.getresponse().read().decode())
conn.request("GET", "/hello/Ada%20L", headers={"Accept": "application/json"})
print("json:", json.loads(conn.getresponse().read())["message"])
conn.request("POST", "/echo", body=b"ping")
print("echo:", conn.getresponse().read().decode())
conn.request("GET", "/nope")
r = conn.getresponse()
print("error:", r.status, json.loads(r.read())["error"]["code"])
