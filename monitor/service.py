"""The service core under the CLI, the scheduler and the web app. None of them holds logic the others need.

    poll():    sync feeds.toml → lease due feeds → fetch ──► read_body (parse, normalise) ──► known keys?
               ──► match new items ──► record_poll (items, stories, matches, alert, deliveries: one commit)
    deliver(): `delivery.Deliverer`: lease due deliveries → render per target format → one Apprise call per
               target → record

Decisions are made by pure functions (`pipeline.decide`, `pipeline.render`); this module only wires them
to the database, the network and the clock, all of which are passed in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import OperationalError

from monitor import notify
from monitor.batching import Batched, GroupCommit
from monitor.config import Config, FeedsConfig
from monitor.config.loader import CONSOLE
from monitor.delivery import CLAIM_BATCH, Deliverer, DeliveryReport
from monitor.pipeline.decide import MAX_ITEMS_PER_POLL, ReadFeed, next_poll
from monitor.pipeline.render import Message
from monitor.policy import READ_ALLOWANCE, FetchPolicy, mask_url
from monitor.poller import FetchLike, Job, lost_poll, poll_feed, read_and_match
from monitor.pollers import Pollers
from monitor.records import FeedTask, FetchResult, PollOutcome, RuleMatch
from monitor.scheduler import next_fire
from monitor.store import watchlists
from monitor.store.alerting import Route
from monitor.store.engine import DatabaseError
from monitor.store.polls import Poll, StoredPoll
from monitor.store.repo import Store
from monitor.store.retention import Pruned, prune
from monitor.watch import build_matcher

if TYPE_CHECKING:
    from monitor.clock import DatabaseClock
    from monitor.metrics import Metrics

log = logging.getLogger("monitor.service")
T = TypeVar("T")

FEED_LEASE = timedelta(minutes=5)
PRUNE_CHUNKS = 50
IN_FLIGHT = 300
SEEN_PER_FEED = MAX_ITEMS_PER_POLL
"""Keys remembered per feed: as many as a poll reads, so a full feed is never read again for nothing."""
DEFAULT_INTERVAL = timedelta(minutes=10)


def fetch_policy(feeds: FeedsConfig) -> FetchPolicy:
    """The fetch limits of feeds.toml [fetch]."""
    return FetchPolicy(
        timeout=feeds.timeout,
        max_bytes=feeds.max_bytes,
        user_agent=feeds.user_agent,
        allow_private_addresses=feeds.allow_private_addresses,
    )


@dataclass
class CycleReport:
    """What one poll cycle did, for the summary line and the logs."""

    polled: int = 0
    not_modified: int = 0
    failed: int = 0
    new_items: int = 0
    alerts: int = 0
    deliveries: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(feed, error) for each feed that failed."""

    def add(self, task: FeedTask, outcome: PollOutcome, stored: StoredPoll) -> None:
        self.polled += 1
        self.not_modified += outcome.status in ("not_modified", "unchanged")
        if outcome.status in ("failed", "gone"):
            self.failed += 1
            self.failures.append((_feed_label(task), outcome.error or outcome.status))
        self.new_items += stored.new_items
        self.alerts += stored.alerts
        self.deliveries += stored.deliveries

    def __str__(self) -> str:
        return (
            f"{self.polled} feeds polled: {self.not_modified} not modified, {self.failed} failed; "
            f"{self.new_items} new items, {self.alerts} alerts, {self.deliveries} deliveries queued"
        )


