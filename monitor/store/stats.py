"""Counts for `monitor stats` and the metrics endpoint: per day (UTC), grouped in the database.

Days are calendar days in UTC: items by the day they were stored, alerts by the day they were made,
deliveries by the day their alert was queued (with what became of them since).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, select, text
from sqlalchemy.sql.elements import ColumnElement

from monitor.policy import mask_url
from monitor.store.tables import ALERT, DELIVERY, FEED, FEED_STATE, ITEM


@dataclass(frozen=True)
class DayCount:
    day: str
    """YYYY-MM-DD, UTC."""
    name: str
    """The feed's name (its URL masked when it has none), or the rule id."""
    count: int


@dataclass(frozen=True)
class DayDeliveries:
    day: str
    channel: str
    sent: int
    failed: int
    """Send attempts that failed (those retried, and every attempt of a delivery given up)."""
    dead: int
    """Deliveries given up: their last attempt failed."""
    pending: int
    """Still to send (due, retrying or held for a digest or the hourly cap)."""
    cancelled: int


@dataclass(frozen=True)
class DailyStats:
    items: list[DayCount]
    alerts: list[DayCount]
    deliveries: list[DayDeliveries]


def _day(engine: Engine, column: Any) -> ColumnElement[str]:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)  # SQLite keeps UTC without an offset


def daily(engine: Engine, since: datetime) -> DailyStats:
    """Items per feed, alerts per rule and deliveries per channel, per day since `since`, newest day first."""
    with engine.connect() as connection:
        day = _day(engine, ITEM.c.seen_at)
        rows: Any = connection.execute(
            select(day, FEED.c.name, FEED.c.title, FEED.c.url, func.count())
            .join_from(ITEM, FEED, FEED.c.id == ITEM.c.feed_id)
            .where(ITEM.c.seen_at >= since)
            .group_by(day, FEED.c.id, FEED.c.name, FEED.c.title, FEED.c.url)
        )
        items = [DayCount(d, name or title or mask_url(url), int(n)) for d, name, title, url, n in rows]
        day = _day(engine, ALERT.c.created_at)
        per_rule: Counter[tuple[str, str]] = Counter()
        made: Any = connection.execute(
            select(day, ALERT.c.rules, func.count()).where(ALERT.c.created_at >= since).group_by(day, ALERT.c.rules)
        )
        for d, rules, n in made:
            for rule in json.loads(rules):
                per_rule[(d, rule)] += int(n)
        day = _day(engine, DELIVERY.c.created_at)
        status, attempts = DELIVERY.c.status, DELIVERY.c.attempts
        failed_attempts = case((status == "sent", attempts - 1), else_=attempts)

        def count(condition: ColumnElement[bool]) -> Any:
            return func.sum(case((condition, 1), else_=0))

        sums: Any = connection.execute(
            select(day, DELIVERY.c.channel, count(status == "sent"), func.sum(failed_attempts),
                   count(status == "dead"), count(status.in_(("pending", "sending"))), count(status == "cancelled"))
            .where(DELIVERY.c.created_at >= since)
            .group_by(day, DELIVERY.c.channel)
        )  # fmt: skip
        deliveries = [DayDeliveries(str(row[0]), str(row[1]), *(int(n or 0) for n in row[2:])) for row in sums]
    items.sort(key=lambda c: (c.day, c.count), reverse=True)
    alerts = sorted((DayCount(d, rule, n) for (d, rule), n in per_rule.items()), key=lambda c: (c.day, c.count),
                    reverse=True)  # fmt: skip
    deliveries.sort(key=lambda c: (c.day, c.channel), reverse=True)
    return DailyStats(items, alerts, deliveries)


def feed_status_counts(engine: Engine) -> dict[str, int]:
    """Active feeds by status (new, ok, failing, gone)."""
    with engine.connect() as connection:
        rows: Any = connection.execute(
            select(FEED_STATE.c.status, func.count())
            .join_from(FEED_STATE, FEED, FEED.c.id == FEED_STATE.c.feed_id)
            .where(FEED.c.active)
            .group_by(FEED_STATE.c.status)
        )
        return {str(status): int(n) for status, n in rows}


def database_problem(engine: Engine) -> str | None:
    """None when the database answers a query; else what went wrong, without the URL (it may hold a password)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return f"the database does not answer ({type(error).__name__})"
    return None
