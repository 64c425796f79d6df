"""`monitor feeds`, `alerts`, `stories` and `stats`: what the database holds, for an operator.

On a terminal, a Rich table of what fits the screen, failing and newest first, and a line saying how many
rows are left out. Piped, every row as tab-separated text under a header line (one row per line, for grep,
cut and awk). With `--json`, every row as JSON Lines (DESIGN.md §4), times ISO 8601 UTC with `Z`.
`--limit` caps the rows in every form. Rich is imported only to draw a table: a 2,000-row Rich table took
seconds, and a pipe never needs one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from monitor.config.units import format_duration
from monitor.errors import MonitorError
from monitor.policy import mask_url
from monitor.records import AlertView
from monitor.store.engine import DEFAULT_URL, open_engine, upgrade
from monitor.store.repo import DeliveryState, FeedHealth, Store
from monitor.store.stats import DayCount, DayDeliveries, daily
from monitor.store.views import StoryView, recent_stories, story_json

HEALTHY = frozenset({"ok", "not_modified", "unchanged", "new"})
"""Feed states that need nobody's attention."""
Row = Sequence[str]


def show_feeds(db: str | None, limit: int | None, as_json: bool) -> None:
    """Feed health, failing first (the longest failing at the top), then the most recently polled."""
    feeds = sorted(Store(existing_engine(db)).feed_health(), key=_feed_order)
    failing = sum(1 for feed in feeds if not _healthy(feed))
    emit(
        "feeds", feeds, limit, as_json,
        columns=("feed", "status", "last success", "last error", "items", "next poll", "warning"),
        row=_feed_row, record=_feed_json,
        note=f"{failing} failing" if failing else "none failing",
    )  # fmt: skip


def show_alerts(db: str | None, limit: int | None, as_json: bool) -> None:
    """The latest alerts, newest first, with their delivery to each channel target."""
    shown = _shown(limit, as_json)
    store = Store(existing_engine(db))
    alerts = store.recent_alerts(None if shown is None else shown + 1)  # one more says whether rows were left
    emit(
        "alerts", alerts, limit, as_json,
        columns=("detected", "story", "alert", "priority", "headline", "outlets", "rules", "deliveries"),
        row=_alert_row, record=_alert_json, note="newest first", counted=False,
    )  # fmt: skip


def show_stories(db: str | None, since: timedelta, limit: int | None, as_json: bool) -> None:
    """Stories first seen within `since`, newest first (DESIGN.md §4)."""
    shown = _shown(limit, as_json)
    stories = recent_stories(existing_engine(db), datetime.now(UTC) - since, None if shown is None else shown + 1)
    emit(
        f"stories first seen in the last {format_duration(since)}", stories, limit, as_json,
        columns=("story", "first seen", "priority", "headline", "outlets", "rules", "alerts"),
        row=_story_row, record=lambda view: story_json(view, iso), note="newest first", counted=False,
    )  # fmt: skip


def show_stats(db: str | None, days: int, limit: int | None, as_json: bool) -> None:
    """Per day (UTC) over the last `days`: items per feed, alerts per rule, deliveries per channel; then the
    feeds failing now. With `--json`, one object per row, each naming its `table`."""
    engine = existing_engine(db)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stats = daily(engine, today - timedelta(days=days - 1))
    failing = sorted((f for f in Store(engine).feed_health() if not _healthy(f)), key=_feed_order)
    span = "today" if days == 1 else f"the last {days} days (UTC)"
    sections: list[tuple[str, Sequence[Any], Row, Callable[[Any], Row], Callable[[Any], dict[str, Any]], str]] = [
        (f"items stored per feed, {span}", stats.items, ("day", "feed", "items"), _count_row,
         lambda c: {"table": "items", "day": c.day, "feed": c.name, "items": c.count}, "busiest first"),
        (f"alerts per rule, {span}", stats.alerts, ("day", "rule", "alerts"), _count_row,
         lambda c: {"table": "alerts", "day": c.day, "rule": c.name, "alerts": c.count},
         "an alert counts under each rule it names"),
        (f"deliveries per channel, {span}", stats.deliveries,
         ("day", "channel", "sent", "failed attempts", "dead", "pending", "cancelled"), _delivery_row,
         _delivery_json, "by the day their alert was queued"),
        ("feeds failing now", failing, ("feed", "status", "last success", "last error"),
         lambda f: _feed_row(f)[:4], lambda f: {"table": "failing", **_feed_json(f)},
         f"{len(failing)} failing" if failing else "none failing"),
    ]  # fmt: skip
    for title, rows, columns, row, record, note in sections:
        emit(title, rows, limit, as_json, columns=columns, row=row, record=record, note=note)


def _count_row(count: DayCount) -> Row:
    return (count.day, count.name, str(count.count))


def _delivery_row(d: DayDeliveries) -> Row:
    return (d.day, d.channel, str(d.sent), str(d.failed), str(d.dead), str(d.pending), str(d.cancelled))


def _delivery_json(d: DayDeliveries) -> dict[str, Any]:
    return {"table": "deliveries", "day": d.day, "channel": d.channel, "sent": d.sent, "failed": d.failed,
            "dead": d.dead, "pending": d.pending, "cancelled": d.cancelled}  # fmt: skip


def existing_engine(db: str | None) -> Engine:
    """The engine of a database that `monitor run` has created; the read-only commands never create one."""
    url = db or DEFAULT_URL
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not os.path.exists(parsed.database):
        raise MonitorError(f"no database at {parsed.database}: run `monitor run` first (or pass --db)")
    engine = open_engine(url)
    upgrade(engine)
    return engine


