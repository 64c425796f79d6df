"""monitor.fetch against real loopback servers: an aiohttp "feed farm", raw sockets for broken HTTP, a canary.

RELIABILITY B (14-24) and H (53-56) as far as one fetch reaches; backoff, scheduling and alerting are the
service's. No mocks: every request crosses a real socket. Tests reach the farm with
`allow_private_addresses=True`, except where they test refusal: there the farm lives on 127.0.0.2 and is the
only allowlisted address (`allowed_networks`), while a canary on 127.0.0.1 counts every TCP connection it
accepts and must count none.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
import re
import socket
import ssl
import struct
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import brotli
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.fetch import Fetcher, FetchPolicy, mask_url
from monitor.records import FetchResult

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title></channel></rss>\n'
RSS = "application/rss+xml"
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
REFUSAL = re.compile(
    r"refused: \S+ (is|resolves to) a private address \S+ \(set allow_private_addresses = true to allow\)"
)


def policy(**overrides: Any) -> FetchPolicy:
    """Fast limits, and the loopback farm allowed."""
    settings: dict[str, Any] = {
        "allow_private_addresses": True,
        "timeout": timedelta(seconds=2),
        "connect_timeout": timedelta(seconds=1),
    }
    return FetchPolicy(**(settings | overrides))


async def fetch_once(url: str, pol: FetchPolicy | None = None, **kwargs: Any) -> FetchResult:
    async with Fetcher(pol or policy()) as fetcher:
        return await fetcher.fetch(url, **kwargs)


@asynccontextmanager
async def farm(
    routes: dict[str, Handler], host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """An aiohttp server; yields its base URL. No access log: it would log query strings the client sent."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    try:
        yield f"{'https' if tls else 'http'}://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(handler: RawHandler, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """A bare TCP server for what aiohttp.web would never send; the request head is read first. Yields the port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, host, port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


class Canary:
    """Counts TCP connections accepted on a loopback address (before any byte is read); answers a 200 feed."""

    def __init__(self) -> None:
        self.hits = 0

    @asynccontextmanager
    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.hits += 1
            with suppress(ConnectionError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(FEED), FEED)
                )
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, host, port)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- 200, conditional GET, status codes ---------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_ok_decodes_gzip_and_brotli_and_sends_polite_headers(encoding: str) -> None:
    body = FEED * 200
    seen: dict[str, str] = {}

    async def feed(request: web.Request) -> web.Response:
        seen.update(request.headers)
        packed = gzip.compress(body) if encoding == "gzip" else brotli.compress(body)
        headers = {"Content-Encoding": encoding, "Content-Type": RSS, "ETag": '"v7"', "X-Junk": "dropped"}
        return web.Response(body=packed, headers=headers)

    async def scenario() -> FetchResult:
        async with farm({"/feed": feed}) as base:
            return await fetch_once(f"{base}/feed", policy(user_agent="monitor-test/1"))

    result = run(scenario())
    assert (result.status, result.http_status, result.body) == ("ok", 200, body)
    assert result.etag == '"v7"' and result.last_modified is None
    assert result.headers["content-type"] == RSS and "x-junk" not in result.headers
    assert seen["User-Agent"] == "monitor-test/1"
    assert seen["Accept-Encoding"] == "gzip, deflate, br"
    assert seen["Accept"].startswith("application/rss+xml, application/atom+xml")


