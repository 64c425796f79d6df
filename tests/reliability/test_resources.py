"""Reliability, group G: resources (RELIABILITY.md cases 51-52).

51 and 52 here: a hundred 10 MB feeds in one cycle; months of churn under retention. Memory over an hour at
2,000 feeds: bench/memory.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from tests.conftest import REPO, cli
from tests.harness import Harness, headline, rss
from tests.servers import Route


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (the service and its pollers), from /proc."""
    total, queue = 0, [pid]
    while queue:
        current = queue.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                queue.extend(int(child) for child in (task / "children").read_text().split())
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def test_51_a_hundred_ten_megabyte_feeds_stay_under_512_mib(harness: Harness) -> None:
    """One `monitor run --once` over 100 feeds of 10 MB each (1,400 entries of ~7 KB): every feed polled,
    and the service with its pollers stays under 512 MiB throughout (sampled every 0.2 s). Parsing is one
    body at a time per poller, and the entry cap cuts each body to 500 entries before it is parsed."""
    entry = "<item><guid>{f}-{n}</guid><title>t{n}</title><description>" + "lorem ipsum dolor " * 400
    entry += "</description></item>"
    for f in range(100):
        entries = "".join(entry.format(f=f, n=n) for n in range(1400))
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>F{f}</title>{entries}</channel></rss>'
        harness.farm.routes[f"/{f}.xml"] = Route(body.encode())
    assert len(harness.farm.routes["/0.xml"].body) > 10_000_000
    harness.feeds(*(harness.farm.url(f"/{f}.xml") for f in range(100)))
    run = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--once", "--config-dir", str(harness.dir),
                            "--db", harness.db], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)  # fmt: skip
    peak = 0.0
    deadline = time.monotonic() + 600
    while run.poll() is None and time.monotonic() < deadline:
        peak = max(peak, _rss_mb(run.pid))
        time.sleep(0.2)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 0 and out.startswith("100 feeds polled: 0 not modified, 0 failed"), out
    assert 0 < peak < 512, peak


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
