"""The database tables (SQLModel). ORM objects never leave `store/`: repository functions return records.

    feed ─1:1─ feed_state          what to poll, and how polling goes (leases, backoff, conditional GET)
    feed ─1:n─ item ─n:1─ story    every entry ever seen, keyed per feed; stories group items across outlets
    item ─1:n─ match               which rules an item fired, with the hits
    story ─1:1─ alert ─1:n─ delivery   one alert per story; one delivery per channel target (the outbox)

Seen keys (`item.feed_id`, `item.key`) are kept for ever, so a pruned or re-added entry never re-alerts.
No table holds a channel URL: a delivery names its channel and the target's position in it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from monitor.store.types import UTCDateTime


def _utc() -> Column[datetime]:
    return Column(UTCDateTime(), nullable=True)


class FeedRow(SQLModel, table=True):
    __tablename__ = "feed"

    id: int | None = Field(default=None, primary_key=True)
    config_url: str = Field(sa_column_kwargs={"unique": True}, max_length=2048)
    """The URL as written in feeds.toml: how a config entry finds its row again."""
    url: str = Field(max_length=2048)
    """The URL polled; follows permanent redirects."""
    name: str | None = Field(default=None, max_length=300)
    title: str | None = Field(default=None, max_length=300)
    active: bool = True
    """False once the feed left feeds.toml; its seen keys stay, so re-adding it re-alerts nothing."""
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FeedStateRow(SQLModel, table=True):
    __tablename__ = "feed_state"
    __table_args__ = (Index("ix_feed_state_due", "next_poll_at"),)

    feed_id: int = Field(foreign_key="feed.id", primary_key=True)
    status: str = Field(default="new", max_length=20)
    """new (never polled) | ok | failing | gone."""
    etag: str | None = Field(default=None, max_length=500)
    last_modified: str | None = Field(default=None, max_length=100)
    body_hash: str | None = Field(default=None, max_length=64)
    error_count: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_outcome: str | None = Field(default=None, max_length=20)
    last_poll_at: datetime | None = Field(default=None, sa_column=_utc())
    last_success_at: datetime | None = Field(default=None, sa_column=_utc())
    next_poll_at: datetime | None = Field(default=None, sa_column=_utc())
    lease_until: datetime | None = Field(default=None, sa_column=_utc())
    lease_owner: str | None = Field(default=None, max_length=100)
    item_count: int = 0
    permanent_hits: int = 0
    """Polls in a row that ended at the same permanent redirect target (the URL moves after a few)."""
    permanent_url: str | None = Field(default=None, max_length=2048)


class StoryRow(SQLModel, table=True):
    __tablename__ = "story"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    first_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ItemRow(SQLModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("feed_id", "key", name="uq_item_feed_key"),
        Index("ix_item_url", "url"),
        Index("ix_item_fingerprint", "fingerprint"),
        Index("ix_item_story", "story_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id")
    key: str = Field(max_length=600)
    url: str | None = Field(default=None, max_length=2048)
    link: str | None = Field(default=None, max_length=2048)
    fingerprint: str = Field(max_length=64)
    story_id: int | None = Field(default=None, foreign_key="story.id")
    title: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(sa_column=Column(Text, nullable=False))
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    published_at: datetime | None = Field(default=None, sa_column=_utc())
    seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    silent: bool = False
    """Stored without alerting: older than the backfill window of a new feed's first poll."""


class MatchRow(SQLModel, table=True):
    __tablename__ = "match"
    __table_args__ = (UniqueConstraint("item_id", "rule", name="uq_match_item_rule"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id")
    rule: str = Field(max_length=100)
    priority: str = Field(max_length=10)
    hits: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of hits: ref, text, field, start, end."""


class AlertRow(SQLModel, table=True):
    __tablename__ = "alert"

    id: int | None = Field(default=None, primary_key=True)
    story_id: int = Field(foreign_key="story.id", sa_column_kwargs={"unique": True})
    item_id: int = Field(foreign_key="item.id")
    rules: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of the rule ids the story fired, in config order."""
    priority: str = Field(max_length=10)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    """When the story was detected; kept through retries and digests."""


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", "target", name="uq_delivery_target"),
        Index("ix_delivery_due", "status", "next_try_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id")
    channel: str = Field(max_length=100)
    target: int
    """Position of the URL in the channel's `urls`; the URL itself is looked up in the config at send time."""
    status: str = Field(default="pending", max_length=20)
    """pending | sending | sent | dead | cancelled."""
    attempts: int = 0
    next_try_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_until: datetime | None = Field(default=None, sa_column=_utc())
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=_utc())
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# The same tables for Core statements (bulk UPDATE and executemany INSERT), which skip the ORM's per-row work.
FEED = SQLModel.metadata.tables["feed"]
FEED_STATE = SQLModel.metadata.tables["feed_state"]
ITEM = SQLModel.metadata.tables["item"]
STORY = SQLModel.metadata.tables["story"]
MATCH = SQLModel.metadata.tables["match"]
ALERT = SQLModel.metadata.tables["alert"]
DELIVERY = SQLModel.metadata.tables["delivery"]
