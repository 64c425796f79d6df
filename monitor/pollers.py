"""Polling one feed, in this process or in a pool of poller processes that share the work.

    Job (task, known keys) ──► fetch ──► read (pre-scan, parse, normalise, match) ──► new items ──► PollOutcome

`poll_feed` is the whole path for one feed. The service runs it in its own process for tests and small
desks (reading in a thread), or hands jobs to `Pollers`: one process per core, each with its own event loop,
fetcher and matcher, so that fetching and reading use every core while the service's process keeps the
database and the delivery. Whichever poller has the fewest jobs takes the next; the per-host request limit
is kept by the service's side across them, and the limit on requests in flight is shared out among them.

This module is what a poller imports: the fetcher (in the poller only) and the pipeline, never the database
or Apprise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
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
from monitor.pipeline.decide import ReadFeed, new_items, read_body, triage
from monitor.pipeline.match import Matcher
from monitor.policy import FetchPolicy
from monitor.records import FeedTask, FetchResult, PollOutcome

log = logging.getLogger("monitor.pollers")

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


class Pollers:
    """`size` poller processes for one matcher and one fetch policy. `poll` may be awaited from any event
    loop; `retire` lets jobs in flight finish; `close` stops at once.

    Any free poller takes the next job, whatever its host, so a desk whose feeds sit on one host (an outlet's
    section feeds, a newsroom's aggregator) uses every core. The per-host limit is kept here, across pollers:
    a job leaves its host's queue only while fewer than `per_host` of the host's requests are in flight, and
    its request counts until the poller says its body is in (not until it is read: a slow parse holds no
    connection). Keys are asked for (`known`) only when a body has changed."""

    def __init__(self, size: int, matcher: Matcher, policy: FetchPolicy, known: Known | None = None) -> None:
        self.matcher, self.policy = matcher, policy
        self._known = known
        share = replace(policy, max_connections=max(1, math.ceil(policy.max_connections / size)))
        self._ids = count()
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiting] = {}
        self._hosts: dict[str, int] = {}
        """Requests in flight per host, across every poller."""
        self._queued: dict[str, deque[int]] = {}
        # Pollers log as the service does, when the service has set up logging (`monitor run`).
        root = logging.getLogger()
        level = logging.getLevelName(root.level) if root.handlers else None
        self._shards = [_Shard(self, index, matcher, share, level) for index in range(size)]

    async def poll(self, job: Job) -> PollOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PollOutcome] = loop.create_future()
        host = (urlsplit(job.task.url).hostname or "").lower()
        with self._lock:
            number = next(self._ids)
            self._waiting[number] = _Waiting(loop, future, job, host)
            if self._hosts.get(host, 0) < self.policy.per_host:
                self._dispatch(number)
            else:
                self._queued.setdefault(host, deque()).append(number)
        return await future

    def _dispatch(self, number: int) -> None:
        """Send a job to the poller with the fewest jobs (holding `_lock`). `hold`: its host is at its limit,
        so the poller says at once when the request is over, before reading the body; otherwise its answer
        says so (one message fewer)."""
        waiting = self._waiting[number]
        busy = self._hosts[waiting.host] = self._hosts.get(waiting.host, 0) + 1
        shard = min(self._shards, key=lambda s: s.load)
        shard.load += 1
        shard.taken += 1
        waiting.outbox = shard.put(("job", number, (waiting.job, busy >= self.policy.per_host)), waiting.loop)

    def _release(self, waiting: _Waiting) -> None:
        """The job's request is over: its host may send the next (holding `_lock`)."""
        if waiting.fetched:
            return
        waiting.fetched = True
        busy = self._hosts.get(waiting.host, 1) - 1
        line = self._queued.get(waiting.host)
        if line:
            self._hosts[waiting.host] = busy
            self._dispatch(line.popleft())
            if not line:
                del self._queued[waiting.host]
        elif busy:
            self._hosts[waiting.host] = busy
        else:
            self._hosts.pop(waiting.host, None)

    def _answer(self, shard: _Shard, messages: list[tuple[str, int, Any]]) -> None:
        """A poller's messages: a request done, keys wanted, outcomes. One wake-up of each event loop."""
        done: list[tuple[_Waiting, PollOutcome]] = []
        wanted: list[tuple[_Waiting, int]] = []
        with self._lock:
            for kind, number, payload in messages:
                waiting = self._waiting.get(number)
                if waiting is None:
                    continue
                if kind == "fetched":
                    self._release(waiting)
                elif kind == "keys":
                    wanted.append((waiting, number))
                else:
                    del self._waiting[number]
                    self._release(waiting)
                    shard.load -= 1
                    done.append((waiting, payload))
        for waiting, number in wanted:
            asyncio.run_coroutine_threadsafe(self._send_keys(waiting, number), waiting.loop)
        _settle(done)

    async def _send_keys(self, waiting: _Waiting, number: int) -> None:
        try:
            keys = await self._known(waiting.job.task.feed_id) if self._known is not None else frozenset()
        except Exception:  # the database decides what is new anyway: a missing key costs a parse, not an alert
            log.exception("could not load a feed's known keys")
            keys = frozenset()
        if isinstance(waiting.outbox, queue.SimpleQueue):
            waiting.outbox.put([("keys", number, keys)])  # to the process that asked, even if it is retiring

    def _orphaned(self, shard: _Shard, outbox: object, why: str) -> None:
        """A poller died: every job it held ends as a failed poll (the feed is polled again next time)."""
        with self._lock:
            lost = [(n, w) for n, w in self._waiting.items() if w.outbox is outbox]
            for number, waiting in lost:
                del self._waiting[number]
                self._release(waiting)
            shard.load -= len(lost)
        _settle([(waiting, _lost(waiting.job.task, why)) for _, waiting in lost])

    def start(self) -> None:
        """Start every poller now rather than at its first job, so the first poll does not wait for them.
        Returns at once: each poller imports and takes its matcher while the service goes on."""
        for shard in self._shards:
            shard.start()

    def retire(self) -> None:
        for shard in self._shards:
            shard.put(None)

    def close(self) -> None:
        for shard in self._shards:
            shard.stop()

    def spread(self) -> list[int]:
        """How many jobs each poller has taken."""
        return [shard.taken for shard in self._shards]

    def pids(self) -> list[int]:
        """The poller processes running now."""
        return [pid for shard in self._shards if (pid := shard.pid()) is not None]


@dataclass
class _Waiting:
    """A job between `Pollers.poll` and its outcome."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[PollOutcome]
    job: Job
    host: str
    outbox: object = None
    """The queue of the poller process it was sent to (a poller that died is replaced by another)."""
    fetched: bool = False


def _settle(done: list[tuple[_Waiting, PollOutcome]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[PollOutcome], PollOutcome]]] = {}
    for waiting, outcome in done:
        by_loop.setdefault(waiting.loop, []).append((waiting.future, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_set_results, settled)


class _Shard:
    """One poller process, the thread that writes to it and the thread that takes its answers. Writing is a
    thread's, so that neither the event loop nor the thread that settles a job ever waits on a full pipe,
    and messages queued while it wrote go as one."""

    def __init__(self, owner: Pollers, index: int, matcher: Matcher, policy: FetchPolicy, level: str | None) -> None:
        self.owner, self.index = owner, index
        self.load = 0
        """Jobs sent and not answered (the owner's `_lock`)."""
        self.taken = 0
        """Jobs sent since the pool began."""
        self._args = (matcher, policy, level)
        self._lock = threading.Lock()
        self._process: Any = None
        self._outbox: queue.SimpleQueue[Any] | None = None
        self._turn: list[tuple[str, int, Any]] = []

    def _start(self) -> queue.SimpleQueue[Any]:
        self._process, mine = _PRESTARTED.pop() if _PRESTARTED else _spawn()
        outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        outbox.put(self._args)  # first, before any job
        self._outbox = outbox
        name = f"monitor-poller-{self.index}"
        threading.Thread(target=self._write, args=(mine, outbox), name=f"{name}-out", daemon=True).start()
        threading.Thread(target=self._read, args=(mine, outbox, self._process), name=name, daemon=True).start()
        return outbox

    def start(self) -> None:
        with self._lock:
            if self._outbox is None:
                self._start()

    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def put(self, message: tuple[str, int, Any] | None, loop: asyncio.AbstractEventLoop | None = None) -> object:
        """Queue a message (None: finish the jobs in flight and exit); a job starts the process if needed.
        Returns the queue it went to, which names the process. With `loop`, the messages of one turn of that
        loop go to the writing thread together: one wake-up of it, and one message, per turn."""
        with self._lock:
            outbox = self._outbox
            if outbox is None:
                if message is None:
                    return None
                outbox = self._start()
            if message is None:
                self._outbox = None  # the next job starts a new process
                if self._turn:  # this turn's jobs first: after None the poller takes none
                    outbox.put(self._turn)
                    self._turn = []
                outbox.put(None)
            elif loop is None or not _running_in(loop):  # a release from an answer: no loop turn to wait for
                outbox.put([message])
            else:
                if not self._turn:
                    loop.call_soon_threadsafe(self._end_turn, outbox)
                self._turn.append(message)
            return outbox

    def _end_turn(self, outbox: queue.SimpleQueue[Any]) -> None:
        with self._lock:
            turn, self._turn = self._turn, []
        if turn:
            outbox.put(turn)

    def _write(self, connection: Connection, outbox: queue.SimpleQueue[Any]) -> None:
        message = outbox.get()  # the matcher, policy and log level
        while True:
            try:
                connection.send(message)
            except (OSError, EOFError):
                return  # the poller is gone: `_read` sees it and fails its jobs
            message = outbox.get()
            if message is _CLOSED:
                return
            if message is None:  # retired: the keys its jobs in flight ask for still go
                continue
            batch = list(message)
            while True:  # everything queued meanwhile, in one message
                try:
                    more = outbox.get_nowait()
                except queue.Empty:
                    break
                if more is None or more is _CLOSED:
                    outbox.put(more)  # after this batch
                    break
                batch.extend(more)
            message = batch

    def _read(self, connection: Connection, outbox: queue.SimpleQueue[Any], process: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                messages = connection.recv()
            except (OSError, EOFError):
                break
            self.owner._answer(self, messages)
        with self._lock:
            if self._outbox is outbox:
                self._outbox = None  # the next job starts a new process
        outbox.put(_CLOSED)  # the writer stops too
        connection.close()
        self.owner._orphaned(self, outbox, "the poller process stopped before answering")
        _reap(process)

    def stop(self) -> None:
        with self._lock:
            outbox, self._outbox = self._outbox, None
            self._turn = []
        if outbox is not None:
            outbox.put(None)
        if self._process is not None:
            _reap(self._process)


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_PRESTARTED: list[tuple[subprocess.Popen[bytes], Connection]] = []


def prestart(count: int) -> None:
    """Start `count` poller processes now, for the first `Pollers` to take: they import what they need while
    this process reads the config and opens the database, on the other cores."""
    for _ in range(count - len(_PRESTARTED)):
        _PRESTARTED.append(_spawn())


def _spawn() -> tuple[subprocess.Popen[bytes], Connection]:
    # A new interpreter that imports this module only. Not a fork: the service runs threads, which a fork
    # would copy mid-flight. Not multiprocessing's forkserver either: it keeps two more processes resident
    # (the server and its resource tracker, ~27 MB) and re-imports the program's main module.
    mine, theirs = Pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", "from monitor.pollers import main; main()", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_child_environment(),
            process_group=0,  # out of the terminal's group: Ctrl-C is the service's, which stops its pollers
        )  # fmt: skip
    finally:
        theirs.close()
    return process, mine


_CLOSED = object()
"""Put by the reading thread when its process has gone: the writing thread stops."""


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
    # What reading a feed needs, imported before the matcher comes: a poller started early (`prestart`)
    # imports while the service is still starting.
    import monitor.fetch
    import monitor.pipeline.normalize
    import monitor.pipeline.parse  # noqa: F401

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
    inbox: asyncio.Queue[list[tuple[str, int, Any]] | Literal["gone"] | None] = asyncio.Queue()
    outbox: list[tuple[str, int, Any]] = []
    asked: dict[int, asyncio.Future[Collection[str]]] = {}

    def receive() -> None:  # a thread, so the pipe is drained even while the loop is busy reading a body
        while True:
            try:
                message = connection.recv()
            except (OSError, EOFError):  # the service died: nobody waits for the polls in flight
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
            outcome = _lost(job.task, f"internal error: {type(error).__name__}")
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