# --- output ----------------------------------------------------------------------------------------------


def _shown(limit: int | None, as_json: bool) -> int | None:
    """How many rows to print: `--limit`, else a screenful on a terminal, else every row."""
    if limit is not None:
        return limit
    if as_json or not sys.stdout.isatty():
        return None
    return max(5, shutil.get_terminal_size().lines - 8)  # the title, header, rules, the note and a prompt


def emit(
    title: str, rows: Sequence[Any], limit: int | None, as_json: bool, *, columns: Row,
    row: Callable[[Any], Row], record: Callable[[Any], dict[str, Any]], note: str, counted: bool = True,
) -> None:  # fmt: skip
    """Print `rows` (already in order) as JSON Lines, tab-separated text or a table. `counted`: `rows` is
    every row; otherwise one row more than is shown was read, to know that more exist."""
    shown = _shown(limit, as_json)
    chosen = rows if shown is None else rows[:shown]
    out = sys.stdout
    if as_json:
        out.writelines(json.dumps(record(r), ensure_ascii=False) + "\n" for r in chosen)
    elif not out.isatty():
        out.write("\t".join(columns) + "\n")
        out.writelines("\t".join(_one_line(cell) for cell in row(r)) + "\n" for r in chosen)
    else:
        left, more = len(rows) - len(chosen), ""
        if left:
            more = f"; {left if counted else 'some'} more not shown: --limit N, or --json for all"
        _table(title, columns, (row(r) for r in chosen), f"{len(chosen)} shown, {note}{more}")
    out.flush()


def _table(title: str, columns: Row, rows: Iterable[Row], caption: str) -> None:
    from rich.console import Console  # a terminal only
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for column in columns:
        table.add_column(column, overflow="fold")
    for cells in rows:
        table.add_row(*cells)
    Console().print(table)


def _one_line(cell: str) -> str:
    return " ".join(cell.split()) if ("\t" in cell or "\n" in cell or "\r" in cell) else cell


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


# --- feeds -----------------------------------------------------------------------------------------------


def _healthy(feed: FeedHealth) -> bool:
    return not feed.active or (feed.status in HEALTHY and not feed.error_count)


def _feed_order(feed: FeedHealth) -> tuple[int, int, float]:
    polled = feed.last_poll_at.timestamp() if feed.last_poll_at else 0.0
    if not _healthy(feed):
        return (0, -feed.error_count, -polled)
    return (1 if feed.active else 2, 0 if feed.warning else 1, -polled)


def _feed_name(feed: FeedHealth) -> str:
    return feed.name or feed.title or mask_url(feed.url)  # a feed URL may carry a token


def _feed_row(feed: FeedHealth) -> Row:
    status = feed.status if feed.active else f"{feed.status} (removed)"
    if feed.error_count:
        status += f" ×{feed.error_count}"
    next_poll = when(feed.next_poll_at) if feed.status != "gone" else "stopped"
    warning = (feed.warning or "") + (f" [possible gaps so far: {feed.gaps}]" if feed.gaps else "")
    return (_feed_name(feed), status, when(feed.last_success_at), feed.last_error or "", str(feed.item_count),
            next_poll, warning.strip())  # fmt: skip


def _feed_json(feed: FeedHealth) -> dict[str, Any]:
    return {
        "feed": _feed_name(feed), "url": mask_url(feed.url), "active": feed.active, "status": feed.status,
        "error_count": feed.error_count, "last_poll": iso(feed.last_poll_at),
        "last_success": iso(feed.last_success_at), "last_error": feed.last_error, "items": feed.item_count,
        "next_poll": iso(feed.next_poll_at) if feed.status != "gone" else None, "warning": feed.warning,
        "gaps": feed.gaps,
    }  # fmt: skip


# --- alerts ----------------------------------------------------------------------------------------------


def _alert_row(pair: tuple[AlertView, list[DeliveryState]]) -> Row:
    alert, deliveries = pair
    states = ", ".join(
        (d.channel if d.target == d.channel else f"{d.channel}[{d.target}]")
        + f": {d.status}"
        + (f" ({d.last_error})" if d.last_error and d.status != "sent" else "")
        for d in deliveries
    )
    outlets = f"{1 + len(alert.also)}: {alert.outlet}" + (f", {', '.join(alert.also)}" if alert.also else "")
    kind = alert.kind + (f": {alert.note}" if alert.note else "")
    return (when(alert.detected), str(alert.story_id), kind, alert.priority, alert.title, outlets,
            ", ".join(alert.rules), states)  # fmt: skip


def _alert_json(pair: tuple[AlertView, list[DeliveryState]]) -> dict[str, Any]:
    alert, deliveries = pair
    return {
        "alert": alert.alert_id, "story": alert.story_id, "kind": alert.kind, "note": alert.note,
        "detected": iso(alert.detected), "priority": alert.priority, "title": alert.title, "link": alert.link,
        "published": iso(alert.published), "rules": list(alert.rules), "outlets": [alert.outlet, *alert.also],
        "deliveries": [
            {"channel": d.channel, "target": d.target, "status": d.status, "attempts": d.attempts,
             "error": d.last_error, "sent": iso(d.sent_at)}
            for d in deliveries
        ],
    }  # fmt: skip


# --- stories ---------------------------------------------------------------------------------------------


def _story_row(view: StoryView) -> Row:
    names = ", ".join(dict.fromkeys(item.feed for item in view.items))
    return (str(view.story_id), when(view.first_seen), view.priority or "-", view.title,
            f"{view.outlets}: {names}", ", ".join(view.rules), "; ".join(view.alerts) or "none")  # fmt: skip
