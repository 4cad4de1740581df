#!/usr/bin/python3
"""Soak udshttpd with faults, over a Unix socket and TCP loopback at once, for a bounded time.

    tests/soak.py --udshttpd build/service/udshttpd [--duration 60] [--rss-bound-mib 128]

Starts `udshttpd --threads 2` on a socket in a temp dir and on 127.0.0.1 port 0, then runs
these together until the time is up:
  good      keep-alive clients checking every answer byte for byte (hello; 64 KiB echo)
  cut       clients that hang up mid-request (half a body) and mid-response (a 512 KiB echo)
  slowloris clients sending a header one byte every 300 ms (cut off by --header-timeout)
  oversize  headers over --max-header-bytes (431), bodies over --max-body-bytes (413), and
            header blocks of thousands of tiny "a:b" fields (431)
  malformed garbage request lines and fields (400); chunk extensions that never end (400)
  unrouted  bodies sent to a path no route has (404 before the body, which is dropped)
  flood     bursts of connections beyond --max-connections (503 for the excess)
  refused   bursts of connections to a second udshttpd whose --allow-uid refuses this user
            (403 at once, or closed unanswered beyond its refusal budget)
  streams   a publisher on a topic; SSE and NDJSON subscribers that come and go, and slow
            ones that read nothing and vanish; WebSocket echo sessions and topic
            subscriptions (python3-websockets), half of them dropped without a close frame
Then: every good request must have had the right answer, the server must still answer, the
topic must have no subscriber left, its
open descriptors must be back to where they were before the load, its peak resident memory
(VmHWM) under the bound, and SIGTERM must end it with exit 0 and its socket file gone. Prints
a summary table; exits 0 only if all of that holds. Only local sockets; it stops by itself.
"""

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MAX_CONNECTIONS = 96
HEADER_TIMEOUT = "2s"
MAX_HEADER = 8 * 1024
MAX_BODY = 1 << 20


class Stats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, what: str) -> None:
        self.add("good: WRONG or missing")
        if len(self.failures) < 20:
            self.failures.append(what)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.read()
    return status, headers, body


class Target:
    """Where to connect: the Unix socket or the TCP port, alternately."""

    def __init__(self, path: str, port: int) -> None:
        self.path, self.port = path, port

    async def open(self, i: int):
        if i % 2 == 0:
            return await asyncio.open_unix_connection(self.path)
        return await asyncio.open_connection("127.0.0.1", self.port)


async def good_client(t: Target, i: int, stop: float, st: Stats) -> None:
    rng = random.Random(i)
    reader, writer = await t.open(i)
    transport = "unix" if i % 2 == 0 else "tcp"
    n = 0
    try:
        while time.monotonic() < stop:
            n += 1
            if n % 2:
                name = f"c{i}n{n}"
                writer.write(f"GET /hello/{name} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
                want = f"Hello {name}".encode()
            else:
                want = rng.randbytes(64 * 1024)
                writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Type: "
                             b"application/x-soak\r\nContent-Length: 65536\r\n\r\n" + want)
            await writer.drain()
            status, headers, body = await asyncio.wait_for(read_response(reader), 30)
            if status != 200 or body != want:
                st.fail(f"client {i} request {n}: status {status}, {len(body)} bytes")
                return
            st.add(f"good: requests answered right ({transport})")
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        st.fail(f"client {i} request {n}: {type(e).__name__} {e}")
    finally:
        writer.close()


async def cut_client(t: Target, i: int, stop: float, st: Stats) -> None:
    while time.monotonic() < stop:
        writer = None
        try:
            reader, writer = await t.open(i)
            if i % 2:  # mid-request: half of the announced body, then gone
                writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n"
                             + b"x" * 50000)
                await writer.drain()
                st.add("cut: hung up mid-request")
            else:  # mid-response: a 512 KiB echo, read 1 KiB of the answer, then gone
                writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 524288\r\n\r\n"
                             + b"y" * 524288)
                await asyncio.wait_for(reader.readexactly(1024), 10)
                st.add("cut: hung up mid-response")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            st.add("cut: refused or reset (at the limit)")
        finally:
            if writer is not None:
                writer.transport.abort()
        await asyncio.sleep(0.02)


