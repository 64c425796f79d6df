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
the window, and only the `STORIES` stories sharing the most word weight with an item are compared.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, text, type_coerce
from sqlmodel import Session

from monitor.pipeline.stories import Member, Sketch, choose, decode, sketch
from monitor.records import NewItem
from monitor.store.bulk import insert_rows, new_ids
from monitor.store.tables import ITEM, STORY
from monitor.store.types import UTCDateTime

SAME_FEED_APART = timedelta(hours=12)
PER_KEY = 32
"""Index rows read per word: the newest inside the window. A rare word has fewer; a common one says little."""
CANDIDATES = 40
"""Items per new item whose stories are compared: those sharing the most words with it."""
PER_STORY = 8
"""Items of a candidate story compared, at most: its first and its newest."""
STORIES = 5
"""Candidate stories compared per new item: those sharing the most weight of informative words with it."""
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
    index = StoryIndex()
    for member in _members(session, clustered, lo, hi):
        index.add(member)
    chosen: list[int | None] = []
    for position, item in enumerate(fresh):
        story = _same(by_url.get(item.new.item.url or ""), item, window) or _same(
            by_print.get(item.new.item.fingerprint), item, window
        )
        if story is None and item.sketch is not None:
            story = choose(item.sketch, item.feed_id, item.at, index.candidates(item.sketch), window)
        placeholder = story if story is not None else -1 - position  # made below; later items may join it
        chosen.append(story)
        if item.new.item.url:
            by_url[item.new.item.url].append((item.at, item.feed_id, placeholder))
        by_print[item.new.item.fingerprint].append((item.at, item.feed_id, placeholder))
        if item.sketch is not None:  # the batch's own items are candidates for its later ones
            index.add(Member(placeholder, item.feed_id, item.at, item.sketch))
    needed = [position for position, story in enumerate(chosen) if story is None]
    made = dict(zip(needed, new_ids(session, STORY, len(needed)), strict=True))
    insert_rows(
        session,
        insert(STORY),
        [{"id": made[i], "title": fresh[i].new.item.title, "first_seen_at": now} for i in needed],
    )
    result = []
    for position, story in enumerate(chosen):
        if story is None:
            story = made[position]
        elif story < 0:
            story = made[-1 - story]
        result.append(story)
    return Assigned(result, set(made.values()))


class StoryIndex:
    """The candidate stories of a batch, by informative word: each story's first item and its newest, up to
    `PER_STORY` items (members arrive oldest first)."""

    def __init__(self) -> None:
        self._stories: dict[int, list[Member]] = {}
        self._by_key: dict[str, set[int]] = defaultdict(set)

    def add(self, member: Member) -> None:
        group = self._stories.setdefault(member.story_id, [])
        group.append(member)
        if len(group) > PER_STORY:
            del group[1]  # the story's first item (it set the event) and its newest speak for it
        for key in member.sketch.keys:
            self._by_key[key].add(member.story_id)

    def candidates(self, sketch: Sketch) -> list[Member]:
        """The items of the `STORIES` stories sharing the most weight of informative words with `sketch`."""
        shared: dict[int, float] = defaultdict(float)
        for key in sketch.keys:
            for story in self._by_key.get(key, ()):
                shared[story] += sketch.base[key]
        ranked = sorted(shared, key=lambda story: -shared[story])[:STORIES]
        return [member for story in ranked for member in self._stories[story]]


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
    at = type_coerce(func.coalesce(ITEM.c.published_at, ITEM.c.seen_at), UTCDateTime())
    wanted = set(urls)
    for start in range(0, max(len(urls), len(prints)), CHUNK):
        query = (
            select(ITEM.c.url, ITEM.c.fingerprint, ITEM.c.feed_id, ITEM.c.story_id, at)
            .where(ITEM.c.story_id.is_not(None))
            .where(or_(ITEM.c.url.in_(urls[start : start + CHUNK]),
                       ITEM.c.fingerprint.in_(prints[start : start + CHUNK])))
            .where(at >= lo, at <= hi)
            .order_by(ITEM.c.id.desc())
        )  # fmt: skip
        found: Any = session.connection().execute(query)  # untyped rows
        for url, fingerprint, feed_id, story, when in found:
            entry = (when, int(feed_id), int(story))
            if url in wanted:
                by_url[url].append(entry)
            by_print[fingerprint].append(entry)
    return by_url, by_print


def _members(session: Session, clustered: Sequence[Fresh], lo: datetime, hi: datetime) -> list[Member]:
    """The stored stories sharing informative words with the batch's clustered items, inside the window: the
    newest `PER_STORY` items of each."""
    keys = sorted({key for f in clustered if f.sketch is not None for key in f.sketch.keys})
    if not keys:
        return []
    shared: Counter[int] = Counter()
    connection = session.connection()
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start : start + KEYS_PER_QUERY]
        params: dict[str, Any] = {f"k{n}": key for n, key in enumerate(chunk)}
        rows: Any = connection.execute(_postings(len(chunk)), {**params, "lo": lo, "hi": hi})
        shared.update(int(item_id) for (item_id,) in rows)
    # The stories of the items sharing the most words, and their items inside the window: a story joins only
    # if all its items agree (`choose`).
    ranked = [item_id for item_id, _ in shared.most_common(CANDIDATES * len(clustered))]
    at = func.coalesce(ITEM.c.published_at, ITEM.c.seen_at)
    groups: dict[int, list[Member]] = defaultdict(list)
    for start in range(0, len(ranked), CHUNK):
        stories = select(ITEM.c.story_id).where(ITEM.c.id.in_(ranked[start : start + CHUNK])).scalar_subquery()
        query = (
            select(ITEM.c.story_id, ITEM.c.feed_id, ITEM.c.published_at, ITEM.c.seen_at, ITEM.c.sketch)
            .where(ITEM.c.story_id.in_(stories), ITEM.c.sketch.is_not(None), at >= lo, at <= hi)
            .order_by(ITEM.c.id)
        )
        found: Any = connection.execute(query)
        for story, feed_id, published, seen, encoded in found:
            groups[int(story)].append(Member(int(story), int(feed_id), published or seen, decode(encoded)))
    # The story's first item (it set the event) and its newest speak for it.
    return [m for group in groups.values() for m in (group if len(group) <= PER_STORY else
                                                       [group[0], *group[1 - PER_STORY :]])]  # fmt: skip


@lru_cache(maxsize=KEYS_PER_QUERY)
def _postings(count: int) -> Any:
    """The index rows of `count` words inside the window, newest `PER_KEY` of each: one statement, built once
    per word count (a statement of a hundred sub-selects cost more to build than to run)."""
    part = (
        "SELECT item_id FROM (SELECT item_id FROM story_key WHERE key = :k{n} AND at >= :lo AND at <= :hi"
        f" ORDER BY at DESC LIMIT {PER_KEY}) AS p{{n}}"
    )
    sql = " UNION ALL ".join(part.format(n=n) for n in range(count))
    when = UTCDateTime()
    return text(sql).bindparams(bindparam("lo", type_=when), bindparam("hi", type_=when))


def index_rows(fresh: Sequence[Fresh], item_ids: Sequence[int | None]) -> list[dict[str, Any]]:
    """`story_key` rows for the clustered items that went in."""
    return [
        {"key": key, "at": item.at, "item_id": item_id}
        for item, item_id in zip(fresh, item_ids, strict=True)
        if item_id is not None and item.sketch is not None
        for key in item.sketch.keys
    ]
