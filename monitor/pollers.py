"""A pool of poller processes (`poller.main`) that share the work of polling, one per core.

Fetching and reading use every core while the service's process keeps the database and the delivery.
Whichever poller has the fewest jobs takes the next; the per-host request limit is kept here, across
them, and the limit on requests in flight is shared out among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from itertools import count
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.pipeline.match import Matcher
from monitor.policy import FetchPolicy
from monitor.poller import Job, Known, lost_poll
from monitor.records import PollOutcome

log = logging.getLogger("monitor.pollers")

WATCH_EVERY = 5.0
"""Seconds between the watchdog's looks at a job in flight."""


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
        waiting = _Waiting(loop, future, job, host)
        with self._lock:
            number = next(self._ids)
            self._waiting[number] = waiting
            if self._hosts.get(host, 0) < self.policy.per_host:
                self._dispatch(number)
            else:
                self._queued.setdefault(host, deque()).append(number)
        # The watchdog: a poller holding jobs that has said nothing for longer than one poll may take (a parse
        # that never ends, a stopped process) is killed and replaced; its jobs end as failed polls, and every
        # other feed keeps polling. Silence, not a job's age: a poller with a thousand jobs works through them
        # a few dozen at a time, answering as it goes.
        deadline = self.policy.deadline
        while not future.done():
            await asyncio.wait([future], timeout=WATCH_EVERY)
            shard = waiting.shard
            if not future.done() and shard is not None and time.monotonic() - shard.heard > deadline:
                shard.kill(f"silent for over {deadline:.0f}s with jobs in hand: stopped and replaced (watchdog)")
        return future.result()

    def _dispatch(self, number: int) -> None:
        """Send a job to the poller with the fewest jobs (holding `_lock`). `hold`: its host is at its limit,
        so the poller says at once when the request is over, before reading the body; otherwise its answer
        says so (one message fewer)."""
        waiting = self._waiting[number]
        busy = self._hosts[waiting.host] = self._hosts.get(waiting.host, 0) + 1
        shard = min(self._shards, key=lambda s: s.load)
        if not shard.load:
            shard.heard = time.monotonic()  # idle until now: its silence counts from this job
        shard.load += 1
        shard.taken += 1
        waiting.shard = shard
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
        _settle([(waiting, lost_poll(waiting.job.task, why)) for _, waiting in lost])

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
    shard: _Shard | None = None
    """The poller it went to; None while it waits for its host."""


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
        self._killed: str | None = None
        """Why the watchdog killed the process, for the jobs it held."""
        self.heard = time.monotonic()
        """When the poller last said anything, or took its first job after being idle."""

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
            self.heard = time.monotonic()
            self.owner._answer(self, messages)
        with self._lock:
            if self._outbox is outbox:
                self._outbox = None  # the next job starts a new process
        outbox.put(_CLOSED)  # the writer stops too
        connection.close()
        why, self._killed = self._killed, None
        self.owner._orphaned(self, outbox, why or "the poller process stopped before answering")
        _reap(process)

    def kill(self, why: str) -> None:
        """Kill the process now (the watchdog): its reading thread fails its jobs with `why`."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None or self._killed is not None:
                return
            self._killed = why
        log.error("poller %d stuck: %s", process.pid, why)
        process.kill()

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
            [sys.executable, "-c", "from monitor.poller import main; main()", str(theirs.fileno())],
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