async def slowloris(t: Target, i: int, stop: float, st: Stats) -> None:
    while time.monotonic() < stop:
        try:
            reader, writer = await t.open(i)
            request = b"GET /hello HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"s" * 200
            started = time.monotonic()
            closed = False
            for byte in request:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), 0.3)
                    if data.startswith(b"HTTP/1.1 503"):
                        st.add("slowloris: refused at the limit (503)")
                        closed = True
                        break
                    if data.startswith(b"HTTP/1.1 408") or data == b"":
                        st.add("slowloris: cut off by the header deadline")
                        closed = True
                        break
                except asyncio.TimeoutError:
                    pass
                if time.monotonic() - started > 10:
                    break
            if not closed:
                st.add("slowloris: NOT cut off within 10 s")
            writer.transport.abort()
        except (OSError, ConnectionError):
            st.add("slowloris: reset")


async def one_shot(t: Target, i: int, request: bytes, timeout: float = 10) -> int:
    reader, writer = await t.open(i)
    try:
        writer.write(request)
        await writer.drain()
        status, _, _ = await asyncio.wait_for(read_response(reader), timeout)
        return status
    finally:
        writer.transport.abort()


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost soak\r\n\r\n",
    b"GET /hello HTTP/9.9\r\nHost: soak\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /hello HTTP/1.1\nHost: soak\n\n",
]


async def bad_requests(t: Target, i: int, stop: float, st: Stats) -> None:
    rng = random.Random(1000 + i)
    while time.monotonic() < stop:
        kind = rng.randrange(6)
        if kind == 3:
            request, want, key = (b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: "
                                  b"chunked\r\n\r\n1;" + b"e" * (256 * 1024), 400,
                                  "endless chunk extension")
        elif kind == 4:
            request, want, key = (b"GET /hello HTTP/1.1\r\nHost: soak\r\n" + b"a:b\r\n" * 4000
                                  + b"\r\n", 431, "tiny-field header flood")
        elif kind == 5:
            request, want, key = (b"POST /nowhere HTTP/1.1\r\nHost: soak\r\nContent-Length: "
                                  b"262144\r\n\r\n" + b"u" * 262144, 404, "body to an unknown route")
        elif kind == 0:
            request, want, key = (b"GET /hello HTTP/1.1\r\nHost: soak\r\nX-Big: "
                                  + b"h" * (MAX_HEADER * 2) + b"\r\n\r\n", 431, "oversize header")
        elif kind == 1:
            request, want, key = (b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: "
                                  + str(MAX_BODY * 4).encode() + b"\r\n\r\n" + b"b" * 4096,
                                  413, "oversize body")
        else:
            request, want, key = rng.choice(MALFORMED), 400, "malformed"
        try:
            status = await one_shot(t, i, request)
            if status == want:
                st.add(f"bad: {key} -> {want}")
            elif status == 503:
                st.add("bad: refused at the limit (503)")
            else:
                st.add(f"bad: {key} -> UNEXPECTED {status}")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            st.add(f"bad: {key} -> no answer ({type(e).__name__})")
        await asyncio.sleep(0.01)


async def flood(t: Target, stop: float, st: Stats) -> None:
    while time.monotonic() < stop:
        conns = []
        for k in range(MAX_CONNECTIONS + 40):
            try:
                conns.append(await t.open(k))
            except OSError:
                st.add("flood: connect failed")
        st.add("flood: connections opened", len(conns))

        async def ask(rw):
            reader, writer = rw
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: soak\r\n\r\n")
                await writer.drain()
                status, _, _ = await asyncio.wait_for(read_response(reader), 10)
                return status
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                return 0
        for status in await asyncio.gather(*(ask(c) for c in conns)):
            st.add({200: "flood: served", 503: "flood: refused (503)"}.get(status,
                                                                            "flood: no answer"))
        for _, writer in conns:
            writer.transport.abort()
        await asyncio.sleep(1.0)


