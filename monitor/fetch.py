"""The HTTP edge of the poller: one conditional GET per feed, bounded in time, size and reach.

`Fetcher.fetch` turns a feed URL into a `FetchResult`. Every failure a feed can cause (timeouts, refusals,
bad TLS, broken or oversized bodies, redirect trouble) comes back as a value; only a bug escapes.
It must never parse or judge the body, turn TLS verification off, connect to a private address the policy
does not allow, or write a URL's password into an error or a log line.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from monitor.policy import FetchPolicy, mask_url
from monitor.records import FetchResult, FetchStatus

__all__ = ["FetchPolicy", "Fetcher", "mask_url"]

logger = logging.getLogger("monitor.fetch")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
KEPT_HEADERS = (
    *("content-type", "content-language", "content-location", "etag", "last-modified"),
    *("cache-control", "expires", "date", "age", "retry-after"),
)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _forbidden(ip: IPAddress) -> bool:
    """Whether `ip` is anything but a public unicast address, looking through IPv6 forms that embed IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        teredo = ip.teredo[1] if ip.teredo else None
        nat64 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None
        if any(v4 is not None and _forbidden(v4) for v4 in (ip.ipv4_mapped, ip.sixtofour, teredo, nat64)):
            return True
    return not ip.is_global or ip.is_multicast


class _Refused(OSError):
    """Raised by the resolver so that aiohttp never connects; its message is the fetch's error."""


class _CheckingResolver(AbstractResolver):
    """Resolves through `inner`, then refuses the whole answer if any address in it is not allowed.

    aiohttp connects to exactly the addresses returned here, so the address checked is the address used:
    there is no second lookup for a rebinding DNS server to answer differently.
    """

    def __init__(self, inner: AbstractResolver, fetcher: Fetcher) -> None:
        self._inner = inner
        self._fetcher = fetcher

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            async with asyncio.timeout(self._fetcher.policy.connect_timeout.total_seconds()):
                answers = await self._inner.resolve(host, port, family)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, "timed out") from None
        if not answers:
            raise OSError(errno.EHOSTUNREACH, "no addresses")
        for answer in answers:
            try:
                ip = ipaddress.ip_address(answer["host"])
            except ValueError:  # connecting would mean another lookup, unchecked
                raise _Refused(f"refused: {host} resolved to {answer['host']!r}, not an IP address") from None
            if refusal := self._fetcher.refusal(host, ip, "resolves to"):
                raise _Refused(refusal)
        return answers

    async def close(self) -> None:
        pass  # the Fetcher closes the inner resolver it made


@dataclass
class _Response:
    """What one hop came back with: `body` for a 2xx only, `error` when its body could not be had."""

    status: int
    headers: dict[str, str]
    location: str | None = None
    body: bytes = b""
    error: str | None = None


