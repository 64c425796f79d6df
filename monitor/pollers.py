"""Polling one feed, in this process or in a pool of poller processes that share the work by host.

    Job (task, known keys) ──► fetch ──► read (pre-scan, parse, normalise, match) ──► new items ──► PollOutcome

`poll_feed` is the whole path for one feed. The service runs it in its own process for tests and small
desks (reading in a thread), or hands jobs to `Pollers`: one process per core, each with its own event loop,
fetcher and matcher, so that fetching and reading use every core while the service's process keeps the
database and the delivery. A feed's host decides its poller, so the per-host request limit still holds;
the limit on requests in flight is shared out among the pollers.

This module is what a poller imports: the fetcher (in the poller only) and the pipeline, never the database
or Apprise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import count
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from monitor import logs
from monitor.pipeline.decide import ReadFeed, new_items, read_body
from monitor.pipeline.match import Matcher
from monitor.policy import FetchPolicy
from monitor.records import FeedTask, FetchResult, PollOutcome

log = logging.getLogger("monitor.pollers")

ANSWERS_PER_MESSAGE = 8
"""A first poll's outcome carries every item of the feed: a few per message keep both sides' buffers small."""
Read = Callable[[FeedTask, FetchResult, datetime, Collection[str] | None], Awaitable[ReadFeed | PollOutcome]]


class FetchLike(Protocol):
    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult: ...


@dataclass(frozen=True)
class Job:
    """One feed to poll: its lease, and the keys it is known to have stored (None on its first poll)."""

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


async def poll_feed(fetcher: FetchLike, job: Job, read: Read, now: Callable[[], datetime]) -> PollOutcome:
    """Fetch, read and match one feed: the outcome to store. A failure is an outcome, never raised."""
    task = job.task
    result = await fetcher.fetch(task.url, task.etag, task.last_modified)
    moment = now()
    got = await read(task, result, moment, job.known)
    if not isinstance(got, ReadFeed):
        return got
    matches = dict(zip((item.key for item in got.items), got.matches, strict=True))
    fresh = new_items(got.items, job.known or (), lambda item: matches[item.key], task.first_poll, job.backfill, moment)
    return PollOutcome(
        feed_id=task.feed_id, status="ok", http_status=result.http_status, new_items=fresh,
        feed_title=got.title, etag=result.etag, last_modified=result.last_modified,
        body_hash=got.body_hash, permanent_url=result.permanent_url, warnings=got.warnings, entries=got.entries,
        first_poll=task.first_poll,
    )  # fmt: skip


class Pollers:
    """`size` poller processes for one matcher and one fetch policy. `poll` may be awaited from any event
    loop; `retire` lets jobs in flight finish; `close` stops at once."""

    def __init__(self, size: int, matcher: Matcher, policy: FetchPolicy) -> None:
        self.matcher, self.policy = matcher, policy
        share = replace(policy, max_connections=max(1, math.ceil(policy.max_connections / size)))
        self._ids = count()
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[PollOutcome], int, FeedTask]] = {}
        # Pollers log as the service does, when the service has set up logging (`monitor run`).
        root = logging.getLogger()
        level = logging.getLevelName(root.level) if root.handlers else None
        self._shards = [_Shard(self, index, matcher, share, level) for index in range(size)]

    async def poll(self, job: Job) -> PollOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PollOutcome] = loop.create_future()
        shard = self._shards[zlib.crc32((urlsplit(job.task.url).hostname or "").encode()) % len(self._shards)]
        with self._lock:
            number = next(self._ids)
            self._waiting[number] = (loop, future, shard.index, job.task)
        shard.queue(loop, number, job)
        return await future

    def _settle(self, answers: list[tuple[int, PollOutcome]]) -> None:
        """Hand outcomes to the polls waiting for them: one wake-up of each event loop for the lot."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[PollOutcome], PollOutcome]]] = {}
        with self._lock:
            for number, outcome in answers:
                waiting = self._waiting.pop(number, None)
                if waiting is not None:
                    by_loop.setdefault(waiting[0], []).append((waiting[1], outcome))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_set_results, settled)

    def _orphaned(self, shard: int, why: str) -> None:
        """A poller died: every job it held ends as a failed poll (the feed is polled again next time)."""
        with self._lock:
            lost = [(number, task) for number, (_, _, index, task) in self._waiting.items() if index == shard]
        self._settle([(number, _lost(task, why)) for number, task in lost])

    def start(self) -> None:
        """Start every poller now rather than at its first job, so the first poll does not wait for them."""
        for shard in self._shards:
            shard.start()

    def retire(self) -> None:
        for shard in self._shards:
            shard.send(None)

    def close(self) -> None:
        for shard in self._shards:
            shard.stop()

    def pids(self) -> list[int]:
        """The poller processes running now."""
        return [pid for shard in self._shards if (pid := shard.pid()) is not None]


