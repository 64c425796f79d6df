"""The watch lists services loaded, as they read them: what `monitor backtest` compares against by default."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select

from monitor.store.tables import WATCHLIST


@dataclass(frozen=True)
class StoredWatchList:
    id: int
    sha256: str
    text: str
    loaded_at: datetime
    owner: str


def save(engine: Engine, text: str, now: datetime, owner: str) -> bool:
    """Record `text` as the watch list loaded now, unless it is the newest stored already. True if added."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with engine.begin() as connection:
        newest = connection.execute(select(WATCHLIST.c.sha256).order_by(WATCHLIST.c.id.desc()).limit(1)).scalar()
        if newest == digest:
            return False
        connection.execute(insert(WATCHLIST).values(sha256=digest, text=text, loaded_at=now, owner=owner[:100]))
    return True


def newest(engine: Engine) -> StoredWatchList | None:
    """The watch list a service loaded last, if any has run on this database."""
    with engine.connect() as connection:
        row = connection.execute(
            select(WATCHLIST.c.id, WATCHLIST.c.sha256, WATCHLIST.c.text, WATCHLIST.c.loaded_at, WATCHLIST.c.owner)
            .order_by(WATCHLIST.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return StoredWatchList(int(row.id), str(row.sha256), str(row.text), row.loaded_at, str(row.owner))
