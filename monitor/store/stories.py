"""Which story each new item of a batch belongs to: DESIGN.md §6, the URL, content and story layers.

    new items ─► same canonical URL within the window ─► same content within the window
              ─► (items that may alert) the story layer: stories sharing informative words, found through
                 `story_key` within the window, judged by `pipeline.stories`
              ─► else a new story

Each layer is reached only by what the one before let through, and every layer counts the window on
publication time (else first-seen time). Within one feed the URL and content layers join only items
published within `SAME_FEED_APART` of each other: a GUID that changes while the entry does not keeps its
story, but a daily roundup that repeats its title and lede (or its URL) is a new story each day.

The decisions are pure (`pipeline.stories`); this module only reads what they need, a bounded amount per
item whatever the history: the index is read per word, newest first, at most `PER_KEY` rows each, inside
the window.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, union_all
from sqlmodel import Session

from monitor.pipeline.stories import Member, Sketch, choose, decode, sketch
from monitor.records import NewItem
from monitor.store.bulk import insert_rows, new_ids
from monitor.store.tables import ITEM, STORY, STORY_KEY

SAME_FEED_APART = timedelta(hours=12)
PER_KEY = 64
"""Index rows read per word: the newest inside the window. A rare word has fewer; a common one says little."""
CANDIDATES = 40
"""Items per new item whose stories are compared: those sharing the most words with it."""
PER_STORY = 50
"""Items of a candidate story compared, at most (its newest)."""
CHUNK = 400
KEYS_PER_QUERY = 100
"""Words per UNION ALL: SQLite allows 500 terms in one compound SELECT."""


@dataclass(frozen=True)
class Fresh:
    """A new item of the batch, with what the story layers need to know about it."""

    feed_id: int
    new: NewItem
    at: datetime
    """Publication time, else now."""
    sketch: Sketch | None
    """Only for items that may alert (they fire a rule and are not silent): the rest skip the story layer."""


@dataclass(frozen=True)
class Assigned:
    stories: list[int]
    """The story of each item, in batch order."""
    made: set[int]
    """Stories created for this batch."""


def prepare(feed_id: int, new: NewItem, now: datetime) -> Fresh:
    item = new.item
    alerting = bool(new.matches) and not new.silent
    return Fresh(
        feed_id, new, item.published or now, sketch(item.title, item.summary, item.content) if alerting else None
    )


def assign(session: Session, fresh: Sequence[Fresh], now: datetime, window: timedelta) -> Assigned:
    """The story of each item; new stories are inserted (the caller inserts the items)."""
    lo = min(f.at for f in fresh) - window
    hi = max(f.at for f in fresh) + window
    by_url, by_print = _exact(session, fresh, lo, hi)
    clustered = [f for f in fresh if f.sketch is not None]
    members = _members(session, clustered, lo, hi)
    chosen: list[int | None] = []
    batch: list[Member] = []  # this batch's clustered items so far, with the story each was given
    for index, item in enumerate(fresh):
        story = _same(by_url.get(item.new.item.url or ""), item, window) or _same(
            by_print.get(item.new.item.fingerprint), item, window
        )
        if story is None and item.sketch is not None:
            keys = set(item.sketch.index_keys())
            near = {m.story_id for m, words in members if keys & words}
            found = [m for m, _ in members if m.story_id in near]
            story = choose(item.sketch, item.feed_id, item.at, [*found, *batch], window)
        placeholder = story if story is not None else -1 - index  # made below; later items may join it
        chosen.append(story)
        if item.new.item.url:
            by_url[item.new.item.url].append((item.at, item.feed_id, placeholder))
        by_print[item.new.item.fingerprint].append((item.at, item.feed_id, placeholder))
        if item.sketch is not None:
            batch.append(Member(placeholder, item.feed_id, item.at, item.sketch))
    needed = [index for index, story in enumerate(chosen) if story is None]
    made = dict(zip(needed, new_ids(session, STORY, len(needed)), strict=True))
    insert_rows(
        session,
        insert(STORY),
        [{"id": made[i], "title": fresh[i].new.item.title, "first_seen_at": now} for i in needed],
    )
    result = []
    for index, story in enumerate(chosen):
        if story is None:
            story = made[index]
        elif story < 0:
            story = made[-1 - story]
        result.append(story)
    return Assigned(result, set(made.values()))


Seen = dict[str, list[tuple[datetime, int, int]]]
"""URL or fingerprint → (time, feed, story) of items that have it, newest first."""


def _same(found: list[tuple[datetime, int, int]] | None, item: Fresh, window: timedelta) -> int | None:
    for at, feed_id, story in found or ():
        apart = abs(at - item.at)
        if apart <= window and (feed_id != item.feed_id or apart <= SAME_FEED_APART):
            return story
    return None


def _exact(session: Session, fresh: Sequence[Fresh], lo: datetime, hi: datetime) -> tuple[Seen, Seen]:
    urls = sorted({f.new.item.url for f in fresh if f.new.item.url})
    prints = sorted({f.new.item.fingerprint for f in fresh})
    by_url: Seen = defaultdict(list)
    by_print: Seen = defaultdict(list)
    at = func.coalesce(ITEM.c.published_at, ITEM.c.seen_at)
    for start in range(0, max(len(urls), len(prints)), CHUNK):
        query = (
            select(ITEM.c.url, ITEM.c.fingerprint, ITEM.c.feed_id, ITEM.c.story_id, ITEM.c.published_at,
                   ITEM.c.seen_at)
            .where(ITEM.c.story_id.is_not(None))
            .where(or_(ITEM.c.url.in_(urls[start : start + CHUNK]),
                       ITEM.c.fingerprint.in_(prints[start : start + CHUNK])))
            .where(at >= lo, at <= hi)
            .order_by(ITEM.c.id.desc())
        )  # fmt: skip
        found: Any = session.connection().execute(query)  # untyped rows
        for url, fingerprint, feed_id, story, published, seen in found:
            entry = (published or seen, int(feed_id), int(story))
            if url in urls:
                by_url[url].append(entry)
            by_print[fingerprint].append(entry)
    return by_url, by_print


def _members(session: Session, clustered: Sequence[Fresh], lo: datetime, hi: datetime) -> list[tuple[Member, set[str]]]:
    """Stored items sharing informative words with the batch's clustered items, inside the window: each with
    the words it shares, most shared first."""
    keys = sorted({key for f in clustered if f.sketch is not None for key in f.sketch.index_keys()})
    if not keys:
        return []
    shared: dict[int, set[str]] = defaultdict(set)
    connection = session.connection()
    for start in range(0, len(keys), KEYS_PER_QUERY):
        parts = [
            select(STORY_KEY.c.key, STORY_KEY.c.item_id)
            .where(STORY_KEY.c.key == key, STORY_KEY.c.at >= lo, STORY_KEY.c.at <= hi)
            .order_by(STORY_KEY.c.at.desc())
            .limit(PER_KEY)
            .subquery()
            .select()
            for key in keys[start : start + KEYS_PER_QUERY]
        ]
        rows: Any = connection.execute(union_all(*parts))
        for key, item_id in rows:
            shared[int(item_id)].add(str(key))
    # The stories those items are in, and every clustered item of theirs inside the window: a story joins
    # only if all its items from other feeds agree (`choose`).
    ranked = sorted(shared, key=lambda item_id: -len(shared[item_id]))[: CANDIDATES * max(1, len(clustered))]
    story_ids: set[int] = set()
    for start in range(0, len(ranked), CHUNK):
        query = select(ITEM.c.story_id).where(ITEM.c.id.in_(ranked[start : start + CHUNK]))
        stories: Any = connection.execute(query)
        story_ids.update(int(story) for (story,) in stories if story is not None)
    members: list[tuple[Member, set[str]]] = []
    at = func.coalesce(ITEM.c.published_at, ITEM.c.seen_at)
    ordered = sorted(story_ids)
    for start in range(0, len(ordered), CHUNK):
        query = (
            select(ITEM.c.id, ITEM.c.story_id, ITEM.c.feed_id, ITEM.c.published_at, ITEM.c.seen_at, ITEM.c.sketch)
            .where(ITEM.c.story_id.in_(ordered[start : start + CHUNK]), ITEM.c.sketch.is_not(None))
            .where(at >= lo, at <= hi)
            .order_by(ITEM.c.id.desc())
        )
        found: Any = connection.execute(query)
        taken: Counter[int] = Counter()
        for item_id, story, feed_id, published, seen, text in found:
            taken[story] += 1
            if taken[story] > PER_STORY:
                continue  # a story's newest items speak for it
            member = Member(int(story), int(feed_id), published or seen, decode(text))
            members.append((member, shared.get(int(item_id), set())))
    return members


def index_rows(fresh: Sequence[Fresh], item_ids: Sequence[int | None]) -> list[dict[str, Any]]:
    """`story_key` rows for the clustered items that went in."""
    return [
        {"key": key, "at": item.at, "item_id": item_id}
        for item, item_id in zip(fresh, item_ids, strict=True)
        if item_id is not None and item.sketch is not None
        for key in item.sketch.index_keys()
    ]
