"""The database tables (SQLModel). ORM objects never leave `store/`: repository functions return records.

    feed ─1:1─ feed_state          what to poll, and how polling goes (leases, backoff, conditional GET)
    feed ─1:n─ item ─n:1─ story    every entry ever seen, keyed per feed; stories group items across outlets
    item ─1:n─ match               which rules an item fired, with the hits
    story ─1:n─ alert ─1:n─ delivery   a story's first alert, its updates and spread follow-up; one delivery
                                       per channel target (the outbox)
    item ─1:n─ story_key               an alerting item's informative words: the index that finds the stories
                                       a new item may belong to, within the window, at a cost that does not
                                       grow with history

Seen keys (`item.feed_id`, `item.key`) are kept for ever, so a pruned or re-added entry never re-alerts.
No table holds a channel URL: a delivery names its channel and the target's key (see `target_key`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, Text, UniqueConstraint
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
    warning: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The last thing the operator should know that is not a failure (a storm of re-sent items)."""
    warning_at: datetime | None = Field(default=None, sa_column=_utc())
    gaps: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    """Polls that found every entry new: items may have scrolled off the feed between polls."""


class StoryRow(SQLModel, table=True):
    __tablename__ = "story"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    first_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    rules: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    """JSON list of the rules the story has alerted for so far (empty: it has not alerted)."""
    priority: str | None = Field(default=None, max_length=10)
    """The highest priority the story has alerted with."""


class ItemRow(SQLModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("feed_id", "key", name="uq_item_feed_key"),
        Index("ix_item_url", "url"),
        Index("ix_item_fingerprint", "fingerprint"),
        Index("ix_item_story", "story_id"),
        Index("ix_item_feed_recent", "feed_id", "id"),  # a feed's newest keys (`Store.recent_keys`)
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
    """Stored without alerting: first seen more than the backfill window after its publication, or brought by
    a storm (a feed presenting most of its items as new again)."""
    sketch: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The words the story layer compares (`pipeline.stories.Sketch.encode`); only for items that alert."""


class StoryKeyRow(SQLModel, table=True):
    """One informative word of an alerting item: stories sharing words are found through (key, at)."""

    __tablename__ = "story_key"
    __table_args__ = (Index("ix_story_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=100)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    """The item's publication time, else when it was first seen: what the story window counts from."""
    item_id: int = Field(foreign_key="item.id")


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
    __table_args__ = (UniqueConstraint("story_id", "kind", "reason", name="uq_alert_story_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    story_id: int = Field(foreign_key="story.id")
    item_id: int = Field(foreign_key="item.id")
    """The item that made the alert: the story's first, the one that escalated it, or the one that spread it."""
    kind: str = Field(default="first", max_length=10, sa_column_kwargs={"server_default": "first"})
    """first | update (a new rule or a higher priority) | spread (the story reached `spread_alert` outlets)."""
    reason: str = Field(default="", max_length=500, sa_column_kwargs={"server_default": ""})
    """What makes the alert unique within its story and kind: the state it announces ("urgent:rule-a,rule-b"
    for an update, the outlet count for a spread), so two instances announcing the same thing send once."""
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    """What the message says changed: "now urgent", "now also karabakh-humanitarian", "now in 5 outlets"."""
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
    target: str = Field(max_length=20)
    """The target's key in its channel (`config.target_key`: a digest of the URL as written, so it survives
    edits to the list around it); the URL itself is looked up in the config at send time. Rows from before
    migration 0005 hold the URL's position."""
    status: str = Field(default="pending", max_length=20)
    """pending | sending | sent | dead | cancelled."""
    attempts: int = 0
    next_try_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_until: datetime | None = Field(default=None, sa_column=_utc())
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=_utc())
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WatchListRow(SQLModel, table=True):
    """A watch list a service loaded: keywords.toml as it was read. `monitor backtest` compares against the
    newest by default. A row is added only when the text differs from the newest."""

    __tablename__ = "watchlist"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    loaded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    owner: str = Field(max_length=100)
    """The instance that loaded it (host:id)."""


# The same tables for Core statements (bulk UPDATE and executemany INSERT), which skip the ORM's per-row work.
FEED = SQLModel.metadata.tables["feed"]
FEED_STATE = SQLModel.metadata.tables["feed_state"]
ITEM = SQLModel.metadata.tables["item"]
STORY = SQLModel.metadata.tables["story"]
MATCH = SQLModel.metadata.tables["match"]
ALERT = SQLModel.metadata.tables["alert"]
DELIVERY = SQLModel.metadata.tables["delivery"]
STORY_KEY = SQLModel.metadata.tables["story_key"]
WATCHLIST = SQLModel.metadata.tables["watchlist"]
