#!/usr/bin/python3
"""Read udshttpd's streams with aiohttp over a Unix socket, as a Python service would: an SSE
and an NDJSON subscription to one topic, each message read as it arrives (not at the end),
resumption with Last-Event-ID, and a line of GET /events. Usage: aiohttp_streams.py
SOCKET_PATH. Prints 'aiohttp-streams: N checks passed' and exits 0, or the first failure
and exits 1."""

import asyncio
import json
import sys

import aiohttp

import checklist

BASE = "http://localhost"


async def sse_events(response, count):
    """The next `count` SSE events of a streaming response, as dicts of their fields."""
    events, event = [], {}
    while len(events) < count:
        line = (await response.content.readline()).decode()
        if line == "":
            break
        line = line.rstrip("\n")
        if line == "":
            if event:
                events.append(event)
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[name] = event[name] + "\n" + value if name in event else value
    return events


async def main(path: str, checks: checklist.Checklist) -> None:
    expect = checks.expect
    connector = aiohttp.UnixConnector(path=path, limit=8)
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sse = await session.get(f"{BASE}/topics/py", headers={"Accept": "text/event-stream"})
        expect(sse.status == 200, f"SSE status {sse.status}")
        expect(sse.headers["Content-Type"] == "text/event-stream", "SSE type")
        nd = await session.get(f"{BASE}/topics/py", headers={"Accept": "application/x-ndjson"})
        expect(nd.headers["Content-Type"] == "application/x-ndjson", "NDJSON type")
        events = await session.get(f"{BASE}/events")

        for i in range(3):
            async with session.post(f"{BASE}/topics/py", data=f"message {i}",
                                    headers={"Content-Type": "text/plain"}) as r:
                expect((await r.json())["id"] == i + 1, f"publish {i} id")
            # Each message is read as it arrives, while the stream stays open.
            got = await asyncio.wait_for(sse_events(sse, 1), 5)
            expect(got == [{"id": str(i + 1), "data": f"message {i}"}], f"SSE event {i}: {got}")
            line = json.loads(await asyncio.wait_for(nd.content.readline(), 5))
            expect(line == {"type": "message", "id": i + 1, "content_type": "text/plain",
                            "data": f"message {i}"}, f"NDJSON line {i}: {line}")

        # /events carried the publishes.
        first = json.loads(await asyncio.wait_for(events.content.readline(), 5))
        expect(first["method"] == "POST" and first["target"] == "/topics/py", f"/events {first}")
        for stream in (sse, nd, events):
            stream.close()

        # Resume: the events after id 1 come again.
        async with session.get(f"{BASE}/topics/py", headers={
                "Accept": "text/event-stream", "Last-Event-ID": "1"}) as again:
            got = await asyncio.wait_for(sse_events(again, 2), 5)
            expect([e["data"] for e in got] == ["message 1", "message 2"], f"resume {got}")


checklist.finish("aiohttp-streams", lambda checks: asyncio.run(main(sys.argv[1], checks)))