class Fetcher:
    """Fetches feeds over one aiohttp session, made on first use; `async with Fetcher(policy) as f:`."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`now` dates Retry-After; `resolver` makes the raw DNS lookups (its answers are checked all the same);
        `ssl_context` may trust a private CA, and verification stays on either way."""
        self.policy = policy or FetchPolicy()
        self._now = now
        self._resolver = resolver
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._allowed = tuple(ipaddress.ip_network(n, strict=False) for n in self.policy.allowed_networks)
        self._session: aiohttp.ClientSession | None = None
        self._own_resolver: AbstractResolver | None = None
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._all = asyncio.Semaphore(self.policy.max_connections)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._own_resolver is not None:
            await self._own_resolver.close()
            self._own_resolver = None

    def refusal(self, host: str, ip: IPAddress, verb: str) -> str | None:
        """The error for reaching `ip` (which `host` is or resolves to), or None when the policy allows it."""
        if self.policy.allow_private_addresses or not _forbidden(ip) or any(ip in n for n in self._allowed):
            return None
        return f"refused: {host} {verb} a private address {ip} (set allow_private_addresses = true to allow)"

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET `url` (http, https, file, or an absolute path), sending the validators from the last poll."""
        if url.startswith("/") or url.lower().startswith("file:"):
            result = await self._read_file(url)
        else:
            result = await self._fetch_http(url, etag, last_modified)
        if result.error is not None:
            result = replace(result, error=_scrub(result.error, url))
        if logger.isEnabledFor(logging.DEBUG):  # masking costs regexes on every fetch: only when it is shown
            masked = mask_url(url)
            detail = result.error or result.http_status or ""
            logger.debug(
                "fetch %s: %s %s", masked, result.status, detail, extra={"feed": masked, "status": result.status}
            )
        return result

    async def _read_file(self, url: str) -> FetchResult:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc not in ("", "localhost"):
            return _failed(url, f"unsupported file URL host: {parts.netloc}")
        path = Path(unquote(parts.path) if parts.scheme else url)

        def read() -> bytes:
            with path.open("rb") as handle:
                return handle.read(self.policy.max_bytes + 1)  # one byte more tells "too large" from "full"

        try:
            async with asyncio.timeout(self.policy.timeout.total_seconds()):  # a FIFO would block for ever
                body = await asyncio.to_thread(read)
        except TimeoutError:
            return _failed(url, f"timed out after {self.policy.timeout.total_seconds():g}s")
        except FileNotFoundError:
            return _failed(url, f"file not found: {path}")
        except OSError as exc:
            return _failed(url, f"cannot read {path}: {exc.strerror or exc}")
        if len(body) > self.policy.max_bytes:
            return _failed(url, f"too large: over {_size(self.policy.max_bytes)}")
        return FetchResult("ok", url, body=body)

    def _check(self, url: URL) -> str | None:
        """Why `url` must not be requested, judged before connecting: its scheme, or a private IP literal."""
        if url.scheme not in ("http", "https"):
            return f"unsupported URL scheme: {url.scheme or '(none)'}"
        host = url.host
        if not host:
            return "invalid URL: no host"
        try:
            ip: IPAddress = ipaddress.ip_address(host)
        except ValueError:
            # aiohttp skips the resolver for digits-and-dots hosts, and getaddrinfo maps hex ones without
            # asking DNS: decimal, octal, hex and short forms (2130706433, 0177.0.0.1, 127.1) are judged here.
            if not re.fullmatch(r"[0-9a-fA-FxX.]+", host) or not any(c.isdigit() for c in host):
                return None  # a name: the resolver checks what it resolves to
            try:
                ip = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return None
            return self.refusal(host, ip, "is") or f"invalid URL: non-standard IPv4 address {host}"
        return self.refusal(host, ip, "is")

    async def _fetch_http(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        try:
            current = URL(url)
        except (ValueError, TypeError) as exc:
            return _failed(url, f"invalid URL: {exc}")
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate, br", "User-Agent": self.policy.user_agent}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        total = budget = self.policy.timeout.total_seconds()
        chain: list[URL] = []
        permanent = True
        loop = asyncio.get_running_loop()
        while True:
            if problem := self._check(current):  # every hop, so a redirect cannot reach what a feed URL cannot
                return _failed(str(current), problem + (f" (redirected from {chain[-1]})" if chain else ""))
            chain.append(current)
            async with self._slot(current.host or ""):  # queueing for a slot is our doing, not the server's
                started = loop.time()
                try:
                    async with asyncio.timeout(budget) as deadline:
                        response = await self._request(current, headers)
                except Exception as exc:
                    error = _describe(exc, current.host or "")
                    if isinstance(exc, TimeoutError) and deadline.expired():
                        error = f"timed out after {total:g}s"
                    if error is None:
                        raise
                    return _failed(str(current), error)
                budget -= loop.time() - started
            if response.status not in REDIRECTS or response.location is None:
                break
            permanent = permanent and response.status in PERMANENT
            try:
                target = current.join(URL(response.location)).with_fragment(None)
            except (ValueError, TypeError):
                return _failed(str(current), f"broken redirect: invalid Location {_one_line(repr(response.location))}")
            if target in chain:
                return _failed(str(current), "redirect loop: " + " → ".join(str(u) for u in [*chain, target]))
            if len(chain) > self.policy.max_redirects:
                return _failed(str(current), f"too many redirects (over {self.policy.max_redirects})")
            current = target
        # The feed moves only when every hop said so and the new URL works.
        moved = str(current) if len(chain) > 1 and permanent else None
        return self._result(str(current), response, moved, etag, last_modified)

    def _result(
        self, url: str, response: _Response, moved: str | None, etag: str | None, last_modified: str | None
    ) -> FetchResult:
        status, headers = response.status, response.headers
        base = FetchResult("failed", url, headers=headers, http_status=status)
        if response.error is not None:
            return replace(base, error=response.error)
        if status == 304 or 200 <= status < 300:
            fresh = status != 304  # a 200 replaces the validators; a 304 keeps those it does not repeat
            kind: FetchStatus = "ok" if fresh else "not_modified"
            etag = headers.get("etag", None if fresh else etag)
            last_modified = headers.get("last-modified", None if fresh else last_modified)
            return replace(
                base, status=kind, body=response.body, etag=etag, last_modified=last_modified, permanent_url=moved
            )
        if status == 410:
            return replace(base, status="gone", error="HTTP 410 Gone: the publisher removed this feed")
        retry_after = _retry_after(headers.get("retry-after"), self._now()) if status in (429, 503) else None
        error = _status_line(status) + (" without a Location header" if status in REDIRECTS else "")
        return replace(base, retry_after=retry_after, error=error)

    async def _request(self, url: URL, headers: dict[str, str]) -> _Response:
        async with self._open().get(url, headers=headers, allow_redirects=False, ssl=self._ssl) as resp:
            kept = {k: resp.headers[k] for k in KEPT_HEADERS if k in resp.headers}
            response = _Response(resp.status, kept, resp.headers.get("Location"))
            if not 200 <= resp.status < 300:
                return response  # the body of an error or a redirect is never used, so never read
            limit, chunks, size = self.policy.max_bytes, [], 0
            if resp.content_length is not None and resp.content_length > limit:
                size = resp.content_length
            else:
                # Counted after decoding, chunk by chunk: aiohttp inflates in bounded steps under back-pressure,
                # so a compression bomb stops at the cap with about one chunk past it in memory.
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        break
                    chunks.append(chunk)
            if size > limit:
                resp.close()  # drop the connection: the rest of the body is never read
                response.error = f"too large: over {_size(limit)}"
            else:
                response.body = b"".join(chunks)
            return response

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            inner = self._resolver or self._own_resolver or aiohttp.DefaultResolver()
            self._own_resolver = None if self._resolver else inner
            p = self.policy
            connector = aiohttp.TCPConnector(
                limit=p.max_connections, limit_per_host=p.per_host, resolver=_CheckingResolver(inner, self)
            )
            # No total timeout here: the deadline is ours and spans redirects. No proxy from the environment: it
            # would resolve names itself, out of reach of the private-address check. No cookies across feeds.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=p.connect_timeout.total_seconds())
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._session

    @asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's `per_host` slots, then one of `max_connections`; forget hosts gone idle."""
        semaphore, users = self._hosts.get(host) or (asyncio.Semaphore(self.policy.per_host), 0)
        self._hosts[host] = (semaphore, users + 1)
        try:
            async with semaphore, self._all:
                yield
        finally:
            semaphore, users = self._hosts.pop(host)
            if users > 1:
                self._hosts[host] = (semaphore, users - 1)


