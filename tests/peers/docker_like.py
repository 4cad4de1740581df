#!/usr/bin/python3
"""A small Docker-API-like upstream for the gateway tests, on a Unix socket (asyncio streams,
standard library only). Usage: docker_like.py SOCKET [--quiet S] [--backlog N]
[--accept-after S]. HTTP/1.1 with keep-alive; routes:
  GET  /events                 chunked NDJSON: one event at once, another after --quiet seconds
                               (default 3), then quiet until the caller leaves
  GET  /containers/ID/logs     with follow=1: 3 lines, 200 ms apart, chunked, then the end
  POST /exec/ID/start          with Upgrade: tcp: 101, then every byte read comes back upper
                               case; at the caller's EOF it writes "exit 0\\n" and half-closes
  GET  /slow                   answers after 5 seconds
  anything else                JSON {"method","path","headers","body_bytes"}: what it was sent
--backlog and --accept-after: listen with that backlog and accept nothing for that long, so
connects beyond the backlog fail with EAGAIN meanwhile (the burst test).
Prints "ready" once listening; stops on SIGTERM."""

import asyncio
import json
import signal
import socket
import sys
import time


async def read_head(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue
            break
        lines.append(line.decode("latin-1").rstrip("\r\n"))
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, headers


def field(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def read_body(reader, headers):
    if (field(headers, "transfer-encoding") or "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    n = int(field(headers, "content-length") or 0)
    return await reader.readexactly(n) if n else b""


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


async def serve(reader, writer, quiet):
    try:
        while True:
            head = await read_head(reader)
            if head is None:
                break
            method, target, headers = head
            body = await read_body(reader, headers)
            path, _, query = target.partition("?")
            if path == "/events":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                writer.write(chunk(b'{"status":"start","id":"1"}\n'))
                await writer.drain()
                await asyncio.sleep(quiet)
                writer.write(chunk(b'{"status":"die","id":"1"}\n'))
                await writer.drain()
                await reader.read()  # until the caller (the gateway) goes
                break
            if "/logs" in path and "follow=1" in query:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for i in range(3):
                    writer.write(chunk(b"log line %d\n" % i))
                    await writer.drain()
                    await asyncio.sleep(0.2)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                continue
            if path.startswith("/exec/") and (field(headers, "upgrade") or "") == "tcp":
                writer.write(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                             b"application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                             b"Upgrade: tcp\r\n\r\n")
                await writer.drain()
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data.upper())
                    await writer.drain()
                writer.write(b"exit 0\n")
                await writer.drain()
                writer.write_eof()
                await asyncio.sleep(0.2)
                break
            if path == "/slow":
                await asyncio.sleep(5)
            seen = json.dumps({"method": method, "path": target, "headers": headers,
                               "body_bytes": len(body)}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(seen), seen))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    path = sys.argv[1]
    opts = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    quiet = float(opts.get("--quiet", "3"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(int(opts.get("--backlog", "128")))
    print("ready", flush=True)
    time.sleep(float(opts.get("--accept-after", "0")))
    server = await asyncio.start_unix_server(lambda r, w: serve(r, w, quiet), sock=sock)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
