"""The service's rules beyond the happy path, on real local parts (feed farm, webhook sink, SQLite file):
backfill on a new feed, digests, the hourly cap, channels removed with alerts pending, saved feeds, and the
read-only commands."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.store.engine import open_engine
from monitor.store.repo import Store
from tests.conftest import cli
from tests.harness import Harness, rss
from tests.servers import Route


def test_new_feed_backfill_alerts_only_recent_items(harness: Harness) -> None:
    now = harness.clock.now
    harness.farm.routes["/x.xml"] = Route(rss(
        ("old", "Stepanakert archive story", now - timedelta(days=3)),
        ("undated", "Stepanakert undated story", None),
        ("recent", "Stepanakert breaking story", now - timedelta(hours=2)),
    ))  # fmt: skip
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (3, 1)
    assert len(harness.console) == 1 and "breaking" in harness.console[0]
    # After the first poll, an undated new item alerts like any other.
    harness.farm.routes["/x.xml"] = Route(rss(("later", "Karabakh later story", None)))
    report, _ = harness.cycle()
    assert report.alerts == 1 and "later" in harness.console[-1]


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "pollers"])
def test_after_a_restart_only_changed_bodies_read_keys_and_all_in_one_statement(harness: Harness, workers: int) -> None:
    """A feed's stored keys (what the pre-scan skips) are read from the database only when its body has
    changed since the service started, and for the feeds whose bodies come in meanwhile in one statement:
    a 304 cycle after a restart reads none; thirty changed bodies take fewer statements than thirty (how
    many depends on how the bodies trickle in: on one host, two requests at a time)."""
    now = harness.clock.now
    paths = [f"/f{n}.xml" for n in range(30)]
    for n, path in enumerate(paths):
        harness.farm.routes[path] = Route(rss((f"{n}-a", f"Oslo story {n}", now), (f"{n}-b", f"Bergen {n}", now)))
    harness.feeds(*(harness.farm.url(path) for path in paths))
    report, _ = harness.cycle(workers=workers)
    assert (report.polled, report.new_items) == (30, 60)

    def key_reads(statements: list[str]) -> int:
        return sum(1 for sql in statements if "FROM item WHERE feed_id" in sql)

    statements: list[str] = []
    report, _ = harness.cycle(workers=workers, statements=statements)  # every feed answers 304
    assert (report.not_modified, key_reads(statements)) == (30, 0)
    for n, path in enumerate(paths):
        harness.farm.routes[path] = Route(
            rss(
                (f"{n}-c", f"Stepanakert story {n}", now),
                (f"{n}-a", f"Oslo story {n}", now),
                (f"{n}-b", f"Bergen {n}", now),
            )
        )
    statements.clear()
    report, _ = harness.cycle(workers=workers, statements=statements)
    assert (report.new_items, report.alerts) == (30, 30)
    assert 1 <= key_reads(statements) < len(paths), key_reads(statements)


def test_a_burst_of_alerts_is_all_recorded_as_sent(harness: Harness) -> None:
    """Sends are marked in groups (one transaction for those sent meanwhile): every one still ends marked,
    and the next delivery run sends none again."""
    now = harness.clock.now
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{i}", f"Karabakh story {i}", now) for i in range(45))))
    report, deliveries = harness.cycle()
    assert (report.alerts, deliveries.sent, len(harness.console)) == (45, 45, 45)
    engine = open_engine(harness.db)
    try:
        alerts = Store(engine).recent_alerts(100)
    finally:
        engine.dispose()
    assert len(alerts) == 45 and all(d.status == "sent" and d.sent_at for _, ds in alerts for d in ds)
    _, again = harness.cycle(poll=False)
    assert (again.sent, len(harness.console)) == (0, 45)


def test_digest_channel_waits_for_its_schedule_and_sends_one_message(harness: Harness) -> None:
    harness.clock.now = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 09:00 in Baku
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\nmode = "digest"\n'
                     'schedule = "0 13 * * *"\ntimezone = "Asia/Baku"\n')  # fmt: skip
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{i}", f"Karabakh story {i}", harness.clock.now) for i in range(3))))
    harness.feeds(harness.farm.url("/x.xml"), backfill="30d")
    report, delivered = harness.cycle()
    assert report.alerts == 3 and delivered.sent == 0 and harness.sink.attempts == 0
    harness.clock.now = datetime(2026, 11, 25, 8, 59, tzinfo=UTC)  # 12:59 in Baku
    assert harness.cycle(poll=False)[1].sent == 0
    harness.clock.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 13:00 in Baku
    assert harness.cycle(poll=False)[1].sent == 3
    [message] = harness.sink.received
    assert message["body"]["title"] == "monitor digest: 3 stories"
    assert all(f"«Karabakh» story {i}" in message["body"]["message"] for i in range(3))


def test_hourly_cap_folds_the_rest_into_one_summary(harness: Harness) -> None:
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\nmax_per_hour = 3\n')
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{i}", f"Karabakh story {i}", harness.clock.now) for i in range(6))))
    _, delivered = harness.cycle()
    assert delivered.sent == 6
    titles = [r["body"]["title"] for r in harness.sink.received]
    assert len(titles) == 3  # two single alerts and one summary of the other four
    assert titles[-1] == "monitor: more alerts this hour: 4 stories"
    # The hour is used up: the next story waits, then goes out.
    harness.farm.routes["/x.xml"] = Route(rss(("s9", "Karabakh story 9", harness.clock.now)))
    _, delivered = harness.cycle()
    assert delivered.sent == 0 and len(harness.sink.received) == 3
    harness.clock.now += timedelta(hours=1, minutes=6)
    assert harness.cycle(poll=False)[1].sent == 1
    assert "Karabakh story 9" in harness.sink.received[-1]["body"]["title"]


def test_an_alert_held_by_the_hourly_cap_keeps_its_retries(harness: Harness) -> None:
    """Waiting for the hour to free a slot is not a failed send: an alert held a dozen times that then meets
    a failing webhook is retried later, not given up."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\nmax_per_hour = 1\n')
    harness.farm.routes["/x.xml"] = Route(rss(("s1", "Karabakh story 1", harness.clock.now)))
    assert harness.cycle()[1].sent == 1
    harness.farm.routes["/x.xml"] = Route(rss(("s2", "Karabakh story 2", harness.clock.now)))
    harness.cycle()
    for _ in range(11):  # held, and looked at again every 5 minutes for the rest of the hour
        harness.clock.now += timedelta(minutes=5)
        assert harness.cycle(poll=False)[1].sent == 0
    harness.sink.fail_with = 503
    harness.clock.now += timedelta(minutes=10)
    assert harness.cycle(poll=False)[1].failed == 1
    engine = open_engine(harness.db)
    try:
        [(_, [delivery])] = [a for a in Store(engine).recent_alerts(10) if "story 2" in a[0].title]
    finally:
        engine.dispose()
    assert delivery.status == "pending" and delivery.attempts == 1, delivery