async def refused_flood(path: str, stop: float, st: Stats) -> None:
    """Bursts of connections to the server that refuses this uid: each gets 403 at once."""
    async def one() -> str:
        try:
            reader, writer = await asyncio.open_unix_connection(path)
        except OSError:
            return "refused: connect failed"
        try:
            writer.write(b"GET /hello/" + b"t" * 4000 + b" HTTP/1.1\r\nHost: soak\r\n\r\n")
            data = await asyncio.wait_for(reader.read(64), 5)
            if data.startswith(b"HTTP/1.1 403"):
                return "refused: 403 at once"
            return "refused: closed unanswered (over the refusal budget)" if not data else \
                "refused: UNEXPECTED answer"
        except (OSError, asyncio.TimeoutError):
            return "refused: closed unanswered (over the refusal budget)"
        finally:
            writer.transport.abort()
    while time.monotonic() < stop:
        for key in await asyncio.gather(*(one() for _ in range(100))):
            st.add(key)
        await asyncio.sleep(0.2)


async def topic_subscribers(t: Target) -> int:
    """The soak topic's subscribers now, from /metrics (-1 if it cannot say)."""
    reader, writer = await t.open(0)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n")
        _, _, body = await asyncio.wait_for(read_response(reader), 10)
        m = re.search(rb'udshttp_topic_subscribers\{topic="soak"\} (\d+)', body)
        return int(m.group(1)) if m else -1
    finally:
        writer.close()


def terminate(proc: subprocess.Popen):
    """SIGTERM, then the exit code (or why there is none) within 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "did not stop within 10 s"


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


async def settle(pid: int, baseline: int, t: Target) -> int:
    """Waits up to 10 s for the server's descriptors to return to the baseline."""
    fds = fds_of(pid)
    for _ in range(100):
        fds = fds_of(pid)
        if fds == baseline:
            break
        await asyncio.sleep(0.1)
    return fds


