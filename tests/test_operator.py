"""`monitor stats` and the metrics endpoint against real poll cycles: a loopback feed farm, a real webhook sink
reached through Apprise, real SQLite files and the local PostgreSQL. The counters must equal what the
cycles did, as the database records it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from monitor.metrics import Metrics, MetricsServer
from monitor.service import CycleReport, DeliveryReport
from monitor.store.engine import open_engine
from monitor.store.stats import database_problem, feed_status_counts
from monitor.store.tables import ALERT, DELIVERY, FEED, ITEM, MATCH
from tests.conftest import REPO, cli
from tests.servers import FeedFarm, Route, WebhookSink, running
from tests.test_e2e import QUIET, STORY_1, STORY_2, STORY_4, atom, rss, run_cycle

KEYWORDS = (REPO / "config" / "keywords.toml").read_text(encoding="utf-8")


@dataclass
class Desk:
    farm: FeedFarm
    webhook: WebhookSink
    config_dir: Path
    database: str


@pytest.fixture
def desk(tmp_path: Path, database: str) -> Iterator[Desk]:
    farm, webhook = FeedFarm(), WebhookSink()
    farm.routes["/a.xml"] = Route(rss([STORY_1, QUIET]))
    farm.routes["/b.atom"] = Route(atom([STORY_2]), content_type="application/atom+xml")
    farm.routes["/broken.xml"] = Route(b"<rss>oops</rss>", status=500)
    farm.routes["/login.xml"] = Route(b"<!DOCTYPE html><html><body>log in</body></html>", content_type="text/html")
    with running(farm, webhook):
        config_dir = tmp_path / "config"
        (config_dir / "sources").mkdir(parents=True)
        (config_dir / "sources" / "karabakh-2023-09.txt").write_text("source", encoding="utf-8")
        (config_dir / "keywords.toml").write_text(KEYWORDS, encoding="utf-8")
        feeds = "".join(f'[[feeds]]\nurl = "{farm.url(p)}"\nname = "{n}"\n\n' for p, n in
                        [("/a.xml", "Outlet A"), ("/b.atom", "Outlet B"), ("/broken.xml", "Broken"),
                         ("/login.xml", "Login wall")])  # fmt: skip
        (config_dir / "feeds.toml").write_text('[fetch]\ntimeout = "3s"\nallow_private_addresses = true\n\n' + feeds)
        (config_dir / "channels.toml").write_text(
            f'[channels.desk]\nurls = ["{webhook.url("/hook/desk")}"]\n\n'
            f'[channels.wire]\nurls = ["{webhook.url("/hook/wire")}"]\n'
        )
        yield Desk(farm, webhook, config_dir, database)


def cycle(desk: Desk, metrics: Metrics, now: datetime, every: bool = True) -> tuple[CycleReport, DeliveryReport]:
    return asyncio.run(run_cycle(desk.config_dir, desk.database, now, every, metrics))


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, by name and sorted labels (the page must parse)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))


def test_metrics_count_what_the_cycles_did(desk: Desk) -> None:
    engine = open_engine(desk.database)
    metrics = Metrics()
    metrics.watch_feeds(lambda: feed_status_counts(engine))
    server = MetricsServer(metrics, "127.0.0.1", 0, lambda: database_problem(engine)).start()
    try:
        status, body = scrape(server.port, "/healthz")
        assert status == 503 and "scheduler has not run" in body

        start = datetime.now(UTC)
        first, sent_first = cycle(desk, metrics, start)
        # The next story while the desk's hook fails: a failed attempt, retried later.
        desk.farm.routes["/a.xml"] = Route(rss([STORY_1, QUIET, STORY_4]))
        desk.webhook.fail_with = 500
        second, sent_second = cycle(desk, metrics, start + timedelta(minutes=11), every=False)
        # The last attempt of one delivery fails too: it is given up (dead).
        with engine.begin() as connection:
            dead_one: int = connection.execute(
                select(DELIVERY.c.id).where(DELIVERY.c.status == "pending").order_by(DELIVERY.c.id).limit(1)
            ).scalar_one()
            connection.execute(update(DELIVERY).where(DELIVERY.c.id == dead_one).values(attempts=11))
        third, sent_third = cycle(desk, metrics, start + timedelta(hours=2), every=False)
        reports = (first, second, third)
        deliveries = (sent_first, sent_second, sent_third)

        status, page = scrape(server.port)
        assert status == 200
        found = samples(page)

        polled = sum(r.polled for r in reports)
        failed = sum(r.failed for r in reports)
        not_modified = sum(r.not_modified for r in reports)
        assert total(found, "monitor_polls_total") == polled > 4
        assert total(found, "monitor_polls_total", outcome="failed") == failed > 0
        assert total(found, "monitor_polls_total", outcome="not_modified") == not_modified > 0
        assert total(found, "monitor_poll_duration_seconds_count") == polled
        assert total(found, "monitor_poll_duration_seconds_sum") > 0
        assert total(found, "monitor_items_stored_total") == sum(r.new_items for r in reports) > 0

        with engine.connect() as connection:
            assert (
                total(found, "monitor_items_stored_total")
                == connection.execute(select(func.count()).select_from(ITEM)).scalar_one()
            )
            matches = Counter(str(rule) for (rule,) in connection.execute(select(MATCH.c.rule)))
            alerts = Counter(
                (str(kind), str(rule)) for kind, rules in connection.execute(select(ALERT.c.kind, ALERT.c.rules))
                for rule in json.loads(str(rules))
            )  # fmt: skip
            states = Counter(
                (str(c), str(s)) for c, s in connection.execute(select(DELIVERY.c.channel, DELIVERY.c.status))
            )
        assert matches and alerts
        for rule, count in matches.items():
            assert total(found, "monitor_matches_total", rule=rule) == count, rule
        for (kind, rule), count in alerts.items():
            assert total(found, "monitor_alerts_total", rule=rule, kind=kind) == count, (kind, rule)
        assert total(found, "monitor_alerts_total") == sum(alerts.values())

        sent = sum(d.sent for d in deliveries)
        assert sent == len(desk.webhook.received) > 0
        assert total(found, "monitor_deliveries_total", outcome="sent") == sent
        for channel in ("desk", "wire"):
            assert (
                total(found, "monitor_deliveries_total", channel=channel, outcome="sent") == states[(channel, "sent")]
            )
            # Every sent alert's item had a publication date: each was timed.
            assert (
                total(found, "monitor_publication_to_alert_seconds_count", channel=channel) == states[(channel, "sent")]
            )
        assert (
            total(found, "monitor_deliveries_total", outcome="dead")
            == 1
            == sum(n for (_, s), n in states.items() if s == "dead")
        )
        # Two new deliveries failed in the second cycle; in the third, both were tried again (one for the last time).
        assert total(found, "monitor_deliveries_total", outcome="failed") == sum(d.failed for d in deliveries) - 1 == 3

        assert {labels: value for (name, labels), value in found.items() if name == "monitor_feeds"} == {
            (("status", s),): float(n) for s, n in feed_status_counts(engine).items()
        }
        assert total(found, "monitor_feeds", status="failing") == 2
        # The scheduler ticked (the second and third cycles polled due feeds) and the database answers.
        assert scrape(server.port, "/healthz") == (200, "ok\n")
        assert total(found, "monitor_scheduler_lag_seconds") >= 0
    finally:
        server.close()
        engine.dispose()


def test_stats_json_counts_what_the_cycles_did(desk: Desk) -> None:
    start = datetime.now(UTC)
    first, _ = cycle(desk, Metrics(), start)
    desk.farm.routes["/b.atom"] = Route(atom([STORY_2, ("urn:b:9", "Lachin corridor reopens", "https://b.example/9",
                                                        "Aid passes the Lachin corridor.")]),
                                        content_type="application/atom+xml")  # fmt: skip
    desk.webhook.fail_with = 500
    second, _ = cycle(desk, Metrics(), start + timedelta(minutes=11))

    result = cli("stats", "--json", "--db", desk.database, "--config-dir", str(desk.config_dir))
    assert result.code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    tables = Counter(row["table"] for row in rows)
    assert set(tables) == {"items", "alerts", "deliveries", "failing"}
    today = start.strftime("%Y-%m-%d")

    items = {row["feed"]: row["items"] for row in rows if row["table"] == "items"}
    engine = open_engine(desk.database)
    with engine.connect() as connection:
        stored: dict[str, int] = dict(
            connection.execute(select(FEED.c.name, func.count()).join_from(ITEM, FEED).group_by(FEED.c.name)).all()
        )
        per_rule = Counter(
            rule for (rules,) in connection.execute(select(ALERT.c.rules)) for rule in json.loads(str(rules))
        )
    engine.dispose()
    assert items == stored == {"Outlet A": 2, "Outlet B": 2}
    assert sum(items.values()) == first.new_items + second.new_items
    assert {row["rule"]: row["alerts"] for row in rows if row["table"] == "alerts"} == per_rule
    assert all(row["day"] == today for row in rows if "day" in row)

    deliveries = {row["channel"]: row for row in rows if row["table"] == "deliveries"}
    assert set(deliveries) == {"desk", "wire"}
    for row in deliveries.values():
        assert row["sent"] == first.alerts
        assert row["failed"] == second.alerts == 1  # the Lachin item's alert, its hook failing
        assert row["pending"] == second.alerts and row["dead"] == 0
    assert sorted(row["feed"] for row in rows if row["table"] == "failing") == ["Broken", "Login wall"]

    piped = cli("stats", "--db", desk.database, "--days", "1")
    assert piped.code == 0
    assert "day\tfeed\titems" in piped.stdout and f"{today}\tOutlet B\t2" in piped.stdout


def test_stats_without_a_database_says_so(tmp_path: Path) -> None:
    result = cli("stats", "--db", f"sqlite:///{tmp_path}/none.db")
    assert result.code == 1 and "no database" in result.stderr


def test_health_says_when_the_database_does_not_answer() -> None:
    engine = open_engine("postgresql+psycopg://postgres:pa55word@127.0.0.1:1/monitor?connect_timeout=3")
    problem = database_problem(engine)
    assert problem is not None and "does not answer" in problem and "pa55word" not in problem


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the command's wiring: one database is enough
def test_run_serves_metrics_and_health_from_its_pollers(desk: Desk) -> None:
    """`monitor run --metrics-port` as a real process, polling through its poller processes."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config-dir", str(desk.config_dir), "--db", desk.database,
         "--metrics-port", str(port), "--log-level", "WARNING"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                _, page = scrape(port)
            except OSError:
                continue
            found = samples(page)
            if total(found, "monitor_polls_total") >= 4 and total(found, "monitor_deliveries_total") >= 4:
                break
        assert total(found, "monitor_polls_total") >= 4, found
        engine = open_engine(desk.database)
        with engine.connect() as connection:
            items = connection.execute(select(func.count()).select_from(ITEM)).scalar_one()
        engine.dispose()
        assert total(found, "monitor_items_stored_total") == items == 3
        assert total(found, "monitor_poll_duration_seconds_sum") > 0  # timed in the pollers
        assert total(found, "monitor_feeds", status="failing") == 2
        assert scrape(port, "/healthz") == (200, "ok\n")
        assert scrape(port, "/nothing")[0] == 404
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_run_refuses_a_metrics_port_in_use(desk: Desk) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("run", "--once", "--config-dir", str(desk.config_dir), "--db", desk.database,
                     "--metrics-port", str(port))  # fmt: skip
    assert result.code == 1
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in result.stderr
