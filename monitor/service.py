"""The service core under the CLI, the scheduler and the web app. None of them holds logic the others need.

    poll():    sync feeds.toml → lease due feeds → fetch ──► read_body (parse, normalise) ──► known keys?
               ──► match new items ──► record_poll (items, stories, matches, alert, deliveries: one commit)
    deliver(): lease due deliveries → render per channel format → one Apprise call per target → record

Decisions are made by pure functions (`pipeline.decide`, `pipeline.render`); this module only wires them
to the database, the network and the clock, all of which are passed in.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import random
import socket
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from monitor import notify
from monitor.batching import Batched, GroupCommit
from monitor.config import ChannelSpec, Config, FeedsConfig
from monitor.config.loader import CONSOLE
from monitor.pipeline.decide import MAX_ITEMS_PER_POLL, ReadFeed, next_poll, retry_delivery
from monitor.pipeline.render import Format, Message, render_alert, render_digest, render_test
from monitor.policy import READ_ALLOWANCE, FetchPolicy, mask_url
from monitor.poller import FetchLike, Job, lost_poll, poll_feed, read_and_match
from monitor.pollers import Pollers
from monitor.records import DeliveryTask, FeedTask, FetchResult, PollOutcome, RuleMatch
from monitor.scheduler import next_fire
from monitor.store import watchlists
from monitor.store.alerting import Route
from monitor.store.polls import Poll, StoredPoll
from monitor.store.repo import Store
from monitor.watch import build_matcher

if TYPE_CHECKING:
    from monitor.clock import DatabaseClock
    from monitor.metrics import Metrics

log = logging.getLogger("monitor.service")
T = TypeVar("T")

FEED_LEASE = timedelta(minutes=5)
DELIVERY_LEASE = timedelta(minutes=2)
SEND_TIMEOUT = 15.0
"""Seconds a send may take, whatever the target does (RELIABILITY.md case 32): the alert is retried later."""
MAX_SEND_ATTEMPTS = 12
BACKLOG_SUMMARY = 10
"""More deliveries than this that waited for a failing target go out as one summary when it answers."""
CLAIM_BATCH = 5000
IN_FLIGHT = 300
MAX_UNMARKED = 20
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


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.failed} failed, {self.cancelled} cancelled"


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
        self._send = ThreadPoolExecutor(8, thread_name_prefix="monitor-send")
        self._workers = workers
        self._pollers: Pollers | None = None
        self._formats: dict[str, Format] = {}
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
        self._intervals = {spec.key: spec.interval for spec in config.feeds.feeds}
        # The database keeps a feed's URL without its secrets; the poll fetches the URL the config expanded.
        self._fetch_urls = {spec.key: spec.url for spec in config.feeds.feeds if spec.stored}
        self._synced = False

    def close(self) -> None:
        if self._pollers is not None:
            self._pollers.close()
        self._db.shutdown(wait=True)
        self._send.shutdown(wait=False, cancel_futures=True)

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

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

    # --- delivery ------------------------------------------------------------------------------------

    async def deliver(self) -> DeliveryReport:
        """Send every due delivery: per channel target, one message each, or one digest."""
        report = DeliveryReport()
        marks = _Marks(self)
        try:
            while True:
                tasks = await self._in_db(self.store.claim_deliveries, self.now(), CLAIM_BATCH, DELIVERY_LEASE)
                if not tasks:
                    return report
                groups: dict[tuple[str, str], list[DeliveryTask]] = defaultdict(list)
                for task in tasks:
                    groups[(task.channel, task.target)].append(task)
                await asyncio.gather(*(self._deliver_group(channel, target, group, report, marks)
                                       for (channel, target), group in groups.items()))  # fmt: skip
        finally:
            await marks.close()

    async def _mark_sent(self, sends: list[tuple[list[int], datetime]]) -> list[None]:
        """One UPDATE for a group of sends, stamped with the last one's time."""
        await self._in_db(self.store.delivery_done, [i for ids, _ in sends for i in ids], sends[-1][1])
        return [None] * len(sends)

    async def _deliver_group(
        self, channel_id: str, key: str, tasks: list[DeliveryTask], report: DeliveryReport, marks: _Marks
    ) -> None:
        channel = self.channels.get(channel_id)
        # Targets are found by key, not position: a URL removed from the list takes its pending deliveries
        # with it (cancelled, said in the log) and never hands them to the URL that moved into its place.
        target = 0 if channel is not None and channel.id == CONSOLE else channel.target(key) if channel else None
        if channel is None or target is None:
            reason = f"channel {channel_id!r} target {key} is no longer in channels.toml"
            log.warning("delivery cancelled: %s", reason, extra={"channel": channel_id, "status": "cancelled"})
            for task in tasks:
                await self._in_db(self.store.delivery_failed, task.delivery_id, reason, None, "cancelled")
            report.cancelled += len(tasks)
            self._count(channel_id, "cancelled", len(tasks))
            return
        zone = ZoneInfo(channel.timezone)
        if channel.mode == "digest":
            await self._send_batch(channel, target, tasks, zone, "monitor digest", report, marks)
            return
        # After delivery trouble, what waited goes out first, as one summary when there is much of it.
        backlog = [t for t in tasks if t.waited]
        if len(backlog) > BACKLOG_SUMMARY:
            fresh = [t for t in tasks if not t.waited]
            heading = "monitor: alerts that waited"
            if await self._send_batch(channel, target, backlog, zone, heading, report, marks):
                await self._hold_target(fresh, backlog[0])
                return
            tasks = fresh
        single, folded = await self._rate_limit(channel, key, tasks)
        failing = 0
        for position, task in enumerate(single):
            fmt = self._format(channel, target)
            message = render_alert(task.alert, fmt, zone)
            failed = await self._send_batch(channel, target, [task], zone, "", report, marks, message)
            failing = failing + 1 if failed else 0
            if failing == 2:
                # Two in a row: the target is failing (one alone may be that message's trouble). The rest
                # wait with them, costing no attempt, and go out in order once it answers.
                await self._hold_target(single[position + 1 :] + folded, task)
                return
        if folded:
            await self._send_batch(channel, target, folded, zone, "monitor: more alerts this hour", report, marks)

    async def _hold_target(self, rest: list[DeliveryTask], failed: DeliveryTask) -> None:
        """The target is failing: its other due deliveries wait until the failed one's retry, their attempts
        given back, so a dead target costs an attempt or two per retry, not one per alert, and the backlog
        drains in the order it came once the target answers."""
        retry = await self._in_db(self.store.next_try, failed.delivery_id)
        if retry is not None and rest:
            ids = [t.delivery_id for t in rest]
            await self._in_db(self.store.delivery_held, ids, "held: the target is failing", retry)

    async def _rate_limit(
        self, channel: ChannelSpec, key: str, tasks: list[DeliveryTask]
    ) -> tuple[list[DeliveryTask], list[DeliveryTask]]:
        """Split due alerts into those sent one by one and those folded into one summary (max_per_hour)."""
        if channel.max_per_hour is None:
            return tasks, []
        now = self.now()
        sent = await self._in_db(self.store.sent_since, channel.id, key, now - timedelta(hours=1))
        room = channel.max_per_hour - sent
        if len(tasks) <= room:
            return tasks, []
        if room <= 0:
            # Held until the hour frees a slot; then they go out folded into one summary.
            held = [task.delivery_id for task in tasks]
            await self._in_db(self.store.delivery_held, held, "held: max_per_hour reached", now + timedelta(minutes=5))
            self._count(channel.id, "held", len(held))
            return [], []
        return tasks[: room - 1], tasks[room - 1 :]

    def _format(self, channel: ChannelSpec, target: int) -> Format:
        if channel.id == CONSOLE:
            return "text"
        url = channel.targets[target]
        if url not in self._formats:
            value = notify.message_format(url)
            self._formats[url] = value if value in ("markdown", "html") else "text"  # type: ignore[assignment]
        return self._formats[url]

    async def _send_batch(self, channel: ChannelSpec, target: int, tasks: list[DeliveryTask], zone: ZoneInfo,
                          heading: str, report: DeliveryReport, marks: _Marks,
                          message: Message | None = None) -> bool:  # fmt: skip
        """Send one message for `tasks` and record how it went; True when it failed and will be retried."""
        fmt = self._format(channel, target)
        if message is None:
            message = render_digest([t.alert for t in tasks], fmt, zone, heading)
        if len(tasks) == 1:
            key = tasks[0].idempotency_key
        else:  # a digest or a summary: the same deliveries make the same key, after a restart too
            ids = ",".join(str(t.delivery_id) for t in sorted(tasks, key=lambda t: t.delivery_id))
            key = f"monitor-batch-{hashlib.sha256(ids.encode()).hexdigest()[:20]}"
        if any(t.interrupted for t in tasks):
            log.warning("resending what an interrupted send may have delivered (same idempotency key %s)", key,
                        extra={"channel": channel.id, "status": "resend"})  # fmt: skip
        result = await self._send_one(channel, target, message, key)
        now = self.now()
        extra = {"channel": channel.id, "status": "sent" if result.ok else "failed"}
        if result.ok:
            await marks.sent([t.delivery_id for t in tasks], now)
            report.sent += len(tasks)
            if self.metrics is not None:
                self.metrics.delivered(channel.id, "sent", len(tasks), [t.alert for t in tasks], now)
            log.info(
                "sent %d alert(s) to %s",
                len(tasks),
                channel.masked[target] if channel.masked else channel.id,
                extra=extra,
            )
            return False
        report.failed += len(tasks)
        # One retry time for the whole message: its deliveries stay together, in order.
        attempts = max(t.attempts for t in tasks)
        retry = retry_delivery(attempts, now, self.rng, MAX_SEND_ATTEMPTS) if result.retry else None
        for task in tasks:
            await self._in_db(self.store.delivery_failed, task.delivery_id, result.error or "failed", retry, "dead")
            self._count(channel.id, "failed" if retry is not None else "dead", 1)
        log.warning("send failed (%s): %s", "will retry" if result.retry else "gave up", result.error, extra=extra)
        return retry is not None

    def _count(self, channel: str, outcome: str, count: int) -> None:
        if self.metrics is not None:
            self.metrics.delivered(channel, outcome, count)

    async def _send_one(self, channel: ChannelSpec, target: int, message: Message, key: str) -> notify.SendResult:
        if channel.id == CONSOLE:
            self.console(f"{message.title}\n{message.body}\n")
            return notify.SendResult(True)
        url = channel.targets[target]
        call = asyncio.get_running_loop().run_in_executor(self._send, self.sender, url, message, key)
        try:
            return await asyncio.wait_for(call, SEND_TIMEOUT)
        except TimeoutError:
            return notify.SendResult(False, f"no answer within {SEND_TIMEOUT:.0f}s")

    async def notify_test(self, channel_id: str | None = None) -> list[tuple[str, str, notify.SendResult]]:
        """Send a test message through each channel target (or one channel's); nothing is stored."""
        results = []
        for channel in self.channels.values():
            if channel_id is not None and channel.id != channel_id:
                continue
            for target, key in enumerate(channel.keys or (CONSOLE,)):
                message = render_test(channel.id, self._format(channel, target))
                result = await self._send_one(channel, target, message, f"monitor-test-{channel.id}-{key}")
                results.append((channel.id, channel.masked[target] if channel.targets else CONSOLE, result))
        return results


class _Marks:
    """Sent deliveries, marked in the database a group at a time: one UPDATE for the alerts sent while the
    previous one ran, so a burst of sends is not paced by a transaction each. At most MAX_UNMARKED sends
    wait for their mark: all that a crash could send twice."""

    def __init__(self, service: Service) -> None:
        self._commit = GroupCommit(service._mark_sent, most=MAX_UNMARKED)
        self._marks: list[asyncio.Future[None]] = []

    async def sent(self, delivery_ids: list[int], now: datetime) -> None:
        await self._commit.room()
        self._marks.append(self._commit.add((delivery_ids, now)))

    async def close(self) -> None:
        """Returns once every sent delivery is marked; raises if a mark failed."""
        await self._commit.close()
        failed = [error for error in await asyncio.gather(*self._marks, return_exceptions=True) if error]
        if failed:
            raise failed[0]


def _feed_label(task: FeedTask) -> str:
    """How logs and reports name a feed: its name, else its URL with any token or password masked."""
    return task.name or mask_url(task.url)
