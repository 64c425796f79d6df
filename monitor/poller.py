"""A poller process, and the path of one feed through it.

    Job (task, known keys) ──► fetch ──► read (pre-scan, parse, normalise, match) ──► new items ──► PollOutcome

`poll_feed` is the whole path for one feed. The service runs it in its own process for tests and small
desks (reading in a thread), or hands jobs to the poller processes of `pollers.Pollers`, each running
`main` here: its own event loop, fetcher and matcher.

This module is what a poller imports: the fetcher (in the poller only) and the pipeline, never the database
or Apprise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, Literal, Protocol

from monitor import logs
from monitor.pipeline.decide import ReadFeed, new_items, read_body, triage
from monitor.pipeline.match import Matcher
from monitor.policy import FetchPolicy
from monitor.records import FeedTask, FetchResult, PollOutcome

log = logging.getLogger("monitor.poller")

ANSWERS_PER_MESSAGE = 8
"""A first poll's outcome carries every item of the feed: a few per message keep both sides' buffers small."""
Known = Callable[[int], Awaitable[Collection[str]]]
"""A feed's stored keys, by feed id, as the service knows them."""
Read = Callable[[FeedTask, FetchResult, datetime, Collection[str] | None], Awaitable[ReadFeed | PollOutcome]]


class FetchLike(Protocol):
    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult: ...


@dataclass(frozen=True)
class Job:
    """One feed to poll: its lease, and the keys it is known to have stored (None on its first poll, or when
    the service has not read them yet: the poller asks for them if the body has changed)."""

    task: FeedTask
    known: frozenset[str] | None
    backfill: timedelta


def read_and_match(
    matcher: Matcher, task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None
) -> ReadFeed | PollOutcome:
    """`read_body`, with each item's rule matches."""
    read = read_body(task, result, now, known)
    if isinstance(read, ReadFeed):
        return replace(read, matches=tuple(matcher.match(item.document()) for item in read.items))
    return read


async def poll_feed(
    fetcher: FetchLike, job: Job, read: Read, now: Callable[[], datetime],
    fetched: Callable[[], None] | None = None, known: Callable[[], Awaitable[Collection[str]]] | None = None,
) -> PollOutcome:  # fmt: skip
    """Fetch, read and match one feed: the outcome to store. A failure is an outcome, never raised.

    `fetched` is told when the request is over. A job that does not carry the feed's known keys (the
    service has not read them since it started) asks `known` for them, and only when the body has changed:
    a 304 or the same body needs none."""
    started = time.perf_counter()
    outcome = await _poll(fetcher, job, read, now, fetched, known)
    return replace(outcome, seconds=time.perf_counter() - started)


async def _poll(
    fetcher: FetchLike, job: Job, read: Read, now: Callable[[], datetime],
    fetched: Callable[[], None] | None, known: Callable[[], Awaitable[Collection[str]]] | None,
) -> PollOutcome:  # fmt: skip
    task = job.task
    result = await fetcher.fetch(task.url, task.etag, task.last_modified)
    if fetched is not None:
        fetched()
    moment = now()
    keys = job.known
    if keys is None and not task.first_poll and known is not None and isinstance(triage(task, result), str):
        keys = frozenset(await known())
    got = await read(task, result, moment, keys)
    if not isinstance(got, ReadFeed):
        return got
    matches = dict(zip((item.key for item in got.items), got.matches, strict=True))
    fresh = new_items(got.items, keys or (), lambda item: matches[item.key], task.first_poll, job.backfill, moment)
    return PollOutcome(
        feed_id=task.feed_id, status="ok", http_status=result.http_status, new_items=fresh,
        feed_title=got.title, etag=result.etag, last_modified=result.last_modified,
        body_hash=got.body_hash, permanent_url=result.permanent_url, warnings=got.warnings, entries=got.entries,
        first_poll=task.first_poll,
    )  # fmt: skip


def lost_poll(task: FeedTask, why: str) -> PollOutcome:
    """A poll that ended without an answer: failed, the feed is polled again next time."""
    return PollOutcome(feed_id=task.feed_id, status="failed", error=why)