def test_etag_round_trip_gives_not_modified() -> None:
    async def feed(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"abc"':
            return web.Response(status=304, headers={"ETag": '"abc"'})
        return web.Response(body=FEED, headers={"ETag": '"abc"', "Content-Type": RSS})

    async def scenario() -> tuple[FetchResult, FetchResult]:
        async with farm({"/feed": feed}) as base, Fetcher(policy()) as fetcher:
            first = await fetcher.fetch(f"{base}/feed")
            return first, await fetcher.fetch(f"{base}/feed", etag=first.etag)

    first, second = run(scenario())
    assert (first.status, first.etag, first.body) == ("ok", '"abc"', FEED)
    assert (second.status, second.http_status, second.body, second.etag) == ("not_modified", 304, b"", '"abc"')


def test_last_modified_round_trip_keeps_validators_the_304_leaves_out() -> None:
    stamp = "Wed, 20 Sep 2023 06:00:00 GMT"

    async def feed(request: web.Request) -> web.Response:
        if request.headers.get("If-Modified-Since") == stamp:
            return web.Response(status=304)  # repeats neither validator
        return web.Response(body=FEED, headers={"Last-Modified": stamp, "ETag": '"e1"'})

    async def scenario() -> tuple[FetchResult, FetchResult]:
        async with farm({"/feed": feed}) as base, Fetcher(policy()) as fetcher:
            first = await fetcher.fetch(f"{base}/feed")
            return first, await fetcher.fetch(f"{base}/feed", etag='"other"', last_modified=first.last_modified)

    first, second = run(scenario())
    assert first.last_modified == stamp
    assert (second.status, second.last_modified, second.etag) == ("not_modified", stamp, '"other"')


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (410, "gone", "HTTP 410 Gone: the publisher removed this feed"),
        (404, "failed", "HTTP 404 Not Found"),
        (500, "failed", "HTTP 500 Internal Server Error"),
        (599, "failed", "HTTP 599"),
    ],
)
def test_error_statuses_are_values_with_one_line_and_no_body(code: int, status: str, error: str) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(status=code, body=FEED, content_type="application/xml")  # an XML-looking error page

    async def scenario() -> FetchResult:
        async with farm({"/feed": feed}) as base:
            return await fetch_once(f"{base}/feed")

    result = run(scenario())
    assert (result.status, result.http_status, result.error, result.body) == (status, code, error, b"")


def test_html_200_is_returned_for_the_parser_to_judge() -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Just a moment...</body></html>", content_type="text/html")

    async def scenario() -> FetchResult:
        async with farm({"/feed": page}) as base:
            return await fetch_once(f"{base}/feed")

    result = run(scenario())
    assert result.status == "ok" and result.body.startswith(b"<html>")
    assert result.headers["content-type"].startswith("text/html")


def test_retry_after_in_seconds_and_as_http_date_against_injected_clock() -> None:
    clock = datetime(2023, 9, 20, 6, 0, tzinfo=UTC)  # far from the real now: a real clock would give 0
    answers = {
        "seconds": (429, "120"),
        "date": (503, format_datetime(clock + timedelta(seconds=90), usegmt=True)),
        "past": (503, format_datetime(clock - timedelta(hours=1), usegmt=True)),
        "junk": (429, "soon"),
    }

    async def limited(request: web.Request) -> web.Response:
        code, value = answers[request.match_info["case"]]
        return web.Response(status=code, headers={"Retry-After": value})

    async def scenario() -> dict[str, FetchResult]:
        async with farm({"/{case}": limited}) as base, Fetcher(policy(), now=lambda: clock) as fetcher:
            return {case: await fetcher.fetch(f"{base}/{case}") for case in answers}

    results = run(scenario())
    assert {case: r.retry_after for case, r in results.items()} == {
        "seconds": 120.0,
        "date": 90.0,
        "past": 0.0,
        "junk": None,
    }
    assert results["seconds"].error == "HTTP 429 Too Many Requests"
    assert results["date"].error == "HTTP 503 Service Unavailable" and results["date"].status == "failed"


# --- redirects ---------------------------------------------------------------------------------------

Hops = dict[str, tuple[int, str]]


def redirector(hops: Hops, hits: Counter[str]) -> Handler:
    """Answers `hops[path]` = (status, Location); any other path is the feed."""

    async def handle(request: web.Request) -> web.Response:
        hits[request.path] += 1
        if request.path in hops:
            code, location = hops[request.path]
            return web.Response(status=code, headers={"Location": location} if location else {})
        return web.Response(body=FEED, content_type=RSS)

    return handle


def follow(hops: Hops, start: str, pol: FetchPolicy | None = None) -> tuple[FetchResult, str, Counter[str]]:
    hits: Counter[str] = Counter()

    async def scenario() -> tuple[FetchResult, str]:
        async with farm({"/{tail:.*}": redirector(hops, hits)}) as base:
            return await fetch_once(base + start, pol), base

    result, base = run(scenario())
    return result, base, hits