def _describe(exc: Exception, host: str) -> str | None:
    """One line for an expected network failure; None for anything else, which is a bug and must escape."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        return f"TLS certificate error: {getattr(cert, 'verify_message', None) or cert}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {getattr(exc.os_error, 'reason', None) or exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, _Refused):
            return str(exc.os_error)
        return f"DNS lookup failed for {host}" + (" (timed out)" if exc.os_error.errno == errno.ETIMEDOUT else "")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        if code == errno.ECONNREFUSED or (code is None and "refused" in str(exc.os_error).lower()):
            return "connection refused"
        return f"cannot connect to {host}: {exc.os_error.strerror or _one_line(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        # aiohttp names a reset only in the message; the exception's cause is the framing error it led to.
        if "ConnectionResetError" in str(exc):
            return "connection reset"
        cause = exc.__cause__
        return f"broken response ({_one_line(cause.message if isinstance(cause, HttpProcessingError) else exc)})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the server"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"broken response ({_one_line(exc.message)})"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL: {exc.description or exc.url}"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"connection error: {_one_line(exc)}"
    return None


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`, from delta-seconds or an HTTP date; never negative."""
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    aware = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (when, now)]
    return max(0.0, (aware[0] - aware[1]).total_seconds())


def _status_line(status: int) -> str:
    # The standard phrase, not the server's: the same on HTTP/1 and HTTP/2, and no server text in our errors.
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _size(limit: int) -> str:
    for scale, unit in ((10**9, "GB"), (10**6, "MB"), (10**3, "KB")):
        if limit >= scale:
            return f"{limit / scale:.3g} {unit}"
    return f"{limit} bytes"


def _one_line(text: object, limit: int = 160) -> str:
    """Server-influenced text (parser messages quote the bytes received) folded to one short line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _scrub(error: str, url: str) -> str:
    """`error` with URLs masked, and the feed URL's password removed wherever else it shows, in any spelling."""
    try:
        password = URL(url).raw_password
    except (ValueError, TypeError):
        password = None
    for secret in {password or "", unquote(password or "")}:
        if len(secret) >= 4:  # replacing a one-letter password everywhere would garble the message, not hide it
            error = error.replace(secret, "***")
    return mask_url(error)


def _failed(url: str, error: str) -> FetchResult:
    return FetchResult("failed", url, error=error)
