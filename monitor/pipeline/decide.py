"""The poller's decisions, as pure functions: what a fetched body means, which items are new and must be
alerted, and when to try again. The orchestrator (`service`) acts on them and decides nothing itself.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.records import FeedTask, FetchResult, Item, NewItem, PollOutcome, RuleMatch

MAX_ITEMS_PER_POLL = 500
"""A feed with more entries is cut to its first 500: bounded memory, and no storm from a feed dump."""
MAX_BACKOFF = timedelta(hours=6)
MAX_RETRY_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class ReadFeed:
    """A body parsed and normalised: the feed's items, deduplicated by key, in feed order."""

    title: str | None
    items: tuple[Item, ...]
    body_hash: str
    warnings: tuple[str, ...]
    matches: tuple[tuple[RuleMatch, ...], ...] = ()
    """Each item's rule matches, in item order, once the watch list has been run over them."""
    entries: int = 0
    """How many entries the body holds, known or not (the storm brake compares the new ones with it)."""


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def triage(task: FeedTask, result: FetchResult) -> PollOutcome | str:
    """The outcome to record when the response needs no reading (304, failure, a body identical to the
    last one), else the new body's digest."""
    base = {"feed_id": task.feed_id, "http_status": result.http_status, "retry_after": result.retry_after}
    if result.status == "not_modified":
        return PollOutcome(status="not_modified", etag=result.etag or task.etag,
                           last_modified=result.last_modified or task.last_modified,
                           permanent_url=result.permanent_url, **base)  # type: ignore[arg-type]  # fmt: skip
    if result.status in ("failed", "gone"):
        return PollOutcome(status=result.status, error=result.error, **base)  # type: ignore[arg-type]
    digest = body_digest(result.body)
    if digest == task.body_hash:
        return PollOutcome(status="unchanged", etag=result.etag, last_modified=result.last_modified,
                           body_hash=digest, permanent_url=result.permanent_url, **base)  # type: ignore[arg-type]  # fmt: skip
    return digest


def nothing_new(task: FeedTask, result: FetchResult, digest: str) -> PollOutcome:
    """A changed body whose entries are all known (the pre-scan said so): recorded without parsing."""
    return PollOutcome(
        feed_id=task.feed_id,
        status="ok",
        http_status=result.http_status,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=digest,
        permanent_url=result.permanent_url,
    )


def read_body(
    task: FeedTask, result: FetchResult, now: datetime, known: Collection[str] | None = None
) -> ReadFeed | PollOutcome:
    """What a fetch result means for this feed: items to consider, or the outcome to record as it is.

    With `known` (keys the feed has stored), a pre-scan finds the entries not among them, and feedparser
    reads only those, cut out of the real body; a body with none is not parsed at all."""
    digest = triage(task, result)
    if isinstance(digest, PollOutcome):
        return digest
    # Imported on use, after the triage: the service's process never reads a body when pollers do, and a
    # poller whose feeds all answer 304 never loads them (feedparser, courlan and their imports: ~150 ms
    # and ~15 MB).
    from monitor.pipeline.normalize import normalize
    from monitor.pipeline.parse import ParseFailure, parse_feed
    from monitor.pipeline.prescan import first_entries, only, scan

    body = result.body
    entries: int | None = None
    capped = first_entries(body, MAX_ITEMS_PER_POLL)
    if capped is not None:
        body, entries = capped
    if known is not None and (found := scan(body)) is not None:
        fresh = [position for position, key in enumerate(found.keys) if key not in known]
        if not fresh:
            return nothing_new(task, result, digest)
        body = only(body, found, fresh)
        entries = entries or len(found.keys)
    parsed = parse_feed(body, result.headers, result.url)
    if isinstance(parsed, ParseFailure):
        return PollOutcome(feed_id=task.feed_id, status="failed", error=parsed.reason, http_status=result.http_status)
    warnings = list(parsed.warnings)
    if capped is not None:
        warnings.append(f"{capped[1]} entries: only the first {MAX_ITEMS_PER_POLL} were read")
    items: dict[str, Item] = {}
    for entry in parsed.entries[:MAX_ITEMS_PER_POLL]:
        item = normalize(entry, result.url, now)
        if item is None:
            warnings.append("skipped an entry with no id, link, title or text")
        elif item.key in items:
            warnings.append(f"two entries share the id {item.key[:80]!r}: kept the first")
        else:
            items[item.key] = item
    if capped is None and len(parsed.entries) > MAX_ITEMS_PER_POLL:
        warnings.append(f"{len(parsed.entries)} entries: only the first {MAX_ITEMS_PER_POLL} were read")
    total = len(parsed.entries) if entries is None else entries
    return ReadFeed(parsed.title, tuple(items.values()), digest, tuple(warnings), entries=total)


def new_items(
    items: Iterable[Item],
    known: Collection[str],
    match: Callable[[Item], Sequence[RuleMatch]],
    first_poll: bool,
    backfill: timedelta,
    now: datetime,
) -> tuple[NewItem, ...]:
    """Items whose key the feed has not delivered before, matched. On any poll, one first seen more than the
    backfill window after its publication is kept silent (stored, not alerted): adding a feed, or a feed
    dumping its archive, never floods the desk. An undated entry cannot be placed: on a new feed's first poll
    it is part of the baseline (silent), after that it is news (alerted)."""
    fresh = []
    for item in items:
        if item.key in known:
            continue
        silent = first_poll if item.published is None else item.published < now - backfill
        fresh.append(NewItem(item, tuple(match(item)), silent))
    return tuple(fresh)


def next_poll(
    outcome: PollOutcome, interval: timedelta, error_count: int, now: datetime, rng: random.Random
) -> datetime | None:
    """When to poll again: the interval (up to 10% sooner, jittered) after success; exponential backoff with jitter,
    capped at six hours, after failures, and never sooner than Retry-After; never for a feed that is gone."""
    if outcome.status == "gone":
        return None
    if outcome.status != "failed":
        # Jitter only shortens: an item published just after a poll is fetched within one interval.
        return now + interval * rng.uniform(0.9, 1.0)
    failures = error_count + 1
    growth: float = 2.0 ** min(failures - 1, 20)
    delay = min(interval * growth * rng.uniform(0.8, 1.2), MAX_BACKOFF)
    if outcome.retry_after is not None:
        asked = outcome.retry_after if math.isfinite(outcome.retry_after) else MAX_RETRY_AFTER.total_seconds()
        delay = max(delay, timedelta(seconds=min(max(asked, 0.0), MAX_RETRY_AFTER.total_seconds())))
    return now + max(delay, interval)


def retry_delivery(attempts: int, now: datetime, rng: random.Random, max_attempts: int) -> datetime | None:
    """When to retry a failed send: 30 s doubling to an hour, jittered; None once attempts run out."""
    if attempts >= max_attempts:
        return None
    growth: float = 2.0 ** min(max(attempts - 1, 0), 20)
    return now + min(timedelta(seconds=30) * growth * rng.uniform(0.8, 1.2), timedelta(hours=1))