def main() -> None:
    """A poller process: its matcher, fetch policy and log level first, then jobs in and outcomes out, until
    it is sent None or the service's end of the pipe closes (the service stopped, or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C sent to the service's group by hand stays its own
    connection = Connection(int(sys.argv[1]))
    # The HTTP client, imported before the matcher comes: a poller started early (`prestart`) imports it
    # while the service is still starting. The parser and URL normaliser (feedparser, courlan: about as
    # much again) wait for the first changed body, so a cycle of 304s never loads them.
    import monitor.fetch  # noqa: F401

    try:
        matcher, policy, level = connection.recv()
    except (OSError, EOFError):
        return
    if level is not None:
        logs.setup(level)
    asyncio.run(_poll_jobs(connection, matcher, policy))
    # Every answer is sent and the pipe closed: what is left is the interpreter tearing down aiohttp,
    # feedparser and the matcher object by object (~0.1 s that the service, waiting for its pollers at
    # exit, would wait too). A worker ends as multiprocessing's own do.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _poll_jobs(connection: Connection, matcher: Matcher, policy: FetchPolicy) -> None:
    from monitor.fetch import Fetcher  # here, so that the service's process never loads the HTTP client

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[list[tuple[str, int, Any]] | Literal["gone"] | None] = asyncio.Queue()
    outbox: list[tuple[str, int, Any]] = []
    asked: dict[int, asyncio.Future[Collection[str]]] = {}

    def receive() -> None:  # a thread, so the pipe is drained even while the loop is busy reading a body
        while True:
            try:
                message = connection.recv()
            except (OSError, EOFError):  # the service died: nobody waits for the polls in flight
                with contextlib.suppress(RuntimeError):  # or this poller is ending: its loop has closed
                    loop.call_soon_threadsafe(gone)
                return
            if message is None:  # no more jobs; keys for the ones in flight may still come
                loop.call_soon_threadsafe(inbox.put_nowait, None)
                continue
            jobs = [part for part in message if part[0] == "job"]
            keys = [part for part in message if part[0] == "keys"]
            if keys:
                loop.call_soon_threadsafe(answered, keys)
            if jobs:
                loop.call_soon_threadsafe(inbox.put_nowait, jobs)

    def gone() -> None:  # retired or not: a poll waiting for keys would wait for ever
        for job_task in running:
            job_task.cancel()
        inbox.put_nowait("gone")

    def answered(keys: list[tuple[str, int, Any]]) -> None:
        for _, number, payload in keys:
            waiting = asked.get(number)
            if waiting is not None and not waiting.done():
                waiting.set_result(payload)

    async def read(task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None) -> Any:
        return read_and_match(matcher, task, result, now, known)  # in the loop: this process is the worker

    def tell(kind: str, number: int, payload: Any = None) -> None:
        if not outbox:
            loop.call_soon(answer)
        outbox.append((kind, number, payload))

    async def keys(number: int) -> Collection[str]:
        asked[number] = loop.create_future()
        tell("keys", number)
        return await asked[number]

    def release(number: int) -> None:  # now, not at the end of this turn: a body read next holds no request
        connection.send([("fetched", number, None)])

    async def one(number: int, job: Job, hold: bool) -> None:
        try:
            outcome = await poll_feed(fetcher, job, read, lambda: datetime.now(UTC),
                                      fetched=(lambda: release(number)) if hold else None,
                                      known=lambda: keys(number))  # fmt: skip
        except Exception as error:  # a bug; the feed's poll fails, the poller carries on
            log.exception("poll failed in a poller process")
            outcome = lost_poll(job.task, f"internal error: {type(error).__name__}")
        finally:
            asked.pop(number, None)
        tell("done", number, outcome)

    def answer() -> None:  # the messages of one turn of the loop, a few outcomes per message
        batch = outbox.copy()
        outbox.clear()
        start = 0
        while start < len(batch):  # the service's side drains them in a thread
            end, outcomes = start, 0
            while end < len(batch) and outcomes < ANSWERS_PER_MESSAGE:
                outcomes += batch[end][0] == "done"
                end += 1
            connection.send(batch[start:end])
            start = end

    running: set[asyncio.Task[None]] = set()
    threading.Thread(target=receive, daemon=True).start()
    async with Fetcher(policy) as fetcher:
        while (batch := await inbox.get()) is not None:
            if batch == "gone":
                break
            for _, number, (job, hold) in batch:
                job_task = loop.create_task(one(number, job, hold))
                running.add(job_task)
                job_task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)
    connection.close()