def test_chain_of_301_and_308_sets_permanent_url() -> None:
    result, base, _ = follow({"/old": (301, "/older"), "/older": (308, "/feed")}, "/old")
    assert (result.status, result.url, result.permanent_url) == ("ok", f"{base}/feed", f"{base}/feed")


@pytest.mark.parametrize("temporary", [302, 303, 307])
def test_any_temporary_hop_keeps_the_feed_url(temporary: int) -> None:
    result, base, _ = follow({"/old": (301, "/mid"), "/mid": (temporary, "/feed")}, "/old")
    assert (result.status, result.url, result.permanent_url) == ("ok", f"{base}/feed", None)


def test_permanent_redirect_to_a_failing_url_does_not_move_the_feed() -> None:
    result, _, _ = follow({"/old": (301, "/new"), "/new": (404, "")}, "/old")
    assert (result.status, result.error, result.permanent_url) == ("failed", "HTTP 404 Not Found", None)


def test_redirect_loop_names_the_chain() -> None:
    result, base, hits = follow({"/a": (302, "/b"), "/b": (301, "/a")}, "/a")
    assert result.status == "failed"
    assert result.error == f"redirect loop: {base}/a → {base}/b → {base}/a"
    assert hits == Counter({"/a": 1, "/b": 1})


def test_ten_hops_are_followed_and_the_eleventh_is_not() -> None:
    chain: Hops = {f"/{n}": (302, f"/{n + 1}") for n in range(11)}  # /0 → … → /11 is 11 redirects
    result, base, hits = follow(chain, "/0")
    assert (result.status, result.error) == ("failed", "too many redirects (over 10)")
    assert sum(hits.values()) == 11 and "/11" not in hits
    result, base, _ = follow(chain, "/1")  # /1 → … → /11 is 10 redirects
    assert (result.status, result.url) == ("ok", f"{base}/11")


@pytest.mark.parametrize(
    "target",
    ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "gopher://127.0.0.1:70/_GET", "data:text/xml,<rss/>"],
)
def test_redirect_to_a_non_http_scheme_is_refused(target: str) -> None:
    result, base, _ = follow({"/feed.xml": (302, target)}, "/feed.xml")
    scheme = target.split(":")[0]
    assert (result.status, result.body) == ("failed", b"")
    assert result.error == f"unsupported URL scheme: {scheme} (redirected from {base}/feed.xml)"


def test_redirect_from_an_allowed_host_to_a_private_address_is_refused_on_that_hop() -> None:
    """The farm on 127.0.0.2 is the one allowlisted address (allowed_networks), standing in for a public host;
    it answers 302 to the canary on 127.0.0.1 — once as an IP literal, once by name — and both hops are refused
    before any connection, while the first hop itself goes through."""
    canary = Canary()
    pol = policy(allow_private_addresses=False, allowed_networks=("127.0.0.2/32",))

    async def scenario() -> tuple[list[FetchResult], Counter[str]]:
        hits: Counter[str] = Counter()
        async with canary.listen() as port:
            hops = {"/by-ip": (302, f"http://127.0.0.1:{port}/x"), "/by-name": (307, f"http://localhost:{port}/x")}
            async with farm({"/{tail:.*}": redirector(hops, hits)}, host="127.0.0.2") as base:
                results = [await fetch_once(f"{base}{path}", pol) for path in ("/feed", "/by-ip", "/by-name")]
        return results, hits

    (direct, by_ip, by_name), hits = run(scenario())
    assert direct.status == "ok"
    assert by_ip.status == by_name.status == "failed"
    assert by_ip.error is not None and by_ip.error.startswith("refused: 127.0.0.1 is a private address 127.0.0.1")
    assert by_name.error is not None and by_name.error.startswith("refused: localhost resolves to a private address")
    assert "(redirected from http://127.0.0.2:" in by_ip.error
    assert hits == Counter({"/feed": 1, "/by-ip": 1, "/by-name": 1})
    assert canary.hits == 0


# --- SSRF and DNS rebinding ---------------------------------------------------------------------------


