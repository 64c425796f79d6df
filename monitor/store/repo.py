"""Repository: every read and write the service makes, each one transaction, records in and out.

Dedup rests on the database, not on memory, so it holds across restarts and instances: an entry is new
only if its (feed, key) insert goes through (ON CONFLICT DO NOTHING), a story has one alert (unique
story_id), and a delivery is claimed by one sender (a lease, taken with SKIP LOCKED on PostgreSQL and under
SQLite's single write lock otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from monitor.config import FeedSpec
from monitor.records import (
    PRIORITIES,
    AlertView,
    DeliveryTask,
    FeedTask,
    Hit,
    NewItem,
    PollOutcome,
    Priority,
    RuleMatch,
)
from monitor.store.tables import AlertRow, DeliveryRow, FeedRow, FeedStateRow, ItemRow, MatchRow, StoryRow

Route = tuple[str, int, datetime]
"""Where an alert goes: channel id, target position, and when the delivery is first due."""
Router = Callable[[Sequence[RuleMatch]], list[Route]]


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


@dataclass(frozen=True)
class DeliveryState:
    channel: str
    target: int
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class StoredPoll:
    """What storing a poll did."""

    new_items: int
    alerts: int
    deliveries: int


class Store:
    """The database behind the service. Thread-safe: each method opens its own session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(table)

    def release_leases(self) -> None:
        """Drop every lease: for a single instance (SQLite) at start, after a crash left some behind."""
        with Session(self.engine) as session:
            session.execute(update(FeedStateRow).values(lease_until=None, lease_owner=None))
            session.execute(update(DeliveryRow).values(lease_until=None))
            session.commit()

    # --- feeds ---------------------------------------------------------------------------------------

    def sync_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> None:
        """Make the feed table follow feeds.toml: new feeds become due now; removed ones inactive, kept."""
        wanted = {spec.url: spec for spec in specs}
        with Session(self.engine) as session:
            rows = {row.config_url: row for row in session.exec(select(FeedRow))}
            for url, spec in wanted.items():
                row = rows.get(url)
                if row is None:
                    row = FeedRow(config_url=url, url=url, name=spec.name, created_at=now)
                    session.add(row)
                    session.flush()
                    assert row.id is not None
                    session.add(FeedStateRow(feed_id=row.id, next_poll_at=now))
                elif row.name != spec.name or not row.active:
                    row.name, row.active = spec.name, True
            for url, row in rows.items():
                if url not in wanted and row.active:
                    row.active = False
            session.commit()

    def claim_due(self, now: datetime, limit: int, lease: timedelta, owner: str, every: bool = False,
                  exclude: Collection[int] = ()) -> list[FeedTask]:  # fmt: skip
        """Lease up to `limit` active feeds whose poll is due (all of them with `every`), soonest first,
        leaving out `exclude` (feeds this cycle has polled already)."""
        with Session(self.engine) as session:
            query = (
                select(FeedRow, FeedStateRow)
                .join(FeedStateRow, col(FeedStateRow.feed_id) == col(FeedRow.id))
                .where(col(FeedRow.active), col(FeedStateRow.status) != "gone")
                .where(or_(col(FeedStateRow.lease_until).is_(None), col(FeedStateRow.lease_until) < now))
                .order_by(col(FeedStateRow.next_poll_at))
                .limit(limit)
            )
            if not every:
                query = query.where(col(FeedStateRow.next_poll_at) <= now)
            if exclude:
                query = query.where(col(FeedRow.id).not_in(list(exclude)))
            if self._postgres:
                query = query.with_for_update(skip_locked=True, of=FeedStateRow)
            tasks: list[FeedTask] = []
            for feed, state in session.exec(query).all():
                state.lease_until, state.lease_owner = now + lease, owner
                tasks.append(
                    FeedTask(
                        feed_id=_id(feed.id),
                        config_url=feed.config_url,
                        url=feed.url,
                        name=feed.name or feed.title,
                        etag=state.etag,
                        last_modified=state.last_modified,
                        body_hash=state.body_hash,
                        first_poll=state.last_success_at is None,
                        error_count=state.error_count,
                        permanent_url=state.permanent_url,
                        permanent_hits=state.permanent_hits,
                    )
                )
            session.commit()
            return tasks

    def known_keys(self, feed_id: int, keys: Iterable[str]) -> set[str]:
        """Which of `keys` the feed has already delivered (seen keys are kept for ever)."""
        wanted = list(keys)
        found: set[str] = set()
        with Session(self.engine) as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(col(ItemRow.key)).where(col(ItemRow.feed_id) == feed_id, col(ItemRow.key).in_(chunk))
                found.update(session.exec(query))
        return found

    def record_poll(
        self, outcome: PollOutcome, next_poll_at: datetime | None, now: datetime, route: Router, move_after: int = 3
    ) -> StoredPoll:
        """Store one poll in one transaction: new items, stories, matches, alerts and their deliveries
        (the outbox), and the feed's state. Only after this commits is anything sent."""
        with Session(self.engine) as session:
            state = session.get(FeedStateRow, outcome.feed_id)
            feed = session.get(FeedRow, outcome.feed_id)
            assert state is not None and feed is not None
            stored = StoredPoll(0, 0, 0)
            if outcome.status in ("ok", "not_modified", "unchanged"):
                stored = self._store_items(session, feed, outcome.new_items, now, route)
                state.status, state.error_count, state.last_error = "ok", 0, None
                state.last_success_at = now
                state.item_count += stored.new_items
                if outcome.status == "ok":
                    state.etag, state.last_modified = outcome.etag, outcome.last_modified
                    state.body_hash = outcome.body_hash or state.body_hash
                    if outcome.feed_title:
                        feed.title = outcome.feed_title[:300]
                self._follow_redirect(feed, state, outcome.permanent_url, move_after)
            elif outcome.status == "gone":
                state.status, state.last_error = "gone", outcome.error
                state.error_count += 1
            else:
                state.status, state.last_error = "failing", outcome.error
                state.error_count += 1
            state.last_outcome = outcome.status
            state.last_poll_at = now
            state.next_poll_at = next_poll_at
            state.lease_until, state.lease_owner = None, None
            session.commit()
            return stored

    @staticmethod
    def _follow_redirect(feed: FeedRow, state: FeedStateRow, target: str | None, move_after: int) -> None:
        """Move the feed's URL only after `move_after` polls in a row ended at the same permanent target."""
        if target is None or target == feed.url:
            state.permanent_url, state.permanent_hits = None, 0
            return
        state.permanent_hits = state.permanent_hits + 1 if state.permanent_url == target else 1
        state.permanent_url = target
        if state.permanent_hits >= move_after:
            feed.url, state.permanent_url, state.permanent_hits = target, None, 0
            state.etag = state.last_modified = None

    def _store_items(
        self, session: Session, feed: FeedRow, items: Sequence[NewItem], now: datetime, route: Router
    ) -> StoredPoll:
        new = alerts = deliveries = 0
        for new_item in items:
            item = new_item.item
            inserted = session.execute(
                self._insert(ItemRow)
                .values(
                    feed_id=feed.id,
                    key=item.key,
                    url=item.url,
                    link=item.link,
                    fingerprint=item.fingerprint,
                    title=item.title,
                    summary=item.summary,
                    content=item.content,
                    published_at=item.published,
                    seen_at=now,
                    silent=new_item.silent,
                )
                .on_conflict_do_nothing(index_elements=["feed_id", "key"])
                .returning(col(ItemRow.id))
            ).scalar()
            if inserted is None:
                continue  # another instance stored it first
            new += 1
            story_id = self._story_for(session, inserted, item.url, item.fingerprint, item.title, now)
            for match in new_item.matches:
                hits = json.dumps([_hit_json(h) for h in match.hits], ensure_ascii=False)
                session.add(MatchRow(item_id=inserted, rule=match.rule, priority=match.priority, hits=hits))
            if new_item.silent or not new_item.matches:
                continue
            alert_id = session.execute(
                self._insert(AlertRow)
                .values(
                    story_id=story_id,
                    item_id=inserted,
                    created_at=now,
                    rules=json.dumps([m.rule for m in new_item.matches]),
                    priority=min((m.priority for m in new_item.matches), key=PRIORITIES.index),
                )
                .on_conflict_do_nothing(index_elements=["story_id"])
                .returning(col(AlertRow.id))
            ).scalar()
            if alert_id is None:
                continue  # the story has alerted already: this outlet joins it ("also: ...")
            alerts += 1
            for channel, target, due in route(new_item.matches):
                session.add(
                    DeliveryRow(alert_id=alert_id, channel=channel, target=target, next_try_at=due, created_at=now)
                )
                deliveries += 1
            session.flush()
        return StoredPoll(new, alerts, deliveries)

    @staticmethod
    def _story_for(session: Session, item_id: int, url: str | None, fingerprint: str, title: str, now: datetime) -> int:
        """The story an item belongs to: the same canonical URL, else the same content, else a new story."""
        for column, value in ((col(ItemRow.url), url), (col(ItemRow.fingerprint), fingerprint)):
            if value is None:
                continue
            existing = session.execute(
                select(col(ItemRow.story_id))
                .where(column == value, col(ItemRow.id) != item_id, col(ItemRow.story_id).is_not(None))
                .limit(1)
            ).scalar()
            if existing is not None:
                session.execute(update(ItemRow).where(col(ItemRow.id) == item_id).values(story_id=existing))
                return int(existing)
        story = StoryRow(title=title, first_seen_at=now)
        session.add(story)
        session.flush()
        assert story.id is not None
        session.execute(update(ItemRow).where(col(ItemRow.id) == item_id).values(story_id=story.id))
        return story.id

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
                )
                for feed, state in rows
            ]

    # --- deliveries ----------------------------------------------------------------------------------

    def claim_deliveries(self, now: datetime, limit: int, lease: timedelta) -> list[DeliveryTask]:
        """Lease up to `limit` due deliveries, oldest alert first; a crashed sender's lease simply expires."""
        with Session(self.engine) as session:
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
                row.lease_until = now + lease
                row.attempts += 1
                tasks.append(
                    DeliveryTask(
                        _id(row.id),
                        views[row.alert_id],
                        row.channel,
                        row.target,
                        row.attempts,
                        f"monitor-{row.alert_id}-{row.channel}-{row.target}",
                    )
                )
            session.commit()
            return tasks

    def delivery_done(self, delivery_ids: Iterable[int], now: datetime) -> None:
        with Session(self.engine) as session:
            session.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.id).in_(list(delivery_ids)))
                .values(status="sent", sent_at=now, lease_until=None, last_error=None)
            )
            session.commit()

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

    def sent_since(self, channel: str, target: int, since: datetime) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).where(
                col(DeliveryRow.channel) == channel,
                col(DeliveryRow.target) == target,
                col(DeliveryRow.sent_at) >= since,
            )
            return int(session.execute(query).scalar() or 0)

    def recent_alerts(self, limit: int) -> list[tuple[AlertView, list[DeliveryState]]]:
        with Session(self.engine) as session:
            query_ids = select(col(AlertRow.id)).order_by(col(AlertRow.id).desc()).limit(limit)
            ids = [_id(i) for i in session.exec(query_ids)]
            views = self._alert_views(session, set(ids))
            states: dict[int, list[DeliveryState]] = {i: [] for i in ids}
            query = select(DeliveryRow).where(col(DeliveryRow.alert_id).in_(ids)).order_by(col(DeliveryRow.id))
            for row in session.exec(query):
                states[row.alert_id].append(
                    DeliveryState(row.channel, row.target, row.status, row.attempts, row.last_error, row.sent_at)
                )
            return [(views[i], states[i]) for i in ids]

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
        for alert, item, feed in session.exec(query).all():
            others = session.execute(
                select(col(FeedRow.name), col(FeedRow.title), col(FeedRow.url))
                .distinct()
                .join(ItemRow, col(ItemRow.feed_id) == col(FeedRow.id))
                .where(col(ItemRow.story_id) == alert.story_id, col(ItemRow.feed_id) != feed.id)
            ).all()
            matches = session.exec(select(MatchRow).where(col(MatchRow.item_id) == item.id))
            hits = tuple(Hit(**h) for m in matches for h in json.loads(m.hits))
            views[_id(alert.id)] = AlertView(
                alert_id=_id(alert.id),
                story_id=alert.story_id,
                title=item.title,
                link=item.link,
                outlet=feed.name or feed.title or feed.url,
                also=tuple(str(n or t or u) for n, t, u in others),
                published=item.published_at,
                detected=alert.created_at,
                rules=tuple(json.loads(alert.rules)),
                priority=_priority(alert.priority),
                hits=hits,
                summary=item.summary,
            )
        return views


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {"ref": hit.ref, "text": hit.text, "field": hit.field, "start": hit.start, "end": hit.end}


def _id(value: int | None) -> int:
    """A stored row's primary key (None only before the row is flushed)."""
    assert value is not None
    return value


def _priority(value: str) -> Priority:
    for priority in PRIORITIES:
        if priority == value:
            return priority
    return "normal"
