"""Reliability, group G: resources (RELIABILITY.md cases 51-52).

52 here: months of churn under retention. 51 (100 feeds of 10 MB under 512 MiB) stays open: see the
battery's index (tests/reliability/__init__.py). Memory over an hour at 2,000 feeds: bench/memory.py.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from tests.conftest import cli
from tests.harness import Harness, headline, rss
from tests.servers import Route


def _count(harness: Harness, query: str) -> int:
    with sqlite3.connect(harness.db.removeprefix("sqlite:///")) as db:
        return int(db.execute(query).fetchone()[0])


def test_52_months_of_churn_keep_the_database_bounded_and_nothing_re_alerts(harness: Harness) -> None:
    """Sixty days of a feed bringing three alerting items a day, with `retention = "30d"` and a retention run
    each day: only the last thirty days keep their text, matches and alerts; every key stays, so the feed
    still listing its oldest items alerts none of them again; a pending delivery is never removed."""
    feeds = harness.dir / "feeds.toml"
    feeds.write_text(feeds.read_text().replace('backfill = "24h"', 'backfill = "24h"\nretention = "30d"'))
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    listed: list[tuple[str, str, object]] = []
    for day in range(60):
        listed = [*((f"d{day}-{n}", headline(day * 3 + n), harness.clock.now) for n in range(3)), *listed]
        harness.farm.routes["/x.xml"] = Route(rss(*listed[:30] + listed[-3:]))  # the oldest stay listed
        harness.cycle()
        harness.prune()
        harness.clock.now += timedelta(days=1)
    assert _count(harness, "SELECT count(*) FROM item") == 180  # every key
    with_text = _count(harness, "SELECT count(*) FROM item WHERE title != ''")
    assert 90 <= with_text <= 93, with_text
    assert 90 <= _count(harness, "SELECT count(*) FROM alert") <= 93
    assert _count(harness, "SELECT count(*) FROM match") == with_text
    assert len(harness.sink.received) == 180  # each item alerted once, the oldest never again
    alerts = cli("alerts", "--json", "--db", harness.db).stdout.splitlines()
    assert len(alerts) == _count(harness, "SELECT count(*) FROM alert") and json.loads(alerts[-1])["title"]


def test_52_a_pending_delivery_outlives_the_retention(harness: Harness) -> None:
    feeds = harness.dir / "feeds.toml"
    feeds.write_text(feeds.read_text().replace('backfill = "24h"', 'backfill = "24h"\nretention = "30d"'))
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.fail_with = 503
    harness.farm.routes["/x.xml"] = Route(rss(("s0", headline(0), harness.clock.now)))
    harness.cycle()
    harness.clock.now += timedelta(days=40)
    harness.prune()
    assert _count(harness, "SELECT count(*) FROM delivery WHERE status = 'pending'") == 1
    harness.sink.fail_with = None
    harness.cycle(poll=False)
    [message] = harness.sink.received
    assert headline(0).split()[-1] in message["body"]["title"]  # its item kept its text for it