def test_channel_removed_with_alerts_pending_cancels_them(harness: Harness) -> None:
    harness.channels(
        f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n\n'
        f'[channels.night]\nurls = ["{harness.sink.url("/night")}"]\n'
    )
    harness.sink.fail_with = 503
    harness.farm.routes["/x.xml"] = Route(rss(("s1", "Karabakh story", harness.clock.now)))
    _, delivered = harness.cycle()
    assert delivered.failed == 2
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.fail_with = None
    harness.clock.now += timedelta(minutes=5)
    _, delivered = harness.cycle(poll=False)
    assert (delivered.sent, delivered.cancelled) == (1, 1)
    assert [r["path"] for r in harness.sink.received] == ["/hook"]
    result = cli("alerts", "--db", harness.db)
    assert re.search(r"night\[t[0-9a-f]{8}\]: cancelled", result.stdout), result.stdout
    assert re.search(r"desk\[t[0-9a-f]{8}\]: sent", result.stdout), result.stdout


def test_saved_feed_from_a_path(harness: Harness) -> None:
    saved = harness.dir / "saved.xml"
    saved.write_bytes(rss(("f1", "Stepanakert from a saved file", harness.clock.now)))
    harness.feeds("saved.xml", saved.as_uri().replace("saved.xml", "missing.xml"))
    report, _ = harness.cycle()
    assert report.alerts == 1 and report.failed == 1
    assert "file not found" in report.failures[0][1]


def test_feeds_and_alerts_commands(harness: Harness) -> None:
    harness.farm.routes["/x.xml"] = Route(rss(("s1", "Stepanakert story", harness.clock.now)))
    harness.feeds(harness.farm.url("/x.xml"), harness.farm.url("/gone.xml"))
    harness.farm.routes["/gone.xml"] = Route(b"", status=410)
    harness.cycle()
    feeds = cli("feeds", "--db", harness.db)
    assert feeds.code == 0
    assert "gone" in feeds.stdout and "stopped" in feeds.stdout and "HTTP 410" in feeds.stdout
    alerts = cli("alerts", "--db", harness.db)
    assert alerts.code == 0 and "Stepanakert story" in alerts.stdout and "console: sent" in alerts.stdout