class _Shard:
    """One poller process, and the thread that takes its answers."""

    def __init__(self, owner: Pollers, index: int, matcher: Matcher, policy: FetchPolicy, level: str | None) -> None:
        self.owner, self.index = owner, index
        self._args = (matcher, policy, level)
        self._send_lock = threading.Lock()
        self._process: Any = None
        self._connection: Connection | None = None
        self._outgoing: list[tuple[int, Job]] = []

    def _start(self) -> Connection:
        # A new interpreter that imports this module only. Not a fork: the service runs threads, which a fork
        # would copy mid-flight. Not multiprocessing's forkserver either: it keeps two more processes resident
        # (the server and its resource tracker, ~27 MB) and re-imports the program's main module.
        mine, theirs = Pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from monitor.pollers import main; main()", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_child_environment(),
                process_group=0,  # out of the terminal's group: Ctrl-C is the service's, which stops its pollers
            )  # fmt: skip
        finally:
            theirs.close()
        mine.send(self._args)
        self._connection = mine
        threading.Thread(target=self._answers, args=(mine, self._process), name=f"monitor-poller-{self.index}",
                         daemon=True).start()  # fmt: skip
        return mine

    def start(self) -> None:
        with self._send_lock:
            if self._connection is None:
                with contextlib.suppress(OSError, EOFError):  # the first job will try again
                    self._start()

    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def queue(self, loop: asyncio.AbstractEventLoop, number: int, job: Job) -> None:
        """Send `job` with the others queued in this turn of the event loop: one message, not one each."""
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append((number, job))

    def _flush(self) -> None:
        batch, self._outgoing = self._outgoing, []
        if batch and not self.send(batch):
            self.owner._settle([(number, _lost(job.task, "the poller process is gone")) for number, job in batch])

    def send(self, message: Any) -> bool:
        with self._send_lock:
            try:
                connection = self._connection or (self._start() if message is not None else None)
                if connection is not None:
                    connection.send(message)
                return True
            except (OSError, EOFError):
                self._connection = None
                return False

    def _answers(self, connection: Connection, process: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                answers = connection.recv()
            except (OSError, EOFError):
                break
            self.owner._settle(answers)
        with self._send_lock:
            if self._connection is connection:
                self._connection = None  # the next job starts a new process
        connection.close()
        self.owner._orphaned(self.index, "the poller process stopped before answering")
        _reap(process)

    def stop(self) -> None:
        with self._send_lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(OSError, EOFError):
                connection.send(None)
        if self._process is not None:
            _reap(self._process)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for a poller that was told to stop or lost its pipe; kill it if it does not go."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _child_environment() -> dict[str, str]:
    """This environment, with the directory `monitor` was imported from first on the child's path, so the
    child runs this same code whether or not the package is installed."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else os.pathsep.join((root, path))}


def _set_results(settled: list[tuple[asyncio.Future[PollOutcome], PollOutcome]]) -> None:
    for future, outcome in settled:
        if not future.done():
            future.set_result(outcome)


def _lost(task: FeedTask, why: str) -> PollOutcome:
    return PollOutcome(feed_id=task.feed_id, status="failed", error=why)


def main() -> None:
    """A poller process: its matcher, fetch policy and log level first, then jobs in and outcomes out, until
    it is sent None or the service's end of the pipe closes (the service stopped, or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C sent to the service's group by hand stays its own
    connection = Connection(int(sys.argv[1]))
    try:
        matcher, policy, level = connection.recv()
    except (OSError, EOFError):
        return
    if level is not None:
        logs.setup(level)
    asyncio.run(_poll_jobs(connection, matcher, policy))


async def _poll_jobs(connection: Connection, matcher: Matcher, policy: FetchPolicy) -> None:
    from monitor.fetch import Fetcher  # here, so that the service's process never loads the HTTP client

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[list[tuple[int, Job]] | Literal["gone"] | None] = asyncio.Queue()
    outbox: list[tuple[int, PollOutcome]] = []

    def receive() -> None:  # a thread, so the pipe is drained even while the loop is busy reading a body
        while True:
            try:
                message = connection.recv()
            except (OSError, EOFError):
                message = "gone"  # the service died: nobody waits for the polls in flight
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message is None or message == "gone":
                return

    async def read(task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None) -> Any:
        return read_and_match(matcher, task, result, now, known)  # in the loop: this process is the worker

    async def one(number: int, job: Job) -> None:
        try:
            outcome = await poll_feed(fetcher, job, read, lambda: datetime.now(UTC))
        except Exception as error:  # a bug; the feed's poll fails, the poller carries on
            log.exception("poll failed in a poller process")
            outcome = _lost(job.task, f"internal error: {type(error).__name__}")
        if not outbox:
            loop.call_soon(answer)
        outbox.append((number, outcome))

    def answer() -> None:  # the outcomes finished in one turn of the loop, a few per message
        batch = outbox.copy()
        outbox.clear()
        for start in range(0, len(batch), ANSWERS_PER_MESSAGE):  # the service's side drains them in a thread
            connection.send(batch[start : start + ANSWERS_PER_MESSAGE])

    threading.Thread(target=receive, daemon=True).start()
    running: set[asyncio.Task[None]] = set()
    async with Fetcher(policy) as fetcher:
        while (batch := await inbox.get()) is not None:
            if batch == "gone":
                for job_task in running:
                    job_task.cancel()
                break
            for number, job in batch:
                job_task = loop.create_task(one(number, job))
                running.add(job_task)
                job_task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)
    connection.close()
