"""Repository: every read and write the service makes, each one transaction, records in and out.

Dedup rests on the database, not on memory, so it holds across restarts and instances: an entry is new
only if its (feed, key) insert goes through (ON CONFLICT DO NOTHING), a story has one alert (unique
story_id), and a delivery is claimed by one sender (a lease, taken with SKIP LOCKED on PostgreSQL and under
SQLite's single write lock otherwise).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, bindparam, func, or_, text, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from monitor.config import FeedSpec
from monitor.pipeline.stories import DEFAULT_POLICY, StoryPolicy
from monitor.policy import mask_url
from monitor.records import (
    PRIORITIES,
    AlertView,
    DeliveryTask,
    FeedTask,
    Hit,
    PollOutcome,
    Priority,
)
from monitor.store import polls as polls_module
from monitor.store.alerting import Router
from monitor.store.bulk import dialect_insert
from monitor.store.polls import Poll, StoredPoll
from monitor.store.tables import (
    DELIVERY,
    FEED,
    FEED_STATE,
    ITEM,
    AlertRow,
    DeliveryRow,
    FeedRow,
    FeedStateRow,
    ItemRow,
    MatchRow,
)

SENDING = "sending: "
"""How a delivery row says it is out in a batch message whose outcome is not recorded yet."""
DELIVERY_CLAIM_LOCK = 0x6D6F6E64
"""The advisory lock key (`pg_advisory_xact_lock`) delivery claims share: "mond"."""


@dataclass(frozen=True)
class FeedHealth:
    """A feed's state, for `monitor feeds` and the web app."""

    feed_id: int
    url: str
    name: str | None
    title: str | None
    active: bool
    status: str
    last_outcome: str | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    error_count: int
    item_count: int
    next_poll_at: datetime | None
    warning: str | None = None
    """The last warning for the operator that is not a failure (a storm of re-sent items), with its time."""
    gaps: int = 0
    """Polls that found every entry new (a possible gap)."""


@dataclass(frozen=True)
class DeliveryState:
    channel: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


