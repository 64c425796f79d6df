"""Reliability, group B: HTTP faults (RELIABILITY.md cases 14-24) as the service meets them.

Covered elsewhere, against real loopback servers, and not repeated here:
- 14 (black hole, NXDOMAIN), 15 (slow drip), 16 (redirect loops, 301 vs 302), 20 (TLS), 21 (resets, broken
  chunking), 22 (compression bombs), 23 (oversized bodies), 24 (two requests at once per host):
  tests/test_fetch.py and tests/test_pollers.py.
- 18 (Retry-After in seconds and as a date, capped) and 19 (backoff with jitter, capped, reset by a success):
  tests/test_decide.py (`next_poll`) and tests/test_fetch.py (the header read).
Here: case 17 through the whole service, where the validators are stored and sent again after a restart.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from tests.harness import Harness, headline, rss
from tests.servers import Route


def test_17_last_modified_is_stored_and_sent_back_after_a_restart(harness: Harness) -> None:
    """A feed with Last-Modified and no ETag: the next poll, by a new process, sends If-Modified-Since with
    the stored stamp, gets 304, parses nothing and alerts nothing, and counts a success."""
    stamp = format_datetime(harness.clock.now - timedelta(hours=1), usegmt=True)
    body = rss(("s1", headline(1), harness.clock.now))
    harness.farm.routes["/x.xml"] = Route(body, etag=False, headers={"Last-Modified": stamp})
    assert harness.cycle()[0].alerts == 1
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    second = harness.farm.requests_to("/x.xml")[-1]
    assert second.get("if-modified-since") == stamp and "if-none-match" not in second
    assert (report.not_modified, report.failed, report.new_items, report.alerts) == (1, 0, 0, 0)


def test_17_an_etag_is_stored_and_sent_back_after_a_restart(harness: Harness) -> None:
    body = rss(("s1", headline(1), harness.clock.now))
    harness.farm.routes["/x.xml"] = Route(body)
    harness.cycle()
    first_tag = harness.farm.requests_to("/x.xml")[0].get("if-none-match")
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert first_tag is None and harness.farm.requests_to("/x.xml")[-1].get("if-none-match", "").startswith('"')
    assert (report.not_modified, report.new_items, report.alerts) == (1, 0, 0)


def test_17_an_identical_body_without_validators_is_not_read_again(harness: Harness) -> None:
    """No ETag, no Last-Modified: the same body again is recognised by its digest, counted as unchanged, and
    nothing is matched or alerted, even after a restart; a changed body is read."""
    harness.farm.routes["/x.xml"] = Route(rss(("s1", headline(1), harness.clock.now)), etag=False)
    harness.cycle()
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert (report.not_modified, report.new_items, report.alerts) == (1, 0, 0)
    harness.farm.routes["/x.xml"] = Route(
        rss(("s2", headline(2), harness.clock.now), ("s1", headline(1), harness.clock.now)), etag=False
    )
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert (report.not_modified, report.new_items, report.alerts) == (0, 1, 1)