async def publisher(t: Target, stop: float, st: Stats) -> None:
    """Publishes to the soak topic every 20 ms, for the subscribers below."""
    n = 0
    while time.monotonic() < stop:
        n += 1
        body = f"message {n}".encode()
        status = await one_shot(t, 0, b"POST /topics/soak HTTP/1.1\r\nHost: soak\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        if status == 503:
            st.add("streams: publish refused at the limit (503)")
        else:
            st.add("streams: published" if status == 200 else f"streams: publish UNEXPECTED {status}")
        await asyncio.sleep(0.02)


async def subscriber(t: Target, i: int, stop: float, st: Stats) -> None:
    """Subscribes (SSE or NDJSON, Unix or TCP), reads for a while, leaves; again. Every other
    one is slow: it reads nothing for a while, then vanishes."""
    rng = random.Random(1000 + i)
    while time.monotonic() < stop:
        writer = None
        try:
            reader, writer = await t.open(i)
            accept = "text/event-stream" if rng.random() < 0.5 else "application/x-ndjson"
            writer.write(f"GET /topics/soak HTTP/1.1\r\nHost: soak\r\nAccept: {accept}\r\n"
                         "\r\n".encode())
            await writer.drain()
            if i % 2:  # slow: never reads, then gone
                await asyncio.sleep(rng.uniform(0.5, 2))
                st.add("streams: slow subscriber vanished")
            else:
                until = time.monotonic() + rng.uniform(0.2, 1)
                got = b""
                while time.monotonic() < until and b"message" not in got:
                    got += await asyncio.wait_for(reader.read(65536), 5)
                st.add("streams: subscriber got messages" if b"message" in got
                       else "streams: subscriber got none WRONG")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            st.add("streams: refused or reset (at the limit)")
        finally:
            # Gone for good, after a timeout too: a socket left open here is a subscriber the
            # server rightly keeps (it cannot tell a quiet peer from a departed one), which
            # showed as "topic subscribers left" at the end.
            if writer is not None:
                writer.transport.abort()
        await asyncio.sleep(0.05)


async def websocket_client(path: str, i: int, stop: float, st: Stats) -> None:
    """Echoes over /ws/echo and follows the topic over WebSocket, coming and going."""
    try:
        from websockets.client import unix_connect
        import websockets
    except ImportError:
        st.add("websocket: skipped (python3-websockets missing)")
        return
    rng = random.Random(2000 + i)
    while time.monotonic() < stop:
        try:
            target = "ws://soak/ws/echo" if i % 2 else "ws://soak/topics/soak"
            async with unix_connect(path, target, open_timeout=10) as ws:
                if i % 2:
                    for _ in range(rng.randint(1, 20)):
                        payload = rng.randbytes(rng.randint(1, 4096))
                        await ws.send(payload)
                        if await asyncio.wait_for(ws.recv(), 10) != payload:
                            st.add("websocket: echo WRONG")
                            return
                    st.add("websocket: echo sessions")
                else:
                    await asyncio.wait_for(ws.recv(), 10)
                    st.add("websocket: topic messages")
                if rng.random() < 0.5:
                    ws.transport.abort()  # vanish without a close frame
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
            st.add("websocket: refused or reset (at the limit)")
        await asyncio.sleep(0.05)


async def soak(args, dir_: str) -> int:
    path = os.path.join(dir_, "soak.sock")
    proc = subprocess.Popen(
        [args.udshttpd, "--threads", "2", "--listen", path, "--listen", "tcp://127.0.0.1:0",
         "--max-connections", str(MAX_CONNECTIONS), "--header-timeout", HEADER_TIMEOUT,
         "--max-header-bytes", str(MAX_HEADER), "--max-body-bytes", str(MAX_BODY)],
        stdout=open(os.path.join(dir_, "stdout"), "w"), stderr=subprocess.DEVNULL)
    refusing_path = os.path.join(dir_, "refusing.sock")
    refusing = subprocess.Popen(
        [args.udshttpd, "--listen", refusing_path, "--allow-uid", "12345", "--allow-gid", "12345",
         "--max-connections", str(MAX_CONNECTIONS)],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(dir_, "refusing.err"), "w"))
    try:
        port = None
        for _ in range(100):  # the banner names the port, within 10 s
            with open(os.path.join(dir_, "stdout")) as f:
                m = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", f.read())
            if m or proc.poll() is not None:
                break
            time.sleep(0.1)
        if not m:
            print(f"soak: udshttpd did not start (exit status {proc.poll()})")
            return 1
        port = int(m.group(1))
        t = Target(path, port)
        st = Stats()
        assert await one_shot(t, 0, b"GET /healthz HTTP/1.1\r\nHost: soak\r\n\r\n") == 200
        await asyncio.sleep(0.2)
        fds_before = fds_of(proc.pid)
        rss_before = status_kib(proc.pid, "VmRSS")
        for _ in range(100):
            if os.path.exists(refusing_path):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        refusing_fds_before = fds_of(refusing.pid)

        stop = time.monotonic() + args.duration
        tasks = [good_client(t, i, stop, st) for i in range(8)]
        tasks += [cut_client(t, i, stop, st) for i in range(4)]
        tasks += [slowloris(t, i, stop, st) for i in range(4)]
        tasks += [bad_requests(t, i, stop, st) for i in range(4)]
        tasks += [flood(t, stop, st)]
        tasks += [refused_flood(refusing_path, stop, st)]
        tasks += [publisher(t, stop, st)]
        tasks += [subscriber(t, i, stop, st) for i in range(6)]
        tasks += [websocket_client(path, i, stop, st) for i in range(4)]
        await asyncio.gather(*tasks)

        fds_after = await settle(proc.pid, fds_before, t)
        refusing_fds_after = await settle(refusing.pid, refusing_fds_before, t)
        refusing_peak = status_kib(refusing.pid, "VmHWM")
        with open(os.path.join(dir_, "refusing.err")) as f:
            refusing_log = len(f.read().splitlines())
        refusing_code = terminate(refusing)
        rss_after = status_kib(proc.pid, "VmRSS")
        peak = status_kib(proc.pid, "VmHWM")
        still = await one_shot(t, 1, b"GET /hello/after HTTP/1.1\r\nHost: soak\r\n\r\n")
        subscribers_left = await topic_subscribers(t)
        code = terminate(proc)
        gone = not os.path.exists(path)

        good = sum(v for k, v in st.counts.items() if k.startswith("good: requests"))
        faults = sum(v for k, v in st.counts.items() if not k.startswith("good"))
        rows = sorted(st.counts.items())
        rows += [("server: fds before / after", f"{fds_before} / {fds_after}"),
                 ("server: RSS before / after (MiB)",
                  f"{rss_before / 1024:.1f} / {rss_after / 1024:.1f}"),
                 ("server: peak RSS (MiB), bound", f"{peak / 1024:.1f}, {args.rss_bound_mib}"),
                 ("server: answers after the soak", "yes" if still == 200 else f"NO ({still})"),
                 ("server: topic subscribers left", str(subscribers_left)),
                 ("server: SIGTERM exit code", str(code)),
                 ("server: socket file removed", "yes" if gone else "NO"),
                 ("refusing server: fds before / after",
                  f"{refusing_fds_before} / {refusing_fds_after}"),
                 ("refusing server: peak RSS (MiB)", f"{refusing_peak / 1024:.1f}"),
                 ("refusing server: stderr lines (budget 20/s)", str(refusing_log)),
                 ("refusing server: SIGTERM exit code", str(refusing_code))]
        width = max(len(k) for k, _ in rows)
        print(f"soak: {args.duration:.0f} s, udshttpd --threads 2 on unix:{path} and "
              f"tcp://127.0.0.1:{port}, --max-connections {MAX_CONNECTIONS}")
        for k, v in rows:
            print(f"  {k:<{width}}  {v}")
        print(f"  {'total good requests / faults injected':<{width}}  {good} / {faults}")
        for f in st.failures:
            print(f"  FAILURE: {f}")
        bad = [k for k in st.counts if "WRONG" in k or "UNEXPECTED" in k or "NOT cut" in k]
        log_bound = 20 * (args.duration + 2) + 5
        ok = (not bad and good > 0 and fds_after == fds_before and peak <= args.rss_bound_mib * 1024
              and still == 200 and subscribers_left == 0 and code == 0 and gone and refusing_fds_after == refusing_fds_before
              and refusing_peak <= args.rss_bound_mib * 1024 and refusing_code == 0
              and refusing_log <= log_bound and st.counts.get("refused: 403 at once", 0) > 0)
        print("soak: passed" if ok else "soak: FAILED")
        return 0 if ok else 1
    finally:
        for p in (proc, refusing):
            if p.poll() is None:
                p.kill()
                p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--udshttpd", default="build/service/udshttpd", help="the server to soak")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    ap.add_argument("--rss-bound-mib", type=float, default=128,
                    help="the server's peak resident memory must stay under this (default 128)")
    args = ap.parse_args()
    if not shutil.which(args.udshttpd) and not os.access(args.udshttpd, os.X_OK):
        print(f"soak: {args.udshttpd}: no such executable")
        return 2
    dir_ = tempfile.mkdtemp(prefix="udshttp-soak-")
    try:
        return asyncio.run(soak(args, dir_))
    finally:
        shutil.rmtree(dir_, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
