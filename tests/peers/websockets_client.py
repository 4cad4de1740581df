#!/usr/bin/python3
"""Drive udshttpd's WebSocket routes with the `websockets` package (Debian's
python3-websockets): the echo over a Unix socket (unix_connect) and over TCP, text and binary,
ping/pong, the message size limit (close 1009), and a topic subscription.
Usage: websockets_client.py SOCKET_PATH TCP_PORT MAX_MESSAGE_BYTES
       websockets_client.py --wait-close SOCKET_PATH   (prints the close code the server
       sends, for the drain test, after printing 'subscribed')
Prints 'websockets: N checks passed' and exits 0, or the first failure and exits 1."""

import asyncio
import json
import socket
import sys

import websockets
from websockets.client import connect, unix_connect

import checklist


def publish(path: str, topic: str, body: bytes) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"POST /topics/" + topic.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\nContent-Length: " + str(len(body)).encode() +
                  b"\r\n\r\n" + body)
        while s.recv(4096):
            pass


async def echo(ws, checks: checklist.Checklist, where: str) -> None:
    expect = checks.expect
    await ws.send("hello")
    expect(await ws.recv() == "hello", f"{where}: text echo")
    payload = bytes(range(256)) * 256  # 64 KiB, every byte value
    await ws.send(payload)
    expect(await ws.recv() == payload, f"{where}: binary echo")
    pong = await ws.ping(b"are you there")
    await asyncio.wait_for(pong, 5)
    expect(True, f"{where}: pong")


async def main(path: str, port: int, limit: int, checks: checklist.Checklist) -> None:
    expect = checks.expect
    async with unix_connect(path, "ws://localhost/ws/echo", max_size=None) as ws:
        expect(ws.response_headers["Server"].startswith("udshttp/"), "101 from udshttp")
        await echo(ws, checks, "unix")
    async with connect(f"ws://127.0.0.1:{port}/ws/echo", max_size=None) as ws:
        await echo(ws, checks, "tcp")

    async with unix_connect(path, "ws://localhost/ws/echo", max_size=None) as ws:
        await ws.send(b"x" * (limit + 1))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            expect(False, "an oversized message was echoed")
        except websockets.ConnectionClosed as e:
            expect(e.rcvd is not None and e.rcvd.code == 1009, f"oversized: close {e.rcvd}")

    async with unix_connect(path, "ws://localhost/topics/ws") as sub:
        # Subscribed once the upgrade is answered; publishing is another connection.
        await asyncio.get_running_loop().run_in_executor(None, publish, path, "ws", b"news")
        got = json.loads(await asyncio.wait_for(sub.recv(), 5))
        expect(got == {"type": "message", "id": 1, "data": "news"}, f"topic message {got}")
        await sub.close(1000)
        expect(sub.close_code == 1000, "closed normally")


async def wait_close(path: str) -> None:
    async with unix_connect(path, "ws://localhost/topics/drain") as sub:
        print("subscribed", flush=True)
        try:
            await asyncio.wait_for(sub.recv(), 30)
        except websockets.ConnectionClosed:
            pass
        print(f"close code {sub.close_code}", flush=True)


if sys.argv[1] == "--wait-close":
    asyncio.run(wait_close(sys.argv[2]))
else:
    checklist.finish("websockets", lambda checks: asyncio.run(
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), checks)))
