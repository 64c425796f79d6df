"""Alerting by story in the repository, on both databases: first alert, updates, the spread follow-up, the
layers' windows, and two instances escalating one story at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from monitor.config import FeedSpec
from monitor.pipeline.stories import StoryPolicy
from monitor.records import Item, NewItem, PollOutcome, RuleMatch
from monitor.store.alerting import Route
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from monitor.store.tables import ALERT, ITEM

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
NORMAL = RuleMatch("karabakh", "normal", ())
URGENT = RuleMatch("karabakh-casualties", "urgent", ())
TITLE = "Azerbaijan launches military offensive in Nagorno-Karabakh"
LEDE = "Azerbaijan has launched an offensive against Armenian separatists in Nagorno-Karabakh."


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    engine = open_engine(database)
    upgrade(engine)
    store = Store(engine)
    store.sync_feeds([FeedSpec(f"https://{name}.example/rss", name, timedelta(minutes=10)) for name in "abcdef"], NOW)
    yield store
    engine.dispose()


def route(matches: object) -> list[Route]:
    return [("desk", "t0", NOW)]


def new(key: str, *matches: RuleMatch, title: str = TITLE, lede: str = LEDE, published: datetime = NOW,
        url: str | None = None, fingerprint: str = "same-text") -> NewItem:  # fmt: skip
    item = Item(key=key, url=url, link=url, title=title, summary=lede, content="", published=published,
                fingerprint=fingerprint)  # fmt: skip
    return NewItem(item, matches, False)


def store_one(store: Store, feed: int, item: NewItem, now: datetime = NOW, spread: int | None = None) -> None:
    outcome = PollOutcome(feed_id=feed, status="ok", new_items=(item,), entries=1)
    store.record_poll(outcome, None, now, route, StoryPolicy(spread_alert=spread))


def alerts(store: Store) -> list[tuple[int, str, str, list[str], str]]:
    with store.engine.connect() as connection:
        query = select(ALERT.c.story_id, ALERT.c.kind, ALERT.c.note, ALERT.c.rules, ALERT.c.priority)
        return [(s, k, n, json.loads(r), p) for s, k, n, r, p in connection.execute(query.order_by(ALERT.c.id))]


def stories(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {str(key): int(story) for key, story in connection.execute(select(ITEM.c.key, ITEM.c.story_id))}


def test_a_story_alerts_once_then_on_escalation_then_when_it_spreads(store: Store) -> None:
    store_one(store, 1, new("a1", NORMAL), spread=4)
    store_one(store, 2, new("b1", NORMAL), spread=4)
    assert [(k, n) for _, k, n, _, _ in alerts(store)] == [("first", "")]
    store_one(store, 3, new("c1", NORMAL, URGENT), spread=4)
    assert [(k, n, r, p) for _, k, n, r, p in alerts(store)][1:] == [
        ("update", "now urgent, also karabakh-casualties", ["karabakh", "karabakh-casualties"], "urgent")
    ]
    store_one(store, 4, new("d1", NORMAL, URGENT), spread=4)  # nothing new, but the fourth outlet
    store_one(store, 5, new("e1", NORMAL), spread=4)  # a fifth: the follow-up went out already
    assert [(k, n) for _, k, n, _, _ in alerts(store)][2:] == [("spread", "now in 4 outlets")]
    assert len(set(stories(store).values())) == 1
    with store.engine.connect() as connection:
        assert len(connection.execute(select(ALERT.c.id)).all()) == 3
    views = {view.kind: view for view, _ in store.recent_alerts(10)}
    # Sent now, it names every outlet by now: the one that crossed the line, and the four others.
    assert views["spread"].note == "now in 4 outlets" and len(views["spread"].also) == 4


def test_the_url_and_content_layers_count_the_window(store: Store) -> None:
    store_one(store, 1, new("a1", NORMAL, url="https://x.example/a", fingerprint="f1"))
    # Another outlet with the same URL four days later: a new story (a daily roundup at a fixed address).
    later = NOW + timedelta(days=4)
    store_one(store, 2, new("b1", NORMAL, url="https://x.example/a", fingerprint="f2", title="Other", lede="x",
                            published=later), now=later)  # fmt: skip
    # The same text from a third outlet within the window joins the first.
    store_one(store, 3, new("c1", NORMAL, fingerprint="f1", title="t", lede="l", published=NOW + timedelta(hours=5)))
    found = stories(store)
    assert found["c1"] == found["a1"] != found["b1"]
    assert [k for _, k, _, _, _ in alerts(store)] == ["first", "first"]


def test_a_new_guid_on_the_same_text_joins_its_story_the_same_day_only(store: Store) -> None:
    store_one(store, 1, new("guid:1", NORMAL, fingerprint="column"))
    store_one(store, 1, new("guid:1-reset", NORMAL, fingerprint="column", published=NOW + timedelta(hours=1)))
    day2 = NOW + timedelta(days=1)
    store_one(store, 1, new("guid:2", NORMAL, fingerprint="column", published=day2), now=day2)
    found = stories(store)
    assert found["guid:1"] == found["guid:1-reset"] != found["guid:2"]
    assert [k for _, k, _, _, _ in alerts(store)] == ["first", "first"]


def test_two_instances_escalating_one_story_at_once_send_one_update(database: str) -> None:
    """Each instance stores an item of the story (a KEY SHARE lock on its row) and escalates it (the story row
    locked for update) in one transaction: they take turns, never deadlock, and announce the update once."""
    engines = [open_engine(database) for _ in range(2)]
    upgrade(engines[0])
    first, second = Store(engines[0]), Store(engines[1])
    first.sync_feeds([FeedSpec(f"https://{name}.example/rss", name, timedelta(minutes=10)) for name in "abc"], NOW)
    errors: list[BaseException] = []
    try:
        for round_ in range(8):
            text, title = f"same-text-{round_}", f"Round {round_}: {TITLE}"  # eight stories, one per round
            store_one(first, 1, new(f"a{round_}", NORMAL, fingerprint=text, title=title))
            barrier = threading.Barrier(2)

            def escalate(store: Store, feed: int, key: str, barrier: threading.Barrier = barrier,
                         text: str = text, title: str = title) -> None:  # fmt: skip
                barrier.wait()
                try:
                    store_one(store, feed, new(key, NORMAL, URGENT, fingerprint=text, title=title))
                except BaseException as e:
                    errors.append(e)

            threads = [
                threading.Thread(target=escalate, args=(s, f, f"{k}{round_}"))
                for s, f, k in ((first, 2, "b"), (second, 3, "c"))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        kinds: dict[int, list[str]] = {}
        for story, kind, _, _, _ in alerts(first):
            kinds.setdefault(story, []).append(kind)
        assert list(kinds.values()) == [["first", "update"]] * 8
    finally:
        for engine in engines:
            engine.dispose()


def test_the_stories_migration_keeps_what_stories_alerted_for(database: str) -> None:
    """A database of the first schema, with a story that alerted: after 0002 the story knows its rules and
    priority, so a later urgent item escalates it (an update). Without them the item would take itself for
    the story's first, find that alert there already, and the escalation would be lost."""
    engine = open_engine(database)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        for statement in (
            "INSERT INTO feed (id, config_url, url, active, created_at) VALUES (1, 'https://a.example/rss',"
            " 'https://a.example/rss', true, '2026-12-03 08:00:00+00:00')",
            "INSERT INTO feed (id, config_url, url, active, created_at) VALUES (2, 'https://b.example/rss',"
            " 'https://b.example/rss', true, '2026-12-03 08:00:00+00:00')",
            "INSERT INTO feed_state (feed_id, status, error_count, item_count, permanent_hits)"
            " VALUES (1, 'ok', 0, 1, 0), (2, 'ok', 0, 0, 0)",
            "INSERT INTO story (id, title, first_seen_at) VALUES (1, 'Old story', '2026-12-03 08:00:00+00:00')",
            "INSERT INTO item (id, feed_id, key, fingerprint, story_id, title, summary, content, published_at,"
            " seen_at, silent) VALUES (1, 1, 'a1', 'same-text', 1, 'Old story', '', '', '2026-12-03 08:00:00+00:00',"
            " '2026-12-03 08:00:00+00:00', false)",
            "INSERT INTO alert (id, story_id, item_id, rules, priority, created_at) VALUES (1, 1, 1, '[\"karabakh\"]',"
            " 'normal', '2026-12-03 08:00:00+00:00')",
        ):
            connection.exec_driver_sql(statement)
    if engine.dialect.name == "postgresql":  # rows given their ids by hand: move the sequences past them
        with engine.begin() as connection:
            for table in ("feed", "story", "item", "alert"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    upgrade(engine)
    store = Store(engine)
    try:
        store_one(store, 2, new("b1", NORMAL, URGENT, fingerprint="same-text", title="Old story", lede=""))
        assert [(k, p) for _, k, _, _, p in alerts(store)] == [("first", "normal"), ("update", "urgent")]
    finally:
        engine.dispose()