def test_private_targets_are_refused_without_connecting() -> None:
    """Each URL would reach the canary (or a private network) if fetched; none may even start a connection."""
    canary, canary6 = Canary(), Canary()

    async def scenario() -> list[tuple[str, FetchResult, float]]:
        out = []
        async with (
            canary.listen() as p,
            canary6.listen("::1") as p6,
            Fetcher(
                policy(
                    allow_private_addresses=False, timeout=timedelta(seconds=20), connect_timeout=timedelta(seconds=10)
                )
            ) as f,  # fmt: skip
        ):
            urls = [
                *(f"http://{host}:{p}/feed" for host in ("127.0.0.1", "0.0.0.0", "localhost", "127.1")),
                *(f"http://{host}:{p}/feed" for host in ("2130706433", "0177.0.0.1", "0x7f000001")),
                *(f"http://[{host}]:{p}/feed" for host in ("::ffff:127.0.0.1", "2002:7f00:1::", "::ffff:7f00:1")),
                f"http://[::1]:{p6}/feed",
                "http://10.0.0.1/feed",
                "http://172.16.5.4/feed",
                "http://192.168.1.1/feed",
                "http://100.64.0.1/feed",
                "http://169.254.169.254/latest/meta-data/",
                "http://[::ffff:169.254.169.254]/latest/meta-data/",
                "http://[fc00::1]/feed",
                "http://[fe80::1]/feed",
                "http://224.0.0.1/feed",
                "https://240.0.0.1/feed",
            ]
            for url in urls:
                started = time.monotonic()
                result = await f.fetch(url)
                out.append((url, result, time.monotonic() - started))
        # The same canary answers when private addresses are allowed: its silence above means something.
        async with canary.listen() as p, Fetcher(policy()) as f:
            out.append(("control", await f.fetch(f"http://127.0.0.1:{p}/feed"), 0.0))
        return out

    *refused, (_, control, _) = run(scenario())
    for url, result, elapsed in refused:
        assert result.status == "failed" and result.error is not None, url
        assert REFUSAL.fullmatch(result.error), (url, result.error)
        assert elapsed < 5, (url, elapsed)  # refused before connecting; 10.0.0.1 and friends would hang 10 s
    assert canary6.hits == 0
    assert (control.status, control.body, canary.hits) == ("ok", FEED, 1)


