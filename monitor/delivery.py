"""Delivery: lease due deliveries, render each per its target's format, one Apprise call per target, record
how it went. The outbox's rows were written with their alerts (`store.polls`); this side only sends them.

    deliver(): lease due deliveries → per (channel, target): digest | backlog summary | one message each
               (the hourly cap folds the rest) → send → mark sent (a group at a time) | retry | dead
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor import notify
from monitor.batching import GroupCommit
from monitor.config import ChannelSpec
from monitor.config.loader import CONSOLE
from monitor.pipeline.decide import retry_delivery
from monitor.pipeline.render import Format, Message, render_alert, render_digest, render_test
from monitor.records import DeliveryTask
from monitor.store.repo import Store

if TYPE_CHECKING:
    from monitor.metrics import Metrics

log = logging.getLogger("monitor.service")  # the lines operators grep for kept their logger when this moved

DELIVERY_LEASE = timedelta(minutes=2)
SEND_TIMEOUT = 15.0
"""Seconds a send may take, whatever the target does (RELIABILITY.md case 32): the alert is retried later."""
MAX_SEND_ATTEMPTS = 12
BACKLOG_SUMMARY = 10
"""More deliveries than this that waited for a failing target go out as one summary when it answers."""
CLAIM_BATCH = 5000
MAX_UNMARKED = 20


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.failed} failed, {self.cancelled} cancelled"


class Deliverer:
    """The sending half of a Service: the same store, database thread, clock and metrics; `channels` is
    set by the service on each reload."""

    def __init__(
        self,
        store: Store,
        in_db: Callable[..., Awaitable[Any]],
        now: Callable[[], datetime],
        rng: random.Random,
        console: Callable[[str], None],
        sender: Callable[[str, Message, str], notify.SendResult],
        metrics: Metrics | None,
    ) -> None:
        self.store, self._in_db, self.now, self.rng = store, in_db, now, rng
        self.console, self.sender, self.metrics = console, sender, metrics
        self.channels: dict[str, ChannelSpec] = {}
        self._send = ThreadPoolExecutor(8, thread_name_prefix="monitor-send")
        self._formats: dict[str, Format] = {}
        self._limits: dict[str, int | None] = {}
        self._gaps: dict[str, float] = {}
        self._last_sent: dict[str, float] = {}

    def close(self) -> None:
        self._send.shutdown(wait=False, cancel_futures=True)

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
        # A digest or summary interrupted mid-send goes out again as it was, under its key, before the rest.
        batches: dict[str, list[DeliveryTask]] = defaultdict(list)
        for task in tasks:
            if task.batch is not None:
                batches[task.batch].append(task)
        for batch in batches.values():
            heading = "monitor digest" if channel.mode == "digest" else "monitor: alerts that waited"
            await self._send_batch(channel, target, batch, zone, heading, report, marks)
        if batches:
            tasks = [t for t in tasks if t.batch is None]
            if not tasks:
                return
        if channel.mode == "digest":
            await self._send_batch(channel, target, tasks, zone, "monitor digest", report, marks)
            return
        # After delivery trouble, what waited goes out first, as one summary when there is much of it.
        backlog = [t for t in tasks if t.waited]
        if len(backlog) > BACKLOG_SUMMARY:
            fresh = [t for t in tasks if not t.waited]
            heading = "monitor: alerts that waited"
            if retry := await self._send_batch(channel, target, backlog, zone, heading, report, marks):
                await self._hold_target(fresh, retry)
                return
            tasks = fresh
        single, folded = await self._rate_limit(channel, key, tasks)
        if channel.id != CONSOLE and (gap := self._gap(channel, target)) > 0:
            # Paced sends must end well within the claim's lease: the rest wait for the next round.
            most = max(1, int(DELIVERY_LEASE.total_seconds() / 2 / gap))
            if len(single) > most:
                later = [t.delivery_id for t in single[most:]]
                await self._in_db(self.store.delivery_held, later, "held: paced to the service's rate", self.now())
                single = single[:most]
        failing = 0
        for position, task in enumerate(single):
            fmt = self._format(channel, target)
            message = render_alert(task.alert, fmt, zone, self._limit(channel, target))
            retry = await self._send_batch(channel, target, [task], zone, "", report, marks, message)
            failing = failing + 1 if retry else 0
            if retry and failing == 2:
                # Two in a row: the target is failing (one alone may be that message's trouble). The rest
                # wait with them, costing no attempt, and go out in order once it answers.
                await self._hold_target(single[position + 1 :] + folded, retry)
                return
        if folded:
            await self._send_batch(channel, target, folded, zone, "monitor: more alerts this hour", report, marks)

    async def _hold_target(self, rest: list[DeliveryTask], retry: datetime) -> None:
        """The target is failing: its other due deliveries wait until `retry`, their attempts given back, so
        a dead target costs an attempt or two per retry, not one per alert, and the backlog drains in the
        order it came once the target answers."""
        if rest:
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

    def _gap(self, channel: ChannelSpec, target: int) -> float:
        url = channel.targets[target]
        if url not in self._gaps:
            self._gaps[url] = notify.min_gap(url)
        return self._gaps[url]

    def _limit(self, channel: ChannelSpec, target: int) -> int | None:
        """The most body characters the target's service takes (a longer message would be refused)."""
        if channel.id == CONSOLE:
            return None
        url = channel.targets[target]
        if url not in self._limits:
            self._limits[url] = notify.body_limit(url)
        return self._limits[url]

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
                          message: Message | None = None) -> datetime | None:  # fmt: skip
        """Send one message for `tasks` and record how it went; when it failed and will be retried, when."""
        fmt = self._format(channel, target)
        if message is None:
            message = render_digest([t.alert for t in tasks], fmt, zone, heading, self._limit(channel, target))
        if len(tasks) == 1:
            key = tasks[0].idempotency_key
        else:  # a digest or a summary: the same deliveries make the same key, after a restart too
            ids = ",".join(str(t.delivery_id) for t in sorted(tasks, key=lambda t: t.delivery_id))
            key = f"monitor-batch-{hashlib.sha256(ids.encode()).hexdigest()[:20]}"
        if len(tasks) > 1:
            await self._in_db(self.store.sending_batch, [t.delivery_id for t in tasks], key)
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
            return None
        report.failed += len(tasks)
        # One retry time for the whole message: its deliveries stay together, in order.
        attempts = max(t.attempts for t in tasks)
        retry = retry_delivery(attempts, now, self.rng, MAX_SEND_ATTEMPTS) if result.retry else None
        for task in tasks:
            await self._in_db(self.store.delivery_failed, task.delivery_id, result.error or "failed", retry, "dead")
            self._count(channel.id, "failed" if retry is not None else "dead", 1)
        log.warning("send failed (%s): %s", "will retry" if result.retry else "gave up", result.error, extra=extra)
        return retry

    def _count(self, channel: str, outcome: str, count: int) -> None:
        if self.metrics is not None:
            self.metrics.delivered(channel, outcome, count)

    async def _send_one(self, channel: ChannelSpec, target: int, message: Message, key: str) -> notify.SendResult:
        if channel.id == CONSOLE:
            self.console(f"{message.title}\n{message.body}\n")
            return notify.SendResult(True)
        url = channel.targets[target]
        # Paced to what the service takes: a burst to a Telegram chat goes out a second apart, not refused.
        wait = self._last_sent.get(url, -math.inf) + self._gap(channel, target) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_sent[url] = time.monotonic()
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

    def __init__(self, deliverer: Deliverer) -> None:
        self._commit = GroupCommit(deliverer._mark_sent, most=MAX_UNMARKED)
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
