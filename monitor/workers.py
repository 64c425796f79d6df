"""The reading processes: pre-scan, parse, normalise and match fetched bodies on every core, off the event
loop.

feedparser holds the GIL, so threads would not help. Each worker gets the compiled matcher once, when it
starts, and returns items already matched: the service's own process is left with the network and the
database. A new watch list means a new pool (see `Readers`).

This module is what a worker imports; it stays clear of the database, Apprise and aiohttp, so that a worker
costs the parser's memory and little else.
"""

from __future__ import annotations

import signal
from collections.abc import Collection
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from multiprocessing import get_context

from monitor.pipeline.decide import ReadFeed, read_body
from monitor.pipeline.match import Matcher
from monitor.records import FeedTask, FetchResult, PollOutcome

_matcher: Matcher | None = None


def read_and_match(
    matcher: Matcher, task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None
) -> ReadFeed | PollOutcome:
    """`read_body`, with each item's rule matches."""
    read = read_body(task, result, now, known)
    if isinstance(read, ReadFeed):
        return replace(read, matches=tuple(matcher.match(item.document()) for item in read.items))
    return read


def _start(matcher: Matcher) -> None:
    """A worker leaves Ctrl-C to the service: the terminal signals the whole process group, and the service
    stops its workers itself once in-flight polls are done."""
    global _matcher
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _matcher = matcher


def _read(task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None) -> ReadFeed | PollOutcome:
    assert _matcher is not None, "a reader process runs _start first"
    return read_and_match(_matcher, task, result, now, known)


class Readers:
    """A pool of `size` reading processes, all with one matcher."""

    def __init__(self, size: int, matcher: Matcher) -> None:
        # forkserver, not fork: the service runs threads, which a fork would copy mid-flight.
        context = get_context("forkserver")
        self._pool = ProcessPoolExecutor(size, mp_context=context, initializer=_start, initargs=(matcher,))

    def submit(
        self, task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None
    ) -> Future[ReadFeed | PollOutcome]:
        return self._pool.submit(_read, task, result, now, known)

    def retire(self) -> None:
        """Stop taking work; reads in flight finish, then the processes exit."""
        self._pool.shutdown(wait=False)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
