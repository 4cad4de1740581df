#!/usr/bin/python3
"""A server udshttp did not come with: aiohttp's web.run_app on a Unix socket.
Usage: aiohttp_server.py SOCKET_PATH. Routes:
  GET  /hello          'Hello from aiohttp' (text/plain)
  POST /echo           the request body back, with its Content-Type (chunked uploads too)
  GET  /stream?n=N     N bytes (i % 251) sent chunked, in 64 KiB pieces
  GET  /json           {"server": "aiohttp", "ok": true}
  anything else        aiohttp's own 404/405
Stops on SIGTERM or SIGINT (run_app's handlers) and removes nothing: the test owns the dir."""

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello from aiohttp")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, content_type=request.content_type)


async def stream(request: web.Request) -> web.StreamResponse:
    n = int(request.query.get("n", "0"))
    res = web.StreamResponse()
    res.enable_chunked_encoding()
    res.content_type = "application/octet-stream"
    await res.prepare(request)
    pattern = bytes(i % 251 for i in range(251 * 262))  # 65762 bytes, a whole number of cycles
    sent = 0
    while sent < n:
        piece = pattern[: min(65536 - 65536 % 251, n - sent)]
        await res.write(piece)
        sent += len(piece)
    await res.write_eof()
    return res


async def json_route(request: web.Request) -> web.Response:
    return web.json_response({"server": "aiohttp", "ok": True})


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.get("/hello", hello), web.post("/echo", echo),
                    web.get("/stream", stream), web.get("/json", json_route)])
    web.run_app(app, path=sys.argv[1], print=lambda text: print(text, flush=True))


if __name__ == "__main__":
    main()
