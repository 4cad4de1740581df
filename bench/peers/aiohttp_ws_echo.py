#!/usr/bin/python3
"""The aiohttp peer of bench/stream_compare: GET /ws/echo, a WebSocket echo, on a Unix socket.

    aiohttp_ws_echo.py SOCKET_PATH

Stops on SIGTERM. Needs Debian's python3-aiohttp."""

import sys

from aiohttp import WSMsgType, web


async def echo(request):
    ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
    await ws.prepare(request)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
    except ConnectionResetError:  # the load generator left mid-message
        pass
    return ws


app = web.Application()
app.router.add_get("/ws/echo", echo)
web.run_app(app, path=sys.argv[1], print=None, handle_signals=True)
