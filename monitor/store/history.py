"""Stored items read back in publication order, for `monitor backtest`: records out, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, type_coerce

from monitor.store.tables import ITEM
from monitor.store.types import UTCDateTime

BATCH = 2000


@dataclass(frozen=True, slots=True)
class StoredItem:
    item_id: int
    feed_id: int
    story_id: int | None
    """The story the service put it in (its URL, content and story layers)."""
    title: str
    summary: str
    content: str
    at: datetime
    """Publication time, else when it was first seen: what the story window counts from."""
    silent: bool
    """Stored without alerting (backfill, a storm): it would not alert under any watch list."""
    sketch: str | None
    """The story layer's words, stored for items that alerted."""


def items_since(engine: Engine, since: datetime) -> Iterator[StoredItem]:
    """The items first seen at or after `since`, oldest publication first (then as stored)."""
    at = type_coerce(func.coalesce(ITEM.c.published_at, ITEM.c.seen_at), UTCDateTime())
    query = (
        select(ITEM.c.id, ITEM.c.feed_id, ITEM.c.story_id, ITEM.c.title, ITEM.c.summary, ITEM.c.content, at,
               ITEM.c.silent, ITEM.c.sketch)
        .where(ITEM.c.seen_at >= since)
        .order_by(at, ITEM.c.id)
    )  # fmt: skip
    with engine.connect() as connection:
        rows: Any = connection.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for item_id, feed_id, story_id, title, summary, content, when, silent, sketch in rows:
            yield StoredItem(item_id, feed_id, story_id, title, summary, content, when, bool(silent), sketch)
