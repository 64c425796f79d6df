"""Reliability, group A: hostile and malformed feeds (RELIABILITY.md cases 1-13) as the service meets them.

Cases covered elsewhere, not repeated here:
- 2 (XXE), 3 (HTML or an error status before parsing), 6 (fallback keys), 12 (dates): tests/test_parse.py,
  tests/test_decide.py and tests/test_fetch.py.
Here: a feed dumping its archive (backfill on every poll), case 11 (a body of very many tiny entries: the cap
bounds parsing itself) and case 13 (a feed whose every entry is new: the possible-gap signal).
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta

from monitor.pipeline.decide import MAX_ITEMS_PER_POLL, ReadFeed, read_body
from monitor.records import FeedTask, FetchResult
from tests.conftest import cli
from tests.harness import Harness, headline, rss
from tests.servers import Route


def test_an_old_feed_dumping_its_archive_alerts_only_what_is_new(harness: Harness) -> None:
    """Backfill holds on every poll: 1,200 month-old entries appearing at once on a feed the service has polled
    for a while are stored silently, on this poll and the next, and the one fresh entry among them alerts."""
    now = harness.clock.now
    harness.farm.routes["/x.xml"] = Route(rss(("fresh-0", headline(0), now)))
    report, _ = harness.cycle()
    assert report.alerts == 1
    old = [(f"old-{n}", headline(n + 10), now - timedelta(days=30, minutes=n)) for n in range(1200)]
    harness.farm.routes["/x.xml"] = Route(rss(("fresh-1", headline(1), now), *old))
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (MAX_ITEMS_PER_POLL, 1)
    harness.farm.routes["/x.xml"] = Route(rss(*old[MAX_ITEMS_PER_POLL:]))  # the next page of the archive
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (MAX_ITEMS_PER_POLL, 0)
    assert len(harness.console) == 2


def _task() -> FeedTask:
    return FeedTask(feed_id=1, config_url="https://x.example/rss", url="https://x.example/rss", name="X", etag=None,
                    last_modified=None, body_hash=None, first_poll=False, error_count=0, permanent_url=None,
                    permanent_hits=0)  # fmt: skip


def test_11_a_body_of_very_many_tiny_entries_is_cut_before_it_is_parsed() -> None:
    """100,000 tiny entries under the size cap: feedparser reads only the first 500, so the poll's memory is
    that of 500 entries, not of every one (feedparser builds each entry it reads: ~1 KB apiece, hundreds of MB
    at this count). Memory is measured with tracemalloc, which the machine's load does not change."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    entries = b"".join(b"<item><guid>g%d</guid><title>t%d</title></item>" % (n, n) for n in range(100_000))
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>X</title>' + entries + b"</channel></rss>"
    result = FetchResult(status="ok", http_status=200, url="https://x.example/rss", body=body, headers={})
    tracemalloc.start()
    try:
        got = read_body(_task(), result, now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(got, ReadFeed)
    assert len(got.items) == MAX_ITEMS_PER_POLL and got.items[0].title == "t0" and got.entries == 100_000
    assert "100000 entries: only the first 500 were read" in got.warnings
    assert peak < len(body) * 4 + 30_000_000, peak  # the body and its cut copy, not 100,000 parsed entries


def test_13_a_feed_whose_every_entry_is_new_raises_a_possible_gap(harness: Harness) -> None:
    """60 items published between two polls of a 20-item feed: each of the 20 it shows alerts once, and the
    service records a possible gap, counts it and shows it in `monitor feeds`."""
    now = harness.clock.now
    harness.farm.routes["/x.xml"] = Route(rss(*((f"a{n}", headline(n), now) for n in range(20))))
    harness.cycle()
    later = [(f"b{n}", headline(100 + n), now + timedelta(minutes=9)) for n in range(60)]
    harness.farm.routes["/x.xml"] = Route(rss(*later[:20]))
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (20, 20)
    feeds = [json.loads(line) for line in cli("feeds", "--json", "--db", harness.db).stdout.splitlines()]
    assert feeds[0]["gaps"] == 1 and feeds[0]["warning"].startswith("possible gap: all 20 entries were new")
    assert "possible gaps so far: 1" in cli("feeds", "--db", harness.db).stdout
    # A poll whose entries are all new but one is no gap: the known one shows nothing scrolled off.
    harness.farm.routes["/x.xml"] = Route(rss(*later[19:39]))
    harness.clock.now += timedelta(minutes=10)
    harness.cycle()
    feeds = [json.loads(line) for line in cli("feeds", "--json", "--db", harness.db).stdout.splitlines()]
    assert feeds[0]["gaps"] == 1
