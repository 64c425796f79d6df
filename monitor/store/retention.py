"""Retention (`[defaults] retention` in feeds.toml): what the database lets go of, a chunk at a time.

An alert older than the retention goes with its deliveries, unless one is still pending; an item older than
it loses its text, its matches and its story-lookup keys once no alert names it. The item's row and key stay
for ever: they keep a feed that still lists an old entry from alerting it again (and backfill stores such
an entry silently anyway). So the database grows by a key per item, not by its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, exists, or_, select, update

from monitor.store.tables import ALERT, DELIVERY, ITEM, MATCH, STORY_KEY

CHUNK = 2000
"""Rows per statement: a prune never holds the database for long."""


@dataclass(frozen=True)
class Pruned:
    alerts: int
    items: int

    def __bool__(self) -> bool:
        return bool(self.alerts or self.items)


def prune(engine: Engine, before: datetime) -> Pruned:
    """One chunk of what is older than `before`; call again while it returns something."""
    with engine.begin() as connection:
        pending = exists().where(DELIVERY.c.alert_id == ALERT.c.id, DELIVERY.c.status == "pending")
        alerts: list[int] = list(
            connection.execute(
                select(ALERT.c.id).where(ALERT.c.created_at < before, ~pending).order_by(ALERT.c.id).limit(CHUNK)
            ).scalars()
        )
        if alerts:
            connection.execute(delete(DELIVERY).where(DELIVERY.c.alert_id.in_(alerts)))
            connection.execute(delete(ALERT).where(ALERT.c.id.in_(alerts)))
        texts = or_(ITEM.c.title != "", ITEM.c.summary != "", ITEM.c.content != "", ITEM.c.sketch.is_not(None))
        items: list[int] = list(
            connection.execute(
                select(ITEM.c.id)
                .where(ITEM.c.seen_at < before, texts, ~exists().where(ALERT.c.item_id == ITEM.c.id))
                .order_by(ITEM.c.id)
                .limit(CHUNK)
            ).scalars()
        )
        if items:
            connection.execute(delete(MATCH).where(MATCH.c.item_id.in_(items)))
            connection.execute(delete(STORY_KEY).where(STORY_KEY.c.item_id.in_(items)))
            connection.execute(
                update(ITEM).where(ITEM.c.id.in_(items)).values(title="", summary="", content="", sketch=None)
            )
    return Pruned(len(alerts), len(items))
