"""Reliability, group A: hostile and malformed feeds (RELIABILITY.md cases 1-13) as the service meets them.

Cases covered elsewhere, not repeated here:
- 2 (XXE: the canary file and URL never read), 3 (HTML or an error status judged before parsing), 6 (stable
  fallback keys), 12 (dates missing, far ahead, odd offsets): tests/test_parse.py, tests/test_decide.py,
  tests/test_normalize.py, tests/test_fetch.py and tests/test_e2e.py.
- 8 (every GUID regenerated: the storm brake, one warning): tests/test_stories.py.
- 10 (markup and pings from feeds made inert on every format): tests/test_render.py; through real services'
  formats, issue 14.
Here, through the whole service: 1, 4, 5, 7, 9, 11, 13, and a feed dumping its archive.
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


def test_1_an_entity_bomb_fails_its_feed_and_no_other(harness: Harness) -> None:
    """Billion laughs served by one feed: refused before any expansion, the feed marked failing with the
    reason, the other feed polled and alerting."""
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %c "%s">' % (98 + n, (b"&%c;" % (97 + n)) * 10) for n in range(9))
        + b']><rss version="2.0"><channel><title>&j;</title></channel></rss>'
    )
    harness.farm.routes["/bomb.xml"] = Route(bomb)
    harness.farm.routes["/x.xml"] = Route(rss(("s1", headline(1), harness.clock.now)))
    harness.feeds(harness.farm.url("/bomb.xml"), harness.farm.url("/x.xml"))
    report, _ = harness.cycle()
    assert (report.polled, report.failed, report.alerts) == (2, 1, 1)
    [(_, error)] = report.failures
    assert "entities" in error, error
    feeds = {
        f["url"].rsplit("/", 1)[-1]: f
        for f in map(json.loads, cli("feeds", "--json", "--db", harness.db).stdout.splitlines())
    }
    assert feeds["bomb.xml"]["status"] == "failing" and feeds["x.xml"]["status"] == "ok"


def test_4_an_empty_body_fails_clearly_and_a_cut_off_body_never_duplicates(harness: Harness) -> None:
    """An empty 200 is a failure that says so; a body cut off mid-item alerts what it holds whole, and the
    complete body after it adds only what was missing: no item alerts twice."""
    harness.farm.routes["/x.xml"] = Route(b"")
    report, _ = harness.cycle()
    assert report.failed == 1 and "empty" in report.failures[0][1], report.failures
    whole = rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(4)))
    harness.farm.routes["/x.xml"] = Route(whole[: whole.index(b"<item>", whole.index(b"s2")) - 40])
    harness.clock.now += timedelta(minutes=10)
    first, _ = harness.cycle()
    harness.farm.routes["/x.xml"] = Route(whole)
    harness.clock.now += timedelta(minutes=10)
    second, _ = harness.cycle()
    assert first.alerts + second.alerts == 4 and second.failed == 0
    assert len(harness.console) == 4


def test_5_a_mislabelled_encoding_still_matches_and_is_no_failure(harness: Harness) -> None:
    """Latin-1 bytes in a feed labelled UTF-8: the poll is a success (the oddity a warning), and a rule on
    "Müller" fires."""
    (harness.dir / "keywords.toml").write_text(
        'schema = 1\n[entities.mueller]\nkind = "person"\nnames = ["Müller"]\n'
        '[[rules]]\nid = "mueller"\nquery = "@mueller"\npriority = "high"\n'
    )
    body = rss(("s1", "Minister Müller resigns", harness.clock.now)).replace(b"M\xc3\xbcller", b"M\xfcller")
    harness.farm.routes["/x.xml"] = Route(body, content_type="application/rss+xml; charset=utf-8")
    report, _ = harness.cycle()
    assert (report.failed, report.alerts) == (0, 1) and "Müller" in harness.console[0]


def test_7_one_guid_on_two_items_alerts_once_and_never_flips(harness: Harness) -> None:
    """Two entries share a GUID; the next polls swap their order: one alert in all."""
    a, b = ("dup", headline(1), harness.clock.now), ("dup", headline(2), harness.clock.now)
    for order in ((a, b), (b, a), (a, b)):
        harness.farm.routes["/x.xml"] = Route(rss(*order))
        harness.cycle()
        harness.clock.now += timedelta(minutes=10)
    assert len(harness.console) == 1


def test_9_an_entry_edited_under_its_guid_does_not_alert_again(harness: Harness) -> None:
    harness.farm.routes["/x.xml"] = Route(rss(("g1", headline(1), harness.clock.now)))
    harness.cycle()
    harness.clock.now += timedelta(minutes=10)
    harness.farm.routes["/x.xml"] = Route(rss(("g1", headline(1) + " (updated)", harness.clock.now)))
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (0, 0) and len(harness.console) == 1


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