class FlippingResolver(AbstractResolver):
    """A rebinding DNS server: the first answer is the allowed address, every later one is 127.0.0.1."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        ip = self.first if self.calls == 1 else "127.0.0.1"
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [ResolveResult(hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=flags)]

    async def close(self) -> None:
        pass


def test_dns_rebinding_connects_to_the_address_that_was_checked() -> None:
    """feeds.example.test first resolves to 127.0.0.2 (allowlisted: it plays the public IP), then to 127.0.0.1.
    The farm and the canary listen on the same port of those two addresses, so a second lookup at connect time
    would land on the canary. One lookup is made, checked, and connected to; a later lookup that answers
    127.0.0.1 is refused."""
    canary = Canary()
    resolver = FlippingResolver("127.0.0.2")
    pol = policy(allow_private_addresses=False, allowed_networks=("127.0.0.2",))
    feed_hits: list[str] = []

    async def feed(request: web.Request) -> web.Response:
        feed_hits.append(request.host)
        return web.Response(body=FEED, content_type=RSS)

    async def scenario() -> tuple[FetchResult, int, FetchResult]:
        for _ in range(20):  # find a port free on both addresses
            try:
                async with farm({"/feed": feed}, host="127.0.0.2") as base:
                    port = int(base.rsplit(":", 1)[1])
                    async with canary.listen(port=port):
                        url = f"http://feeds.example.test:{port}/feed"
                        async with Fetcher(pol, resolver=resolver) as fetcher:
                            first = await fetcher.fetch(url)
                        lookups = resolver.calls
                        async with Fetcher(pol, resolver=resolver) as fetcher:
                            return first, lookups, await fetcher.fetch(url)
            except OSError:
                continue
        raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")

    first, lookups, second = run(scenario())
    assert (first.status, first.body, lookups) == ("ok", FEED, 1)
    assert len(feed_hits) == 1 and feed_hits[0].startswith("feeds.example.test:")
    assert second.error is not None
    assert second.error.startswith("refused: feeds.example.test resolves to a private address 127.0.0.1")
    assert canary.hits == 0


@pytest.mark.parametrize("url", ["ftp://example.org/feed.xml", "gopher://example.org/1", "data:text/xml,<rss/>"])
def test_non_http_feed_urls_are_refused(url: str) -> None:
    result = run(fetch_once(url))
    assert (result.status, result.error) == ("failed", f"unsupported URL scheme: {url.split(':')[0]}")


# --- time, size and broken transports ------------------------------------------------------------------


def test_slow_drip_is_cut_by_the_total_deadline_and_the_connection_freed() -> None:
    async def scenario() -> tuple[FetchResult, float, bool]:
        gone = asyncio.Event()

        async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<rss>")
            try:
                while True:  # one byte every 0.3 s: never idle long enough for a read timeout
                    await asyncio.sleep(0.3)
                    writer.write(b" ")
                    await writer.drain()
            except ConnectionError:
                gone.set()

        async with raw_server(drip) as port:
            started = time.monotonic()
            fetching = fetch_once(f"http://127.0.0.1:{port}/", policy(timeout=timedelta(seconds=1)))
            result = await asyncio.wait_for(fetching, 5)  # a missing deadline fails here instead of hanging
            elapsed = time.monotonic() - started
            with suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), 2)
            return result, elapsed, gone.is_set()

    result, elapsed, freed = run(scenario())
    assert (result.status, result.error, result.body) == ("failed", "timed out after 1s", b"")
    assert 0.9 < elapsed < 4.0  # the 1 s deadline, with room for a loaded machine; without it, 5 s and a fail
    assert freed


def test_black_hole_port_fails_within_the_connect_timeout() -> None:
    """A listener whose accept queue is full drops new SYNs: the connection never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    with socket.socket() as probe:
        probe.settimeout(0.3)
        if probe.connect_ex(("127.0.0.1", port)) != errno.EAGAIN:  # EAGAIN: the plain connect timed out too
            pytest.skip("this kernel answers SYNs to a full accept queue (tcp_abort_on_overflow?)")
    try:
        started = time.monotonic()
        pol = policy(timeout=timedelta(seconds=5), connect_timeout=timedelta(seconds=0.5))
        result = run(fetch_once(f"http://127.0.0.1:{port}/feed", pol))
        elapsed = time.monotonic() - started
    finally:
        for s in [*fillers, listener]:
            s.close()
    assert (result.status, result.error) == ("failed", "connect timed out")
    assert elapsed < 4.0  # the 0.5 s connect timeout, not the 5 s deadline (generous: a shared machine)


def test_connection_refused_on_a_closed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(fetch_once(f"http://127.0.0.1:{port}/feed"))
    assert (result.status, result.error, result.http_status) == ("failed", "connection refused", None)


def test_dns_failure_names_the_host() -> None:
    result = run(fetch_once("http://nonexistent.invalid/feed.xml"))
    assert (result.status, result.error) == ("failed", "DNS lookup failed for nonexistent.invalid")