class Store:
    """The database behind the service. Thread-safe: each method opens its own session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    def release_leases(self) -> None:
        """Drop every lease: for a single instance (SQLite) at start, after a crash left some behind."""
        with Session(self.engine) as session:
            session.execute(update(FeedStateRow).values(lease_until=None, lease_owner=None))
            session.execute(update(DeliveryRow).values(lease_until=None))
            session.commit()

    # --- feeds ---------------------------------------------------------------------------------------

    def sync_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        """Make the feed table follow feeds.toml: new feeds become due now; removed ones inactive, kept.

        Plain rows, not ORM objects (2,000 of those cost a quarter of a second at every start), and inserts
        that let a feed another instance has just inserted be (`ON CONFLICT DO NOTHING`): instances started
        together all sync the same feeds.toml."""
        wanted = {spec.key: spec for spec in specs}  # the URL as stored: no secret in it
        feed = FEED.c
        dialect = self.engine.dialect.name
        with self.engine.begin() as connection:
            rows = {url: (i, name, active) for i, url, name, active in
                    connection.execute(sa_select(feed.id, feed.config_url, feed.name, feed.active))}  # fmt: skip
            added = [url for url in wanted if url not in rows]
            for start in range(0, len(added), 500):
                chunk = added[start : start + 500]
                feeds = [{"config_url": u, "url": u, "name": wanted[u].name, "active": True, "created_at": now}
                         for u in chunk]  # fmt: skip
                connection.execute(
                    dialect_insert(dialect, FEED).on_conflict_do_nothing(index_elements=["config_url"]),
                    feeds,
                )
                found: Any = connection.execute(sa_select(feed.id).where(feed.config_url.in_(chunk)))
                states = [{"feed_id": i, "status": "new", "next_poll_at": now, "error_count": 0, "item_count": 0,
                           "permanent_hits": 0} for i in found.scalars()]  # fmt: skip
                connection.execute(
                    dialect_insert(dialect, FEED_STATE).on_conflict_do_nothing(index_elements=["feed_id"]),
                    states,
                )
            changed = [{"feed_id": i, "new_name": wanted[url].name} for url, (i, name, active) in rows.items()
                       if url in wanted and (name != wanted[url].name or not active)]  # fmt: skip
            if changed:
                connection.execute(
                    update(FEED).where(feed.id == bindparam("feed_id")).values(name=bindparam("new_name"), active=True),
                    changed,
                )
            removed = [i for url, (i, _, active) in rows.items() if url not in wanted and active]
            for start in range(0, len(removed), 500):
                connection.execute(update(FEED).where(feed.id.in_(removed[start : start + 500])).values(active=False))

    def database_time(self) -> datetime | None:
        """PostgreSQL's clock now (not its transaction's start); None on SQLite, whose clock is the system's."""
        if not self._postgres:
            return None
        with self.engine.connect() as connection:
            moment: object = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        assert isinstance(moment, datetime)
        return moment.astimezone(UTC)

    def claim_due(self, now: datetime, limit: int, lease: timedelta, owner: str, every: bool = False,
                  exclude: Collection[int] = ()) -> list[FeedTask]:  # fmt: skip
        """Lease up to `limit` active feeds whose poll is due (all of them with `every`), soonest first,
        leaving out `exclude` (feeds this cycle has polled already)."""
        feed, state = FEED.c, FEED_STATE.c
        query = (
            sa_select(feed.id, feed.config_url, feed.url, feed.name, feed.title, state.etag, state.last_modified,
                      state.body_hash, state.last_success_at, state.error_count, state.permanent_url,
                      state.permanent_hits, state.next_poll_at)
            .join_from(FEED, FEED_STATE, state.feed_id == feed.id)
            .where(feed.active, state.status != "gone")
            .where(or_(state.lease_until.is_(None), state.lease_until < now))
            .order_by(state.next_poll_at)
            .limit(limit)
        )  # fmt: skip
        if not every:
            query = query.where(state.next_poll_at <= now)
        if exclude:
            query = query.where(feed.id.not_in(list(exclude)))
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=FEED_STATE)
        # Plain rows and one UPDATE per chunk: a cycle claims thousands of feeds, and loading each as an ORM
        # object to change two columns cost more than polling a feed that answers 304.
        with self.engine.begin() as connection:
            rows = connection.execute(query).all()
            ids = [row.id for row in rows]
            for start in range(0, len(ids), 500):
                connection.execute(
                    update(FEED_STATE)
                    .where(state.feed_id.in_(ids[start : start + 500]))
                    .values(lease_until=now + lease, lease_owner=owner)
                )
        return [
            FeedTask(
                feed_id=row.id,
                config_url=row.config_url,
                url=row.url,
                name=row.name or row.title,
                etag=row.etag,
                last_modified=row.last_modified,
                body_hash=row.body_hash,
                first_poll=row.last_success_at is None,
                error_count=row.error_count,
                permanent_url=row.permanent_url,
                permanent_hits=row.permanent_hits,
                due_at=row.next_poll_at,
            )
            for row in rows
        ]

    def recent_keys(self, feed_ids: Collection[int], limit: int) -> dict[int, list[str]]:
        """The keys each feed stored last, newest first (at most `limit` each): one statement per
        `KEYS_PER_STATEMENT` feeds, however many feeds a batch asks for."""
        found: dict[int, list[str]] = {feed_id: [] for feed_id in feed_ids}
        ids = sorted(found)
        with self.engine.connect() as connection:
            for start in range(0, len(ids), KEYS_PER_STATEMENT):
                chunk = ids[start : start + KEYS_PER_STATEMENT]
                params = {f"f{n}": feed_id for n, feed_id in enumerate(chunk)}
                rows: Any = connection.execute(_recent_keys(len(chunk), limit), params)
                for feed_id, key in rows:
                    found[int(feed_id)].append(str(key))
        return found

    def record_poll(
        self, outcome: PollOutcome, next_poll_at: datetime | None, now: datetime, route: Router,
        policy: StoryPolicy = DEFAULT_POLICY,
    ) -> StoredPoll:  # fmt: skip
        """Store one poll; see `record_polls`."""
        return self.record_polls([Poll(outcome, next_poll_at)], now, route, policy=policy)[0]

    def record_polls(
        self, polls: Sequence[Poll], now: datetime, route: Router, move_after: int = 3,
        policy: StoryPolicy = DEFAULT_POLICY,
    ) -> list[StoredPoll]:  # fmt: skip
        """Store a batch of polls in one transaction: new items, stories, matches, alerts and their
        deliveries (the outbox), and each feed's state. Only after this commits is anything sent."""
        with Session(self.engine) as session:
            stored = polls_module.record(session, polls, now, route, move_after, policy)
            session.commit()
            return stored

    def feed_health(self) -> list[FeedHealth]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(FeedRow, FeedStateRow)
                .join(FeedStateRow, col(FeedStateRow.feed_id) == col(FeedRow.id))
                .order_by(col(FeedRow.id))
            ).all()
            return [
                FeedHealth(
                    _id(feed.id),
                    feed.url,
                    feed.name,
                    feed.title,
                    feed.active,
                    state.status,
                    state.last_outcome,
                    state.last_poll_at,
                    state.last_success_at,
                    state.last_error,
                    state.error_count,
                    state.item_count,
                    state.next_poll_at,
                    f"{state.warning} ({state.warning_at:%Y-%m-%d %H:%MZ})"
                    if state.warning and state.warning_at
                    else state.warning,
                    state.gaps,
                )
                for feed, state in rows
            ]

    # --- deliveries ----------------------------------------------------------------------------------

    def claim_deliveries(self, now: datetime, limit: int, lease: timedelta) -> list[DeliveryTask]:
        """Lease up to `limit` due deliveries, oldest alert first; a crashed sender's lease simply expires."""
        with Session(self.engine) as session:
            if self._postgres:
                # One instance claims at a time: a digest's deliveries, all due at the same moment, go out as
                # one message, and the hourly cap counts one sender, however many instances run. Claims take
                # milliseconds, once a second per instance; the row locks below stay for the instant between.
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DELIVERY_CLAIM_LOCK})
            query = (
                select(DeliveryRow)
                .where(col(DeliveryRow.status) == "pending", col(DeliveryRow.next_try_at) <= now)
                .where(or_(col(DeliveryRow.lease_until).is_(None), col(DeliveryRow.lease_until) < now))
                .order_by(col(DeliveryRow.alert_id), col(DeliveryRow.id))
                .limit(limit)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.exec(query))
            views = self._alert_views(session, {row.alert_id for row in rows})
            tasks = []
            for row in rows:
                sending = row.last_error is not None and row.last_error.startswith(SENDING)
                # Attempted before, yet no failure recorded and not held: that attempt's sender died.
                interrupted = row.attempts > 0 and (row.last_error is None or sending)
                waited = row.last_error is not None and not sending
                batch = row.last_error[len(SENDING) :] if sending and row.last_error else None
                row.lease_until = now + lease
                row.attempts += 1
                row.last_error = None  # until this attempt's outcome is recorded
                tasks.append(
                    DeliveryTask(
                        _id(row.id),
                        views[row.alert_id],
                        row.channel,
                        row.target,
                        row.attempts,
                        f"monitor-{row.alert_id}-{row.channel}-{row.target}",
                        waited,
                        interrupted,
                        batch,
                    )
                )
            session.commit()
            return tasks

    def delivery_done(self, delivery_ids: Iterable[int], now: datetime) -> None:
        # Core, not a Session: one per alert sent, and the ORM's set-up doubled its cost.
        with self.engine.begin() as connection:
            connection.execute(
                update(DELIVERY)
                .where(DELIVERY.c.id.in_(list(delivery_ids)))
                .values(status="sent", sent_at=now, lease_until=None, last_error=None)
            )

    def delivery_held(self, delivery_ids: Iterable[int], reason: str, retry_at: datetime) -> None:
        """Put claimed deliveries back until `retry_at` without a send: the claim's attempt is given back, so
        a wait (the hourly cap) never uses up the retries a failing channel needs."""
        with self.engine.begin() as connection:
            connection.execute(
                update(DELIVERY)
                .where(DELIVERY.c.id.in_(list(delivery_ids)))
                .values(next_try_at=retry_at, lease_until=None, last_error=reason, attempts=DELIVERY.c.attempts - 1)
            )

    def sending_batch(self, delivery_ids: Iterable[int], key: str) -> None:
        """Note on each row that it goes out in one message under `key`: if the sender dies before the outcome
        is recorded, the resend puts the same rows in one message again, under the same key."""
        with self.engine.begin() as connection:
            connection.execute(
                update(DELIVERY).where(DELIVERY.c.id.in_(list(delivery_ids))).values(last_error=SENDING + key)
            )

    def delivery_failed(self, delivery_id: int, error: str, retry_at: datetime | None, status: str = "pending") -> None:
        """Record a failed send: retried at `retry_at`, or ended with `status` (dead, cancelled) when None."""
        with Session(self.engine) as session:
            values: dict[str, Any] = {"last_error": error[:1000], "lease_until": None}
            if retry_at is None:
                values["status"] = status
            else:
                values["next_try_at"] = retry_at
            session.execute(update(DeliveryRow).where(col(DeliveryRow.id) == delivery_id).values(**values))
            session.commit()

    def sent_since(self, channel: str, target: str, since: datetime) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).where(
                col(DeliveryRow.channel) == channel,
                col(DeliveryRow.target) == target,
                col(DeliveryRow.sent_at) >= since,
            )
            return int(session.execute(query).scalar() or 0)

    def recent_alerts(self, limit: int | None) -> list[tuple[AlertView, list[DeliveryState]]]:
        """The latest `limit` alerts (every alert with None), newest first, with their deliveries."""
        with Session(self.engine) as session:
            query_ids = select(col(AlertRow.id)).order_by(col(AlertRow.id).desc())
            ids = [_id(i) for i in session.exec(query_ids if limit is None else query_ids.limit(limit))]
            found: list[tuple[AlertView, list[DeliveryState]]] = []
            for start in range(0, len(ids), 500):  # bounded IN lists, whatever the history
                chunk = ids[start : start + 500]
                views = self._alert_views(session, set(chunk))
                states: dict[int, list[DeliveryState]] = {i: [] for i in chunk}
                query = select(DeliveryRow).where(col(DeliveryRow.alert_id).in_(chunk)).order_by(col(DeliveryRow.id))
                for row in session.exec(query):
                    states[row.alert_id].append(
                        DeliveryState(row.channel, row.target, row.status, row.attempts, row.last_error, row.sent_at)
                    )
                found.extend((views[i], states[i]) for i in chunk)
            return found

    def _alert_views(self, session: Session, alert_ids: set[int]) -> dict[int, AlertView]:
        if not alert_ids:
            return {}
        views: dict[int, AlertView] = {}
        query = (
            select(AlertRow, ItemRow, FeedRow)
            .join(ItemRow, col(ItemRow.id) == col(AlertRow.item_id))
            .join(FeedRow, col(FeedRow.id) == col(ItemRow.feed_id))
            .where(col(AlertRow.id).in_(alert_ids))
        )
        rows = session.exec(query).all()
        # Three queries for the whole claim, not two more per alert: a first poll can bring a thousand alerts.
        hits: dict[int, list[Hit]] = defaultdict(list)
        matches = select(MatchRow).where(col(MatchRow.item_id).in_({_id(item.id) for _, item, _ in rows}))
        for match in session.exec(matches.order_by(col(MatchRow.id))):
            hits[match.item_id].extend(Hit(**h) for h in json.loads(match.hits))
        outlets: dict[int, list[tuple[int, str | None, str | None, str]]] = defaultdict(list)
        carried = (
            sa_select(ITEM.c.story_id, FEED.c.id, FEED.c.name, FEED.c.title, FEED.c.url)
            .distinct()
            .join_from(FEED, ITEM, ITEM.c.feed_id == FEED.c.id)
            .where(ITEM.c.story_id.in_({alert.story_id for alert, _, _ in rows}))
            .order_by(FEED.c.id)
        )
        found: Any = session.execute(carried)  # untyped rows: sqlmodel's Session erases Core's column types
        for story_id, feed_id, name, title, url in found:
            outlets[story_id].append((feed_id, name, title, url))
        for alert, item, feed in rows:
            others = dict.fromkeys((n, t, u) for i, n, t, u in outlets[alert.story_id] if i != feed.id)
            views[_id(alert.id)] = AlertView(
                alert_id=_id(alert.id),
                story_id=alert.story_id,
                title=item.title,
                link=item.link,
                outlet=feed.name or feed.title or mask_url(feed.url),  # a feed URL may carry a token
                also=tuple(str(n or t or mask_url(u)) for n, t, u in others),
                published=item.published_at,
                detected=alert.created_at,
                rules=tuple(json.loads(alert.rules)),
                priority=_priority(alert.priority),
                hits=tuple(hits[_id(item.id)]),
                summary=item.summary,
                kind=alert.kind,
                note=alert.note,
            )
        return views


def _id(value: int | None) -> int:
    """A stored row's primary key (None only before the row is flushed)."""
    assert value is not None
    return value


def _priority(value: str) -> Priority:
    for priority in PRIORITIES:
        if priority == value:
            return priority
    return "normal"


KEYS_PER_STATEMENT = 200
"""Feeds per UNION ALL (SQLite allows 500 terms in one compound SELECT)."""


@lru_cache(maxsize=32)
def _recent_keys(count: int, limit: int) -> Any:
    """The last `limit` keys of each of `count` feeds, newest first: a sub-select per feed, each an index
    range (a window function over `feed_id IN (...)` would read every key a feed ever stored)."""
    part = (
        "SELECT * FROM (SELECT feed_id, key FROM item WHERE feed_id = :f{n}"
        f" ORDER BY id DESC LIMIT {limit}) AS k{{n}}"
    )
    return text(" UNION ALL ".join(part.format(n=n) for n in range(count)))