def test_listings_give_every_row_as_json_lines_or_tab_separated_text_failing_first(harness: Harness) -> None:
    """Piped, `feeds` and `alerts` print a header and every row, tab-separated; `--json` prints JSON Lines
    (DESIGN.md §4, times in UTC with Z); the failing feed comes first; `--limit` caps the rows."""
    now = harness.clock.now
    harness.farm.routes["/x.xml"] = Route(rss(("s1", "Stepanakert story", now), ("s2", "Karabakh talks", now)))
    harness.farm.routes["/gone.xml"] = Route(b"", status=410)
    harness.feeds(harness.farm.url("/x.xml"), harness.farm.url("/gone.xml"))
    harness.cycle()
    text = cli("feeds", "--db", harness.db).stdout.splitlines()
    assert text[0].split("\t") == ["feed", "status", "last success", "last error", "items", "next poll", "warning"]
    assert len(text) == 3 and text[1].split("\t")[1] == "gone ×1" and text[2].split("\t")[1] == "ok"
    rows = [json.loads(line) for line in cli("feeds", "--json", "--db", harness.db).stdout.splitlines()]
    assert [(r["status"], r["items"], r["next_poll"]) for r in rows] == [
        ("gone", 0, None),
        ("ok", 2, rows[1]["next_poll"]),
    ]
    assert rows[1]["last_success"].endswith("Z") and rows[0]["last_error"].startswith("HTTP 410")
    alerts = [json.loads(line) for line in cli("alerts", "--json", "--db", harness.db).stdout.splitlines()]
    assert [a["title"] for a in alerts] == ["Karabakh talks", "Stepanakert story"]  # newest first
    assert alerts[0]["deliveries"][0] | {"sent": None} == {
        "channel": "console",
        "target": "console",
        "status": "sent",
        "attempts": 1,
        "error": None,
        "sent": None,
    }
    assert alerts[0]["detected"].endswith("Z") and alerts[0]["rules"] == ["karabakh"]
    limited = cli("alerts", "--json", "--limit", "1", "--db", harness.db).stdout.splitlines()
    assert [json.loads(line)["title"] for line in limited] == ["Karabakh talks"]
    assert len(cli("feeds", "--limit", "1", "--db", harness.db).stdout.splitlines()) == 2


def test_read_only_commands_need_an_existing_database(tmp_path: Path) -> None:
    result = cli("feeds", "--db", f"sqlite:///{tmp_path}/none.db")
    assert result.code == 1 and "run `monitor run` first" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_notify_test_and_db_upgrade(harness: Harness) -> None:
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    result = cli("notify-test", "--config-dir", str(harness.dir))
    assert result.code == 0 and "desk json://127.0.0.1" in result.stdout and ": sent" in result.stdout
    assert harness.sink.received[0]["body"]["title"] == "monitor: test message"
    assert cli("notify-test", "nope", "--config-dir", str(harness.dir)).code == 1
    harness.sink.fail_with = 500
    failed = cli("notify-test", "desk", "--config-dir", str(harness.dir))
    assert failed.code == 1 and "FAILED" in failed.stdout
    upgraded = cli("db", "upgrade", "--db", harness.db)
    assert upgraded.code == 0 and "up to date" in upgraded.stdout


def test_parsing_in_worker_processes_gives_the_same_result(harness: Harness) -> None:
    """`monitor run` parses in a process pool; the pre-scan then cuts known entries out of changed bodies."""
    now = harness.clock.now
    harness.farm.routes["/x.xml"] = Route(rss(("a", "Stepanakert story", now), ("b", "Oslo weather", now)))
    report, _ = harness.cycle(workers=1)
    assert (report.new_items, report.alerts) == (2, 1)
    harness.farm.routes["/x.xml"] = Route(rss(("a", "Stepanakert story", now), ("b", "Oslo weather", now),
                                              ("c", "Karabakh new story", now)))  # fmt: skip
    report, _ = harness.cycle(workers=1)
    assert (report.new_items, report.alerts) == (1, 1)
    assert "Karabakh new story" in harness.console[-1]