def stream_of(size: int, content_length: int | None = None) -> Handler:
    """A 200 that streams `size` bytes of XML-ish text in 64 KB chunks, chunked unless a length is declared."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": RSS})
        if content_length is not None:
            response.content_length = content_length
        await response.prepare(request)
        try:
            for start in range(0, size, 65536):
                await response.write(b"<item>" + b"x" * (min(65536, size - start) - 6))
        except ConnectionError:
            pass
        return response

    return handle


@pytest.mark.parametrize(
    "handler",
    [stream_of(3_000_000), stream_of(1_500_000, content_length=1_500_000)],
    ids=["chunked-no-length", "honest-length"],
)
def test_body_over_the_cap_fails_as_too_large(handler: Handler) -> None:
    async def scenario() -> FetchResult:
        async with farm({"/feed": handler}) as base:
            return await fetch_once(f"{base}/feed", policy(max_bytes=1_000_000))

    result = run(scenario())
    assert (result.status, result.error, result.body) == ("failed", "too large: over 1 MB", b"")


def test_body_at_the_cap_is_fine() -> None:
    async def scenario() -> FetchResult:
        async with farm({"/feed": stream_of(1_000_000)}) as base:
            return await fetch_once(f"{base}/feed", policy(max_bytes=1_000_000))

    result = run(scenario())
    assert result.status == "ok" and len(result.body) == 1_000_000


def test_understated_content_length_is_never_believed() -> None:
    """Two ways a Content-Length understates the body: it counts compressed bytes (honest on the wire, 3 KB,
    while the body is 3 MB), or it lies outright (100 bytes declared, 2 MB sent). The first is cut at the cap
    on decoded bytes; the second breaks HTTP framing and fails; neither yields an ok body past the cap."""
    packed = gzip.compress(FEED * 40_000)

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(body=packed, headers={"Content-Encoding": "gzip", "Content-Type": RSS})

    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 2_000_000)
        await writer.drain()

    async def scenario() -> tuple[FetchResult, FetchResult]:
        pol = policy(max_bytes=1_000_000)
        async with farm({"/feed": zipped}) as base, raw_server(liar) as port:
            return await fetch_once(f"{base}/feed", pol), await fetch_once(f"http://127.0.0.1:{port}/", pol)

    compressed, lying = run(scenario())
    assert len(packed) < 1_000_000 < len(FEED * 40_000)
    assert (compressed.status, compressed.error) == ("failed", "too large: over 1 MB")
    assert lying.status == "failed" and lying.body == b""
    assert lying.error is not None and lying.error.startswith("broken response (") and len(lying.error) < 200


@cache
def bomb(encoding: str) -> bytes:
    zeros = b"\0" * 50_000_000
    if encoding == "gzip":
        return gzip.compress(zeros, 6)
    if encoding == "deflate":
        return zlib.compress(zeros, 6)
    return bytes(brotli.compress(zeros, quality=4))


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_compression_bomb_is_stopped_at_the_cap_on_decoded_bytes(encoding: str) -> None:
    """50 MB of zeros in ~50 KB (brotli: 100 bytes); cap 4 MB. Decoding all of it would allocate 50 MB."""
    payload = bomb(encoding)

    async def explode(request: web.Request) -> web.Response:
        return web.Response(body=payload, headers={"Content-Encoding": encoding, "Content-Type": RSS})

    async def scenario() -> tuple[FetchResult, int]:
        async with farm({"/feed": explode}) as base:
            tracemalloc.start()
            try:
                result = await fetch_once(f"{base}/feed", policy(max_bytes=4_000_000))
                return result, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    result, peak = run(scenario())
    assert (result.status, result.error, result.body) == ("failed", "too large: over 4 MB", b"")
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB for a 4 MB cap"


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<rss><channel><title>half")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # linger 0: the kernel sends RST, not FIN


async def fin_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<rss><channel><title>half")
    await writer.drain()


async def broken_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<rss>\r\nZZZ\r\nmore\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pass


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (reset_mid_body, "connection reset"),
        (fin_mid_body, "broken response (Not enough data to satisfy content length header"),
        (broken_chunks, "broken response (Invalid character in chunk size"),
        (not_http, "broken response (Bad status line"),
        (hang_up, "connection closed by the server"),
    ],
)
def test_broken_transports_fail_with_distinct_errors_and_no_partial_body(handler: RawHandler, error: str) -> None:
    async def scenario() -> FetchResult:
        async with raw_server(handler) as port:
            return await fetch_once(f"http://127.0.0.1:{port}/feed")

    result = run(scenario())
    assert result.status == "failed" and result.body == b""
    assert result.error is not None and result.error.startswith(error), result.error
    assert "\n" not in result.error


# --- TLS -----------------------------------------------------------------------------------------------


def test_tls_certificate_problems_fail_with_a_tls_message_and_trust_is_never_dropped() -> None:
    ca = trustme.CA()
    good = ca.issue_cert("127.0.0.1", "localhost")
    wrong_host = ca.issue_cert("feeds.example.org")
    expired = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) - timedelta(days=1))

    def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=FEED, content_type=RSS)

    async def scenario() -> dict[str, FetchResult]:
        results = {}
        for name, cert, context in [
            ("untrusted", good, None),
            ("trusted", good, trusting),
            ("wrong host", wrong_host, trusting),
            ("expired", expired, trusting),
        ]:
            async with (
                farm({"/feed": feed}, tls=server_context(cert)) as base,
                Fetcher(policy(), ssl_context=context) as fetcher,
            ):
                results[name] = await fetcher.fetch(f"{base}/feed")
        return results

    results = run(scenario())
    assert (results["trusted"].status, results["trusted"].body) == ("ok", FEED)
    reasons = {
        "untrusted": "unable to get local issuer certificate",
        "wrong host": "IP address mismatch",
        "expired": "certificate has expired",
    }
    for name, reason in reasons.items():
        error = results[name].error or ""
        assert results[name].status == "failed" and error.startswith(f"TLS certificate error: {reason}"), error


# --- politeness: per-host concurrency ------------------------------------------------------------------


def test_at_most_per_host_requests_in_flight_and_queueing_does_not_eat_the_deadline() -> None:
    """10 fetches of one host, 0.2 s each, 2 at a time: the last waits 0.8 s for a slot, longer than the 0.5 s
    deadline, and still succeeds, because the deadline measures the server, not our queue."""
    in_flight = 0
    peak = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1
        return web.Response(body=FEED, content_type=RSS)

    async def scenario() -> list[FetchResult]:
        async with farm({"/{n}": slow}) as base, Fetcher(policy(timeout=timedelta(seconds=0.5))) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(f"{base}/{n}") for n in range(10)))

    results = run(scenario())
    assert [r.status for r in results] == ["ok"] * 10
    assert peak == 2


# --- files ---------------------------------------------------------------------------------------------


def test_file_urls_and_paths(tmp_path: Path) -> None:
    saved = tmp_path / "saved feed.xml"
    saved.write_bytes(FEED)
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * 2_000)
    missing = tmp_path / "missing.xml"

    async def scenario() -> list[FetchResult]:
        async with Fetcher(policy(max_bytes=1_000)) as fetcher:
            urls = [saved.as_uri(), str(saved), missing.as_uri(), big.as_uri()]
            return [await fetcher.fetch(url) for url in urls]

    by_uri, by_path, absent, too_big = run(scenario())
    assert (by_uri.status, by_uri.body, by_uri.http_status) == ("ok", FEED, None)
    assert (by_path.status, by_path.body) == ("ok", FEED)
    assert (absent.status, absent.error) == ("failed", f"file not found: {missing}")
    assert (too_big.status, too_big.error) == ("failed", "too large: over 1 KB")


# --- secrets -------------------------------------------------------------------------------------------


def test_basic_auth_password_and_url_tokens_never_reach_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-Pw"
    hits: Counter[str] = Counter()
    hops = {"/loop-a": (302, f"/loop-b?token={secret}"), "/loop-b": (302, "/loop-a")}

    async def scenario() -> list[FetchResult]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        async with farm({"/{tail:.*}": redirector(hops, hits)}) as base:
            authority = base.replace("http://", f"http://alice:{secret}@")
            urls = [
                f"{authority}/loop-a",
                f"http://alice:{secret}@127.0.0.1:{closed_port}/feed",
                f"http://alice:{secret}@nonexistent.invalid/feed",
                f"http://alice:{secret}@[::1/feed",
                f"ftp://alice:{secret}@example.org/feed",
                f"http://{secret}@nonexistent.invalid/feed?api_key={secret}",
            ]
            results = [await fetch_once(url) for url in urls]
            results.append(await fetch_once(f"{authority}/feed", policy(allow_private_addresses=False)))
            return results

    results = run(scenario())
    assert hits["/loop-a"] == 1  # the credentials reached the farm: the requests were real
    assert all(r.status == "failed" for r in results)
    assert results[0].error is not None and "alice:***@" in results[0].error and "token=***" in results[0].error
    for result in results:
        assert secret not in (result.error or ""), result.error
    fetch_records = [r for r in caplog.records if r.name == "monitor.fetch"]
    assert len(fetch_records) == len(results)
    assert all(r.levelno == logging.DEBUG and r.status == "failed" for r in fetch_records)  # type: ignore[attr-defined]
    assert all("alice:***@" in r.feed or "***@" in r.feed for r in fetch_records)  # type: ignore[attr-defined]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert secret not in text, text


def test_mask_url() -> None:
    assert (
        mask_url("https://user:p@ss@host/x?a=1&access_token=abc#f") == "https://user:***@host/x?a=1&access_token=***#f"
    )
    assert mask_url("redirect loop: http://tok@h/a → http://h/b") == "redirect loop: http://***@h/a → http://h/b"
    assert mask_url("http://host/feed?page=2") == "http://host/feed?page=2"
