"""Read-only views of stories for `monitor stories` and the web app: records out, no ORM objects."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from monitor.policy import mask_url
from monitor.records import PRIORITIES
from monitor.store.tables import ALERT, FEED, ITEM, MATCH, STORY


@dataclass(frozen=True)
class StoryItem:
    feed: str
    title: str
    link: str | None
    """The link as the feed gave it."""
    published: datetime | None
    seen: datetime


@dataclass(frozen=True)
class StoryView:
    story_id: int
    title: str
    first_seen: datetime
    rules: tuple[str, ...]
    """Every rule the story's items fired, in the order they first fired."""
    priority: str | None
    """The highest priority among them (None when no item fired a rule)."""
    alerted: bool
    outlets: int
    items: tuple[StoryItem, ...]
    """In the order they joined the story."""
    alerts: tuple[str, ...]
    """Each alert the story made: "first", "update: now urgent", "spread: now in 5 outlets"."""


def recent_stories(engine: Engine, since: datetime, limit: int | None) -> list[StoryView]:
    """Stories first seen at or after `since`, newest first (at most `limit`)."""
    with engine.connect() as connection:
        query = (
            select(STORY.c.id, STORY.c.title, STORY.c.first_seen_at)
            .where(STORY.c.first_seen_at >= since)
            .order_by(STORY.c.first_seen_at.desc(), STORY.c.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        heads: Any = connection.execute(query)
        stories = [(int(i), str(t), f) for i, t, f in heads]
        ids = [i for i, _, _ in stories]
        items: dict[int, list[StoryItem]] = defaultdict(list)
        feeds: dict[int, set[int]] = defaultdict(set)
        rules: dict[int, dict[str, None]] = defaultdict(dict)
        priority: dict[int, str] = {}
        alerts: dict[int, list[str]] = defaultdict(list)
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            rows: Any = connection.execute(
                select(ITEM.c.story_id, ITEM.c.feed_id, FEED.c.name, FEED.c.title, FEED.c.url, ITEM.c.title,
                       ITEM.c.link, ITEM.c.published_at, ITEM.c.seen_at)
                .join_from(ITEM, FEED, FEED.c.id == ITEM.c.feed_id)
                .where(ITEM.c.story_id.in_(chunk))
                .order_by(ITEM.c.id)
            )  # fmt: skip
            for story, feed_id, name, feed_title, url, title, link, published, seen in rows:
                items[story].append(StoryItem(name or feed_title or mask_url(url), title, link, published, seen))
                feeds[story].add(feed_id)
            matched: Any = connection.execute(
                select(ITEM.c.story_id, MATCH.c.rule, MATCH.c.priority)
                .join_from(MATCH, ITEM, ITEM.c.id == MATCH.c.item_id)
                .where(ITEM.c.story_id.in_(chunk))
                .order_by(MATCH.c.id)
            )
            for story, rule, level in matched:
                rules[story][rule] = None
                if story not in priority or _rank(level) < _rank(priority[story]):
                    priority[story] = level
            made: Any = connection.execute(
                select(ALERT.c.story_id, ALERT.c.kind, ALERT.c.note).where(ALERT.c.story_id.in_(chunk))
                .order_by(ALERT.c.id)
            )  # fmt: skip
            for story, kind, note in made:
                alerts[story].append(f"{kind}: {note}" if note else str(kind))
        return [
            StoryView(
                i,
                title,
                first_seen,
                tuple(rules[i]),
                priority.get(i),
                bool(alerts[i]),
                len(feeds[i]),
                tuple(items[i]),
                tuple(alerts[i]),
            )
            for i, title, first_seen in stories
        ]


def _rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else PRIORITIES.index("normal")


def story_json(view: StoryView, when: Any) -> dict[str, Any]:
    """One story as `monitor stories --json` prints it (DESIGN.md §4); `when` formats a time."""
    return {
        "story": view.story_id,
        "title": view.title,
        "first_seen": when(view.first_seen),
        "rules": list(view.rules),
        "priority": view.priority,
        "alerted": view.alerted,
        "outlets": view.outlets,
        "items": [
            {"feed": i.feed, "title": i.title, "link": i.link, "published": when(i.published), "seen": when(i.seen)}
            for i in view.items
        ],
    }
