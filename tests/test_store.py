"""The repository on real databases (a SQLite file and the local PostgreSQL): leases, feed state, dedup
across feeds, the outbox. Every case runs on both."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from monitor.config import FeedSpec
from monitor.records import Hit, Item, NewItem, PollOutcome, RuleMatch
from monitor.store.alerting import Route
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    engine = open_engine(database)
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


def select_count(table: Any) -> Any:
    return select(func.count()).select_from(table)


def spec(url: str, name: str | None = None) -> FeedSpec:
    return FeedSpec(url, name, timedelta(minutes=10))


def item(key: str, url: str | None, fingerprint: str, title: str = "Shelling in Stepanakert") -> Item:
    return Item(key=key, url=url, link=url, title=title, summary="", content="", published=NOW, fingerprint=fingerprint)


MATCH = RuleMatch("escalation", "urgent", (Hit("khankendi", "Stepanakert", "title", 12, 23),))


def route(matches: object) -> list[Route]:
    return [("desk", "ta", NOW), ("desk", "tb", NOW)]


def ok(feed_id: int, *items: NewItem, permanent_url: str | None = None) -> PollOutcome:
    return PollOutcome(
        feed_id=feed_id, status="ok", new_items=items, etag='"e1"', body_hash="h", permanent_url=permanent_url
    )


def test_sync_claim_and_leases(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss", "A"), spec("https://b.example/rss")], NOW)
    first = store.claim_due(NOW, 10, LEASE, "one")
    assert sorted(t.url for t in first) == ["https://a.example/rss", "https://b.example/rss"]
    assert all(t.first_poll for t in first)
    # Leased: nobody else gets them until the lease runs out.
    assert store.claim_due(NOW, 10, LEASE, "two") == []
    assert len(store.claim_due(NOW + LEASE + timedelta(seconds=1), 10, LEASE, "two")) == 2
    # A poll recorded with its next due time releases the lease.
    feed_a = next(t for t in first if t.name == "A")
    store.record_poll(ok(feed_a.feed_id), NOW + timedelta(minutes=10), NOW, route)
    assert store.claim_due(NOW + timedelta(minutes=9), 10, LEASE, "x", exclude=()) == []
    assert feed_a.feed_id in [t.feed_id for t in store.claim_due(NOW + timedelta(minutes=11), 10, LEASE, "x")]
    # `every` ignores due times, `exclude` skips feeds already polled in this cycle.
    later = NOW + timedelta(hours=1)
    every = store.claim_due(later, 10, LEASE, "y", every=True, exclude=[feed_a.feed_id])
    assert [t.url for t in every] == ["https://b.example/rss"]


def test_removed_and_readded_feed_keeps_its_seen_keys(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    store.record_poll(ok(task.feed_id, NewItem(item("guid:1", "https://a.example/1", "f1"), (MATCH,), False)),
                      NOW + timedelta(minutes=10), NOW, route)  # fmt: skip
    store.sync_feeds([], NOW)
    assert store.claim_due(NOW + timedelta(days=1), 10, LEASE, "one", every=True) == []
    assert [f.active for f in store.feed_health()] == [False]
    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [again] = store.claim_due(NOW + timedelta(days=1), 10, LEASE, "one", every=True)
    assert again.feed_id == task.feed_id
    assert store.recent_keys([again.feed_id], 10) == {again.feed_id: ["guid:1"]}


def test_recent_keys_are_the_newest_stored_first(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss"), spec("https://b.example/rss")], NOW)
    a, b = sorted(store.claim_due(NOW, 10, LEASE, "one"), key=lambda t: t.url)
    for n in (1, 2, 3):
        new = NewItem(item(f"guid:{n}", f"https://a.example/{n}", f"f{n}"), (), False)
        store.record_poll(ok(a.feed_id, new), NOW + timedelta(minutes=10), NOW, route)
    assert store.recent_keys([a.feed_id, b.feed_id], 2) == {a.feed_id: ["guid:3", "guid:2"], b.feed_id: []}


def test_failure_backoff_state_and_gone(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    failed = PollOutcome(feed_id=task.feed_id, status="failed", error="HTTP 500 Internal Server Error")
    store.record_poll(failed, NOW + timedelta(minutes=20), NOW, route)
    [health] = store.feed_health()
    assert (health.status, health.error_count, health.last_error) == ("failing", 1, "HTTP 500 Internal Server Error")
    [task] = store.claim_due(NOW + timedelta(minutes=21), 10, LEASE, "one")
    assert task.error_count == 1
    store.record_poll(ok(task.feed_id), NOW + timedelta(minutes=30), NOW, route)
    [health] = store.feed_health()
    assert (health.status, health.error_count, health.last_error) == ("ok", 0, None)
    [task] = store.claim_due(NOW + timedelta(hours=1), 10, LEASE, "one")
    assert task.etag == '"e1"' and not task.first_poll
    store.record_poll(PollOutcome(feed_id=task.feed_id, status="gone", error="HTTP 410 Gone"), None, NOW, route)
    assert store.claim_due(NOW + timedelta(days=30), 10, LEASE, "one", every=True) == []
    [health] = store.feed_health()
    assert health.status == "gone" and health.last_error == "HTTP 410 Gone"


def test_permanent_redirect_moves_the_feed_after_three_polls(store: Store) -> None:
    store.sync_feeds([spec("https://old.example/rss")], NOW)
    moved = "https://new.example/rss"
    for poll in range(3):
        [task] = store.claim_due(NOW + timedelta(hours=poll), 10, LEASE, "one", every=True)
        assert task.url == "https://old.example/rss"
        store.record_poll(ok(task.feed_id, permanent_url=moved), NOW, NOW, route)
    [task] = store.claim_due(NOW + timedelta(hours=4), 10, LEASE, "one", every=True)
    assert task.url == moved and task.etag is None
    # The config still names the old URL: the row keeps following it.
    store.sync_feeds([spec("https://old.example/rss")], NOW)
    assert [f.url for f in store.feed_health()] == [moved]


def test_same_story_across_feeds_alerts_once(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss", "A"), spec("https://b.example/rss", "B"),
                      spec("https://c.example/rss", "C")], NOW)  # fmt: skip
    tasks = {t.name or t.url: t for t in store.claim_due(NOW, 10, LEASE, "one")}
    story = NewItem(item("guid:a1", "https://news.example/1", "fp-1"), (MATCH,), False)
    stored = store.record_poll(ok(tasks["A"].feed_id, story), NOW, NOW, route)
    assert (stored.new_items, stored.alerts, stored.deliveries) == (1, 1, 2)
    # Same canonical URL in another feed; then same content under another URL in a third.
    same_url = NewItem(item("guid:b1", "https://news.example/1", "fp-other", "Other words"), (MATCH,), False)
    same_text = NewItem(item("guid:c1", "https://c.example/x", "fp-1"), (MATCH,), False)
    assert store.record_poll(ok(tasks["B"].feed_id, same_url), NOW, NOW, route).alerts == 0
    assert store.record_poll(ok(tasks["C"].feed_id, same_text), NOW, NOW, route).alerts == 0
    # The same entry again in its own feed is not even new.
    assert store.record_poll(ok(tasks["A"].feed_id, story), NOW, NOW, route).new_items == 0
    [(alert, deliveries)] = store.recent_alerts(10)
    assert alert.outlet == "A" and sorted(alert.also) == ["B", "C"]
    assert alert.rules == ("escalation",) and alert.priority == "urgent"
    assert [h.text for h in alert.hits] == ["Stepanakert"]
    assert [(d.channel, d.target, d.status) for d in deliveries] == [
        ("desk", "ta", "pending"),
        ("desk", "tb", "pending"),
    ]


def test_a_claim_of_many_alerts_gives_each_its_own_hits_and_outlets(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss", "A"), spec("https://b.example/rss", "B")], NOW)
    tasks = {t.name: t for t in store.claim_due(NOW, 10, LEASE, "one")}
    lachin = RuleMatch("corridor", "high", (Hit("lachin", "Lachin", "title", 0, 6),))
    first = NewItem(item("guid:a1", "https://news.example/1", "fp-1"), (MATCH,), False)
    second = NewItem(item("guid:a2", "https://news.example/2", "fp-2", "Lachin corridor"), (lachin, MATCH), False)
    store.record_poll(ok(tasks["A"].feed_id, first, second), NOW, NOW, route)
    store.record_poll(ok(tasks["B"].feed_id, NewItem(item("guid:b1", "https://news.example/2", "x"), (), False)),
                      NOW, NOW, route)  # fmt: skip
    views = {task.alert.title: task.alert for task in store.claim_deliveries(NOW, 10, LEASE)}
    assert [h.text for h in views["Shelling in Stepanakert"].hits] == ["Stepanakert"]
    assert [h.text for h in views["Lachin corridor"].hits] == ["Lachin", "Stepanakert"]
    assert (views["Shelling in Stepanakert"].also, views["Lachin corridor"].also) == ((), ("B",))


def test_silent_items_are_stored_without_alert(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    old = NewItem(item("guid:old", "https://a.example/old", "fp-old"), (MATCH,), True)
    stored = store.record_poll(ok(task.feed_id, old), NOW, NOW, route)
    assert (stored.new_items, stored.alerts) == (1, 0)
    assert store.recent_alerts(10) == []


def test_outbox_claim_done_retry_and_dead(store: Store) -> None:
    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    store.record_poll(
        ok(task.feed_id, NewItem(item("guid:1", "https://a.example/1", "f1"), (MATCH,), False)), NOW, NOW, route
    )
    first = store.claim_deliveries(NOW, 10, LEASE)
    assert [(d.channel, d.target, d.attempts) for d in first] == [("desk", "ta", 1), ("desk", "tb", 1)]
    assert first[0].idempotency_key != first[1].idempotency_key
    assert store.claim_deliveries(NOW, 10, LEASE) == []  # leased
    store.delivery_done([first[0].delivery_id], NOW)
    store.delivery_failed(first[1].delivery_id, "HTTP 503", NOW + timedelta(minutes=1))
    assert store.claim_deliveries(NOW + timedelta(seconds=30), 10, LEASE) == []  # not due yet
    [retry] = store.claim_deliveries(NOW + timedelta(minutes=2), 10, LEASE)
    assert (retry.delivery_id, retry.attempts) == (first[1].delivery_id, 2)
    store.delivery_failed(retry.delivery_id, "550 mailbox unavailable", None, "dead")
    assert store.claim_deliveries(NOW + timedelta(days=1), 10, LEASE) == []
    [(_, deliveries)] = store.recent_alerts(10)
    assert [(d.status, d.last_error) for d in deliveries] == [("sent", None), ("dead", "550 mailbox unavailable")]
    assert store.sent_since("desk", "ta", NOW - timedelta(hours=1)) == 1


def test_concurrent_claims_never_share_a_feed(database: str, store: Store) -> None:
    """Two instances claiming at once (threads with their own engines) get disjoint feeds."""
    store.sync_feeds([spec(f"https://f{i}.example/rss") for i in range(40)], NOW)
    claimed: list[list[int]] = [[], []]

    def claim(slot: int) -> None:
        engine = open_engine(database)
        other = Store(engine)
        for _ in range(10):
            claimed[slot].extend(t.feed_id for t in other.claim_due(NOW, 3, LEASE, f"instance-{slot}"))
        engine.dispose()

    threads = [threading.Thread(target=claim, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 40


def _pending_deliveries(store: Store, alerts: int) -> None:
    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    items = [
        NewItem(item(f"guid:{n}", f"https://a.example/{n}", f"f{n}", f"Story {n}"), (MATCH,), False)
        for n in range(alerts)
    ]
    store.record_poll(ok(task.feed_id, *items), NOW, NOW, route)


def _psycopg(database: str) -> Any:
    import psycopg

    return psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://"))


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_delivery_claim_skips_rows_another_instance_has_locked(database: str, store: Store) -> None:
    """Another instance in the middle of its claim holds row locks on some deliveries: this claim takes the
    others, and neither waits for nor takes the locked ones (without the row lock it takes them too)."""
    _pending_deliveries(store, 3)
    with _psycopg(database) as other:
        locked = [row[0] for row in other.execute("SELECT id FROM delivery ORDER BY id LIMIT 2 FOR UPDATE")]
        claimed: list[int] = []
        claimer = threading.Thread(
            target=lambda: claimed.extend(d.delivery_id for d in store.claim_deliveries(NOW, 10, LEASE))
        )
        claimer.start()
        claimer.join(timeout=20)
        assert not claimer.is_alive(), "the claim waited on rows another instance holds"
        other.rollback()
    assert len(claimed) == 4 and not set(claimed) & set(locked), (claimed, locked)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_feed_claim_skips_feeds_another_instance_has_locked(database: str, store: Store) -> None:
    """Another instance in the middle of its claim holds row locks on some feeds: this claim takes the others
    at once (without the row lock it would lease those too, and both instances would poll them)."""
    store.sync_feeds([spec(f"https://f{i}.example/rss") for i in range(5)], NOW)
    with _psycopg(database) as other:
        locked = [row[0] for row in other.execute("SELECT feed_id FROM feed_state ORDER BY feed_id LIMIT 2 FOR UPDATE")]
        claimed: list[int] = []
        claimer = threading.Thread(
            target=lambda: claimed.extend(t.feed_id for t in store.claim_due(NOW, 10, LEASE, "b"))
        )
        claimer.start()
        claimer.join(timeout=20)
        assert not claimer.is_alive(), "the claim waited on feeds another instance holds"
        other.rollback()
    assert len(claimed) == 3 and not set(claimed) & set(locked), (claimed, locked)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_delivery_claims_on_postgres_take_turns(database: str, store: Store) -> None:
    """One instance claims at a time (a digest's deliveries go out as one message, the hourly cap counts
    one sender): a claim waits while another instance holds the claim lock, then sees what that one took."""
    from monitor.store.repo import DELIVERY_CLAIM_LOCK

    _pending_deliveries(store, 2)
    with _psycopg(database) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (DELIVERY_CLAIM_LOCK,))
        other.execute("UPDATE delivery SET lease_until = %s", (NOW + LEASE,))  # it claims every delivery
        claimed: list[int] = []
        claimer = threading.Thread(
            target=lambda: claimed.extend(d.delivery_id for d in store.claim_deliveries(NOW, 10, LEASE))
        )
        claimer.start()
        claimer.join(timeout=2)
        assert claimer.is_alive(), "the claim did not wait for the other instance's claim"
        other.commit()
        claimer.join(timeout=20)
    assert not claimer.is_alive() and claimed == []


def test_migration_0005_keeps_deliveries_stored_by_position(database: str, store: Store) -> None:
    """Deliveries stored before target keys name a position: through 0005 they keep it as text, and a channel
    still finds that target by position; a key never reads as a position. A feed password stored before is
    masked."""
    from alembic import command
    from alembic.config import Config

    from monitor.config.loader import ChannelSpec
    from monitor.store import engine as engine_module

    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    legacy = lambda matches: [("desk", "0", NOW), ("desk", "1", NOW)]  # noqa: E731 - positions, as before 0005
    store.record_poll(
        ok(task.feed_id, NewItem(item("guid:1", "https://a.example/1", "f1"), (MATCH,), False)), NOW, NOW, legacy
    )
    config = Config()
    config.set_main_option("script_location", str(engine_module._MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        connection.execute(text("UPDATE feed SET config_url = 'https://desk:pw-Secret9@a.example/rss'"))
    upgrade(store.engine)
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT config_url, url FROM feed")).one() == (
            "https://desk:***@a.example/rss",
            "https://a.example/rss",
        )
    claimed = store.claim_deliveries(NOW, 10, LEASE)
    assert sorted(d.target for d in claimed) == ["0", "1"]
    channel = ChannelSpec("desk", ("json://a", "json://b"), ("a", "b"), keys=("t00000000", "t11111111"))
    assert [channel.target(k) for k in ("0", "1", "2", "t11111111", "tffffffff")] == [0, 1, None, 1, None]


def test_retention_prunes_alerts_and_texts_and_keeps_keys_and_pending(store: Store) -> None:
    """On both databases: an alert past the retention goes with its sent delivery, one with a delivery still
    pending stays with its item's text; items past it keep their keys and lose their text and matches."""
    from monitor.store.retention import prune
    from monitor.store.tables import ALERT, DELIVERY, ITEM
    from monitor.store.tables import MATCH as MATCHES

    store.sync_feeds([spec("https://a.example/rss")], NOW)
    [task] = store.claim_due(NOW, 10, LEASE, "one")
    items = [
        NewItem(item(f"guid:{n}", f"https://a.example/{n}", f"f{n}", f"Story {n}"), (MATCH,), False) for n in range(3)
    ]
    store.record_poll(ok(task.feed_id, *items), NOW, NOW, lambda matches: [("desk", "ta", NOW)])
    claimed = store.claim_deliveries(NOW, 10, LEASE)
    store.delivery_done([d.delivery_id for d in claimed[:2]], NOW)  # the third stays pending
    later = NOW + timedelta(days=100)
    while prune(store.engine, later - timedelta(days=90)):
        pass
    with store.engine.connect() as connection:
        assert connection.execute(select_count(ALERT)).scalar_one() == 1
        assert connection.execute(select_count(DELIVERY)).scalar_one() == 1
        assert connection.execute(select_count(ITEM)).scalar_one() == 3
        texts = connection.execute(text("SELECT title FROM item ORDER BY id")).scalars().all()
        assert texts == ["", "", "Story 2"]
        assert connection.execute(select_count(MATCHES)).scalar_one() == 1


def test_the_head_revision_constant_is_alembics_head() -> None:
    """`engine.HEAD` lets a database at the newest migration skip Alembic: it must name that migration."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from monitor.store import engine as engine_module

    config = Config()
    config.set_main_option("script_location", str(engine_module._MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == engine_module.HEAD


def test_instances_started_together_sync_the_same_feeds_without_an_error(database: str) -> None:
    """Several instances read one feeds.toml at once: each inserts the feeds it does not see yet, and a row
    another instance inserted meanwhile is no error (before, one logged a unique-constraint traceback)."""
    engines = [open_engine(database) for _ in range(4)]
    upgrade(engines[0])
    specs = [spec(f"https://outlet{n}.example/rss") for n in range(300)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def sync(engine: object) -> None:
        store = Store(engine)  # type: ignore[arg-type]
        start.wait()
        try:
            store.sync_feeds(specs, NOW)
        except BaseException as error:  # any error is the failure
            errors.append(error)

    try:
        threads = [threading.Thread(target=sync, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        claimed = Store(engines[0]).claim_due(NOW, 1000, LEASE, "one")
        assert sorted(task.url for task in claimed) == sorted(s.url for s in specs)
    finally:
        for engine in engines:
            engine.dispose()