class Service:
    """One monitor instance. Construct with its parts; call `poll` and `deliver` (the scheduler does)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        fetcher: FetchLike | None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        console: Callable[[str], None] = print,
        sender: Callable[[str, Message, str], notify.SendResult] = notify.send,
        owner: str | None = None,
        workers: int = 0,
        metrics: Metrics | None = None,
        clock: DatabaseClock | None = None,
    ) -> None:
        """`workers` > 0 polls (fetches, reads, matches) in that many processes, with the fetch policy of
        feeds.toml (`fetcher` may then be None); 0 polls with `fetcher` in this process, reading in a thread,
        which is enough for tests and small desks."""
        if workers == 0 and fetcher is None:
            raise ValueError("a Service polling in its own process (workers=0) needs a fetcher")
        self.store = store
        self.fetcher = fetcher
        # With several instances, time is the database's (`clock`): leases and due times compare across them.
        self.clock = clock
        self.now = clock if clock is not None else now
        self.rng = rng or random.Random()
        self.console = console
        self.sender = sender
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"  # who holds a lease
        self.metrics = metrics
        # SQLite takes one writer at a time: all database work goes through one thread.
        self._db = ThreadPoolExecutor(1, thread_name_prefix="monitor-db")
        self.delivery = Deliverer(store, self._in_db, self.now, self.rng, console, sender, metrics)
        self._workers = workers
        self._pollers: Pollers | None = None
        self._seen: dict[int, dict[str, None]] = {}
        self._key_reads: Batched[int, list[str]] = Batched(lambda feed_ids: self._in_db(self._read_keys, feed_ids))
        self.reload(config)

    def reload(self, config: Config) -> None:
        """Use a new, already validated config from the next poll on."""
        assert config.watchlist is not None and config.feeds is not None and config.channels is not None
        if config.watchlist != getattr(self, "watchlist", None):
            self.matcher = build_matcher(config.watchlist)
        policy = fetch_policy(config.feeds)
        if self._workers > 0 and (self._pollers is None or self.matcher is not self._pollers.matcher
                                  or policy != self._pollers.policy):  # fmt: skip
            if self._pollers is not None:
                self._pollers.retire()  # polls in flight finish as they began
            self._pollers = Pollers(self._workers, self.matcher, policy, self._known)
            if config.feeds.feeds:
                self._pollers.start()  # returns at once; nothing to poll, no pollers
        self.config = config
        self.watchlist = config.watchlist
        self.feeds = config.feeds
        self.channels = {c.id: c for c in config.channels}
        self.delivery.channels = self.channels
        self._intervals = {spec.key: spec.interval for spec in config.feeds.feeds}
        # The database keeps a feed's URL without its secrets; the poll fetches the URL the config expanded.
        self._fetch_urls = {spec.key: spec.url for spec in config.feeds.feeds if spec.stored}
        self._synced = False

    def close(self) -> None:
        if self._pollers is not None:
            self._pollers.close()
        self._db.shutdown(wait=True)
        self.delivery.close()

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)
        except OperationalError as e:
            # The database refused (a full disk, a lost server): one line for the operator; the transaction
            # rolled back whole, so nothing is sent without its record, and the next run tries again.
            raise DatabaseError(f"the database refused a write or read: {str(e.orig).splitlines()[0]}") from e

    # --- polling -------------------------------------------------------------------------------------

    async def poll(
        self, every: bool = False, on_feed: Callable[[FeedTask, PollOutcome], None] | None = None
    ) -> CycleReport:
        """Poll every due feed (every active feed with `every`) and store what is new."""
        report = CycleReport()
        if self.clock is not None and self.clock.due():
            await self._in_db(self.clock.sync)
        if not self._synced:  # once per config: the scheduler calls poll every second
            await self._in_db(self._sync, self.now())
            self._synced = True
        seen: set[int] = set()
        writer: GroupCommit[Poll, StoredPoll] = GroupCommit(self._record_polls)
        # Feeds in flight, from claim to stored: enough to keep every poller busy (150 left them idle between
        # answers). Bodies are bounded by each fetcher's connections; this bounds the outcomes (a first
        # poll's carry every item of the feed) waiting for the database.
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        try:
            while True:
                tasks = await self._in_db(
                    self.store.claim_due, self.now(), CLAIM_BATCH, FEED_LEASE, self.owner, every, seen
                )
                if self.metrics is not None and not seen and not every:
                    self.metrics.ticked(self._lag(tasks))
                if not tasks:
                    return report
                seen.update(t.feed_id for t in tasks)

                async def one(task: FeedTask) -> None:
                    async with in_flight:
                        outcome = await self._poll_feed(task)
                        interval = self._intervals.get(task.config_url, DEFAULT_INTERVAL)
                        due = next_poll(outcome, interval, task.error_count, self.now(), self.rng)
                        stored = await self._store(task, outcome, due, writer)
                    report.add(task, outcome, stored)
                    if self.metrics is not None:
                        self.metrics.polled(outcome)
                        self.metrics.stored(stored.new_items, stored.matched, stored.alerted)
                    if on_feed is not None:
                        on_feed(task, outcome)

                await asyncio.gather(*(one(task) for task in tasks))
        finally:
            await writer.close()

    def _lag(self, tasks: Sequence[FeedTask]) -> float | None:
        due = [task.due_at for task in tasks if task.due_at is not None]
        return (self.now() - min(due)).total_seconds() if due else None

    def _sync(self, now: datetime) -> None:
        """feeds.toml's feeds into the database, and the watch list as loaded (`monitor backtest`'s default)."""
        self.store.sync_feeds(self.feeds.feeds, now)
        if self.watchlist.text:
            watchlists.save(self.store.engine, self.watchlist.text, now, self.owner)

    async def _poll_feed(self, task: FeedTask) -> PollOutcome:
        seen = self._seen.get(task.feed_id)  # else the keys are read only if the body has changed
        if task.url in self._fetch_urls:
            task = replace(task, url=self._fetch_urls[task.url])
        job = Job(task, None if seen is None or task.first_poll else frozenset(seen), self.feeds.backfill)
        if self._pollers is not None:
            return await self._pollers.poll(job)
        assert self.fetcher is not None  # see __init__
        return await poll_feed(self.fetcher, job, self._read, self.now, known=lambda: self._known(task.feed_id))

    async def _store(
        self, task: FeedTask, outcome: PollOutcome, due: datetime | None, writer: GroupCommit[Poll, StoredPoll]
    ) -> StoredPoll:
        stored = await writer.add(Poll(outcome, due))
        # Committed now, by this instance or (on conflict) another. A first poll stored every entry the feed
        # has, so its keys are all there is to know.
        self._remember(task.feed_id, [new.item.key for new in outcome.new_items], start=task.first_poll)
        extra = {"feed": _feed_label(task), "status": outcome.status}
        if outcome.status in ("failed", "gone"):
            log.warning("poll failed: %s", outcome.error, extra=extra)
        elif stored.new_items:
            log.info("polled: %d new items, %d alerts", stored.new_items, stored.alerts, extra=extra)
        for warning in outcome.warnings:
            log.warning("feed warning: %s", warning, extra=extra)
        for notice in (stored.storm, stored.gap):
            if notice:
                log.warning("feed warning: %s", notice, extra=extra)
        if stored.gap and self.metrics is not None:
            self.metrics.gaps.inc()
        return stored

    async def _read(
        self, task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None
    ) -> ReadFeed | PollOutcome:
        # The watchdog, in process: the request has its own deadline; a read that never ends is left to its
        # thread and the poll fails (with pollers, a stuck poller process is killed instead).
        limit = READ_ALLOWANCE.total_seconds()
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(read_and_match, self.matcher, task, result, now, known), limit
            )
        except TimeoutError:
            why = f"reading the body took over {limit:.0f}s: abandoned (watchdog)"
            log.error("poll stuck: %s", why, extra={"feed": _feed_label(task), "status": "failed"})
            return lost_poll(task, why)

    async def _known(self, feed_id: int) -> frozenset[str]:
        """Keys the feed has stored, as far as this instance knows.

        The database is asked once per feed, at the first changed body since start, for the last keys
        stored (one query for every feed that asks in the same turn of the loop), and from then on memory
        answers, adding every key stored since. Memory only decides what is parsed: the database decides
        what is new (a stored key's insert does nothing), so a key another instance stored, or one memory
        let go and the feed brought back, costs a parse, never an alert."""
        seen = self._seen.get(feed_id)
        if seen is None:
            keys = await self._key_reads.read(feed_id)
            seen = self._seen.setdefault(feed_id, dict.fromkeys(keys))
        return frozenset(seen)

    def _read_keys(self, feed_ids: list[int]) -> list[list[str]]:
        found = self.store.recent_keys(feed_ids, SEEN_PER_FEED)
        return [found[feed_id] for feed_id in feed_ids]

    def _remember(self, feed_id: int, keys: Sequence[str], start: bool) -> None:
        seen = self._seen.setdefault(feed_id, {}) if start else self._seen.get(feed_id)
        if seen is None:
            return
        for key in keys:
            seen.pop(key, None)  # most recent last, so the oldest go first
            seen[key] = None
        while len(seen) > SEEN_PER_FEED:
            del seen[next(iter(seen))]

    def _route(self, matches: Sequence[RuleMatch]) -> list[Route]:
        """Channel targets an alert goes to: the union of its rules' `notify` lists (all channels if unset)."""
        wanted: set[str] = set()
        for match in matches:
            notify_ids = self.watchlist.notify.get(match.rule)
            wanted.update(self.channels if notify_ids is None else notify_ids)
        now = self.now()
        routes: list[Route] = []
        for channel in self.channels.values():
            if channel.id not in wanted:
                continue
            due = now if channel.mode == "instant" else next_fire(channel.schedule or "", channel.timezone, now)
            routes.extend((channel.id, key, due) for key in channel.keys or (CONSOLE,))
        return routes

    async def _record_polls(self, polls: list[Poll]) -> list[StoredPoll]:
        record = functools.partial(self.store.record_polls, policy=self.watchlist.stories)
        return await self._in_db(record, polls, self.now(), self._route)

    # --- retention -----------------------------------------------------------------------------------

    async def prune(self) -> Pruned:
        """Let go of what is older than `[defaults] retention`, a chunk at a time, up to `PRUNE_CHUNKS`
        chunks a run (the next run goes on)."""
        before = self.now() - self.feeds.retention
        alerts = items = 0
        for _ in range(PRUNE_CHUNKS):
            pruned = await self._in_db(prune, self.store.engine, before)
            alerts, items = alerts + pruned.alerts, items + pruned.items
            if not pruned:
                break
        if alerts or items:
            log.info("retention: removed %d alerts and the text of %d items older than %s", alerts, items,
                     before.strftime("%Y-%m-%d %H:%MZ"), extra={"status": "pruned"})  # fmt: skip
        return Pruned(alerts, items)

    # --- delivery ------------------------------------------------------------------------------------

    async def deliver(self) -> DeliveryReport:
        """Send every due delivery: per channel target, one message each, or one digest."""
        return await self.delivery.deliver()

    async def notify_test(self, channel_id: str | None = None) -> list[tuple[str, str, notify.SendResult]]:
        """Send a test message through each channel target (or one channel's); nothing is stored."""
        return await self.delivery.notify_test(channel_id)


def _feed_label(task: FeedTask) -> str:
    """How logs and reports name a feed: its name, else its URL with any token or password masked."""
    return task.name or mask_url(task.url)
