"""A lean HTTP/1.1 load generator for the sign-up benchmark: asyncio protocols in one thread.

The load generator shares the machine's two cores with the server and the database, so whatever CPU
it spends per request is taken from what it measures. Thread pools with `http.client` cost about
2 ms of CPU per request on the benchmark machine (a tenth of a sign-up); these few asyncio callbacks
with a request built up front cost a fraction of that. Each request opens its own connection, as
gunicorn's sync workers close the connection after every response (and as phones arrive).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int  # 0: no answer (connection refused or reset, or timed out)
    headers: dict[str, str]
    body: dict
    seconds: float  # from the moment the request was due (open loop) or sent (closed loop)


def build_request(base_url: str, method: str, path: str, body: dict | None = None) -> bytes:
    host = urlsplit(base_url).netloc
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n")
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


class _Exchange(asyncio.Protocol):
    """Send one request, collect the response until the server closes the connection."""

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request = request
        self.done = done
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(b"".join(self.chunks))
            else:
                self.done.set_exception(exc)


def parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    is_json = headers.get("content-type", "").startswith("application/json")
    return status, headers, json.loads(body) if body and is_json else {}


async def _send(base_url: str, request: bytes, timeout: float) -> tuple[int, dict[str, str], dict]:
    parts = urlsplit(base_url)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    try:
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: _Exchange(request, done), parts.hostname, parts.port), timeout)
        try:
            raw = await asyncio.wait_for(done, timeout)
        finally:
            transport.close()
        return parse(raw)
    except (TimeoutError, OSError, ValueError, IndexError):
        return 0, {}, {}


def _run(coroutine):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def closed_loop(base_url: str, requests: list[bytes], *, clients: int, timeout: float = 120.0) -> tuple[list[Answer], float]:
    """`clients` clients each send their next request when the previous one is answered (a rush).
    Returns the answers in request order and the wall time of the whole run."""

    async def run() -> tuple[list[Answer], float]:
        answers: list[Answer | None] = [None] * len(requests)
        pending = iter(range(len(requests)))

        async def client() -> None:
            for i in pending:
                started = time.perf_counter()
                status, headers, body = await _send(base_url, requests[i], timeout)
                answers[i] = Answer(status, headers, body, time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return answers, time.perf_counter() - started  # type: ignore[return-value]

    return _run(run())


def open_loop(base_url: str, requests: list[bytes], *, rate: float, timeout: float = 120.0,
              on_start: Callable[[], None] | None = None) -> tuple[list[Answer], float]:
    """Request i is sent at start + i / rate whatever the server's pace (as wrk2 does), and its time
    counts from that moment, so a server that falls behind shows it in the percentiles.
    Returns the answers in request order and the time from the first due moment to the last answer."""

    async def run() -> tuple[list[Answer], float]:
        loop = asyncio.get_running_loop()
        answers: list[Answer | None] = [None] * len(requests)
        finished = [0.0] * len(requests)
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, headers, body = await _send(base_url, requests[i], timeout)
            finished[i] = time.perf_counter()
            answers[i] = Answer(status, headers, body, finished[i] - due)

        if on_start:
            on_start()
        tasks = [loop.create_task(one(i)) for i in range(len(requests))]
        await asyncio.gather(*tasks)
        return answers, max(finished) - start  # type: ignore[return-value]

    return _run(run())
