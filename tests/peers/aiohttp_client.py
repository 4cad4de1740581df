#!/usr/bin/python3
"""Drive a udshttp server over a Unix socket with aiohttp's UnixConnector, as the seed
documents do. Usage: aiohttp_client.py SOCKET_PATH. Prints 'aiohttp: N checks passed' and
exits 0, or prints the first failure and exits 1."""

import asyncio
import json
import os
import sys

import aiohttp

import checklist


async def main(path: str, checks: checklist.Checklist) -> None:
    expect = checks.expect
    connector = aiohttp.UnixConnector(path=path, limit=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get("http://localhost/hello") as r:
            expect(r.status == 200, f"GET /hello status {r.status}")
            expect(await r.text() == "Hello Anonymous", "GET /hello body")

        async with session.get("http://localhost/hello/Ada",
                               headers={"Accept": "application/json"}) as r:
            expect(await r.json() == {"message": "Hello Ada", "name": "Ada"}, "hello JSON")

        payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
        async with session.post("http://localhost/echo", data=payload,
                                headers={"Content-Type": "application/x-aiohttp"}) as r:
            expect(r.headers["Content-Type"] == "application/x-aiohttp", "echo type")
            expect(await r.read() == payload, "echo bytes")

        async def chunks():
            for i in range(10):
                yield f"chunk{i};".encode()
        async with session.post("http://localhost/echo", data=chunks()) as r:
            expect(await r.text() == "".join(f"chunk{i};" for i in range(10)), "chunked echo")

        async with session.get("http://localhost/echo") as r:
            info = await r.json()
            expect(info["peer"]["transport"] == "unix", "peer transport")
            expect(info["peer"]["pid"] == os.getpid(), "peer pid is ours")
            expect(info["peer"]["uid"] == os.getuid(), "peer uid is ours")

        async with session.get("http://localhost/nope") as r:
            expect(r.status == 404, "404 status")
            body = await r.json()
            expect(body["error"]["code"] == "not_found", "404 body code")

        async with session.delete("http://localhost/echo") as r:
            expect(r.status == 405, "405 status")
            expect("POST" in r.headers["Allow"], "405 Allow")

        # Concurrent requests over the pooled connections.
        async def one(i: int) -> str:
            async with session.get(f"http://localhost/hello/{i}") as r:
                return await r.text()
        results = await asyncio.gather(*(one(i) for i in range(200)))
        expect(results == [f"Hello {i}" for i in range(200)], "200 concurrent hellos")


if __name__ == "__main__":
    checklist.finish("aiohttp", lambda checks: asyncio.run(main(sys.argv[1], checks)))
