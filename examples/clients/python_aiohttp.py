#!/usr/bin/python3
"""Calls udshttpd over a Unix socket with aiohttp's UnixConnector (Debian: python3-aiohttp).

    examples/clients/python_aiohttp.py /run/app.sock
"""
import asyncio
import sys

import aiohttp


async def main(path):
    # The host in the URL only fills the Host header; the connector decides where to connect.
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session:
        async with session.get("http://localhost/hello") as r:
            print("hello:", await r.text())
        async with session.get("http://localhost/hello/Ada%20L",
                               headers={"Accept": "application/json"}) as r:
            print("json:", (await r.json())["message"])
        async with session.post("http://localhost/echo", data=b"ping") as r:
            print("echo:", await r.text())
        async with session.get("http://localhost/nope") as r:
            print("error:", r.status, (await r.json())["error"]["code"])


asyncio.run(main(sys.argv[1]))
