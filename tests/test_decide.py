"""decide: the poller's pure decisions (DESIGN.md §3 polling rules, §6-§7; RELIABILITY.md cases 12, 18, 19, 29).

`read_body` (what a fetch means), `new_items` (what is new, what stays silent on a first poll), `next_poll`
(interval, backoff, Retry-After, gone) and `retry_delivery` (send retries). `FeedTask`, `FetchResult` and
`Item` records are built by hand; jitter is checked over many seeds of `random.Random`.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.pipeline.decide import (
    MAX_ITEMS_PER_POLL,
    ReadFeed,
    new_items,
    next_poll,
    read_body,
    retry_delivery,
)
from monitor.records import FeedTask, FetchResult, Hit, Item, PollOutcome, RuleMatch

NOW = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
URL = "https://feeds.example.com/news.xml"
SEEDS = range(400)
INTERVAL = timedelta(minutes=10)
CAP = timedelta(hours=6)
DAY = timedelta(days=1)

# --- next_poll ----------------------------------------------------------------------------------------------


def outcome(status: str, retry_after: float | None = None) -> PollOutcome:
    return PollOutcome(feed_id=1, status=status, retry_after=retry_after)  # type: ignore[arg-type]


def delays(out: PollOutcome, interval: timedelta, error_count: int) -> list[timedelta]:
    result = []
    for seed in SEEDS:
        due = next_poll(out, interval, error_count, NOW, random.Random(seed))
        assert due is not None
        result.append(due - NOW)
    return result


@pytest.mark.parametrize("status", ["ok", "not_modified", "unchanged"])
@pytest.mark.parametrize("interval", [timedelta(seconds=30), INTERVAL, timedelta(hours=2), DAY])
def test_success_polls_again_after_about_the_interval(status: str, interval: timedelta) -> None:
    # a past error count does not matter: the first success resets the backoff (RELIABILITY.md case 19)
    for error_count in (0, 7):
        got = delays(outcome(status), interval, error_count)
        # never later than the interval, so an item waits at most one interval for its poll
        assert all(interval * 0.9 <= d <= interval for d in got)
        # jittered, so feeds added together drift apart: the seeds spread over most of the 10%
        assert min(got) < interval * 0.93 and max(got) > interval * 0.97


@pytest.mark.parametrize("error_count", range(5))
def test_failures_double_with_jitter(error_count: int) -> None:
    """10 min, 20, 40, 80, 160: each ±20%, and never sooner than the interval."""
    base = INTERVAL * 2**error_count
    got = delays(outcome("failed"), INTERVAL, error_count)
    assert all(max(base * 0.8, INTERVAL) <= d <= base * 1.2 for d in got)
    assert max(got) > base * 1.15
    if error_count > 0:  # the first failure's low jitter is lifted to the interval itself
        assert min(got) < base * 0.85


def test_first_failure_is_never_sooner_than_the_interval() -> None:
    got = delays(outcome("failed"), INTERVAL, 0)
    assert min(got) == INTERVAL  # some seeds jitter below it, and are lifted to it


@pytest.mark.parametrize("error_count", [6, 30, 10_000])
def test_backoff_is_capped_at_six_hours(error_count: int) -> None:
    """Three days of 5xx (RELIABILITY.md case 19): the wait grows to the cap and stays there; never later."""
    got = delays(outcome("failed"), INTERVAL, error_count)
    assert all(CAP * 0.8 <= d <= CAP for d in got), (min(got), max(got))


def test_backoff_stops_growing_at_the_cap() -> None:
    for seed in range(50):
        at_cap = next_poll(outcome("failed"), INTERVAL, 30, NOW, random.Random(seed))
        far_beyond = next_poll(outcome("failed"), INTERVAL, 10_000, NOW, random.Random(seed))
        assert at_cap == far_beyond


def test_backoff_never_below_a_long_interval() -> None:
    got = delays(outcome("failed"), DAY, 3)
    assert all(DAY <= d <= DAY * 1.2 for d in got)


@pytest.mark.parametrize("error_count", [0, 1, 3])
def test_retry_after_an_hour_waits_at_least_an_hour(error_count: int) -> None:
    got = delays(outcome("failed", retry_after=3600.0), timedelta(minutes=1), error_count)
    assert all(timedelta(hours=1) <= d <= timedelta(hours=1.2) for d in got)


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    got = delays(outcome("failed", retry_after=5.0), INTERVAL, 3)
    assert all(d >= INTERVAL * 8 * 0.8 for d in got)


@pytest.mark.parametrize("retry_after", [2 * 86400.0, 30 * 86400.0, 1e9])
def test_retry_after_over_a_day_is_capped_at_a_day(retry_after: float) -> None:
    """RELIABILITY.md case 18: next poll ≥ Retry-After, capped at the longest interval (a day)."""
    for error_count in (0, 4):
        got = delays(outcome("failed", retry_after=retry_after), INTERVAL, error_count)
        assert all(d == DAY for d in got)


@pytest.mark.parametrize("retry_after", [1e14, float("inf")])
def test_absurd_retry_after_is_capped_at_a_day_not_a_crash(retry_after: float) -> None:
    """`fetch` turns an all-digit Retry-After into float(value): a 15-digit header gives 1e14, a 309-digit
    one gives inf. Either must be capped like any other Retry-After over a day."""
    due = next_poll(outcome("failed", retry_after=retry_after), INTERVAL, 0, NOW, random.Random(0))
    assert due == NOW + DAY


def test_gone_is_never_polled_again() -> None:
    for error_count in (0, 5):
        assert next_poll(outcome("gone"), INTERVAL, error_count, NOW, random.Random(1)) is None
        assert next_poll(outcome("gone", retry_after=60.0), INTERVAL, error_count, NOW, random.Random(1)) is None


@given(
    status=st.sampled_from(["ok", "not_modified", "unchanged", "failed"]),
    interval_s=st.integers(30, 86400),
    error_count=st.integers(0, 10_000),
    retry_after=st.none() | st.floats(0, 1e7),
    seed=st.integers(0, 2**32),
)
def test_next_poll_is_never_early_and_never_beyond_a_day(
    status: str, interval_s: int, error_count: int, retry_after: float | None, seed: int
) -> None:
    interval = timedelta(seconds=interval_s)
    due = next_poll(outcome(status, retry_after), interval, error_count, NOW, random.Random(seed))
    assert due is not None
    delay = due - NOW
    assert delay >= interval * 0.9
    assert delay <= max(interval, DAY)
    if status == "failed":
        assert delay >= interval
        if retry_after is not None:
            assert delay >= min(timedelta(seconds=retry_after), DAY)


# --- retry_delivery -----------------------------------------------------------------------------------------


def retry_delays(attempts: int, max_attempts: int = 12) -> list[timedelta]:
    result = []
    for seed in SEEDS:
        due = retry_delivery(attempts, NOW, random.Random(seed), max_attempts)
        assert due is not None
        result.append(due - NOW)
    return result


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (7, 1920)])
def test_delivery_retry_starts_at_30s_and_doubles(attempts: int, seconds: int) -> None:
    """`attempts` counts sends made, the failed one included (the store counts it when it claims a send)."""
    base = timedelta(seconds=seconds)
    got = retry_delays(attempts)
    assert all(base * 0.8 <= d <= base * 1.2 for d in got)
    assert min(got) < base * 0.85 and max(got) > base * 1.15


@pytest.mark.parametrize("attempts", [8, 50])
def test_delivery_retry_is_capped_at_an_hour(attempts: int) -> None:
    got = retry_delays(attempts, max_attempts=100)
    assert all(timedelta(minutes=48) <= d <= timedelta(hours=1) for d in got), (min(got), max(got))


def test_delivery_retry_stops_growing_at_the_cap() -> None:
    for seed in range(50):
        assert retry_delivery(60, NOW, random.Random(seed), 100) == NOW + timedelta(hours=1)
        near_cap = retry_delivery(8, NOW, random.Random(seed), 100)
        assert near_cap is not None and timedelta(minutes=48) <= near_cap - NOW <= timedelta(hours=1)


@pytest.mark.parametrize(("attempts", "max_attempts"), [(12, 12), (13, 12), (3, 3), (1, 1)])
def test_delivery_gives_up_at_max_attempts(attempts: int, max_attempts: int) -> None:
    assert retry_delivery(attempts, NOW, random.Random(0), max_attempts) is None


def test_delivery_retries_until_the_last_attempt() -> None:
    assert retry_delivery(11, NOW, random.Random(0), 12) is not None


# --- new_items ----------------------------------------------------------------------------------------------


def item(key: str, published: datetime | None = NOW) -> Item:
    return Item(
        key=key,
        url=f"https://example.com/{key}",
        link=f"https://example.com/{key}",
        title=f"Title {key}",
        summary="",
        content="",
        published=published,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32],
    )


def rule_for(it: Item) -> tuple[RuleMatch, ...]:
    hit = Hit(None, "Title", "title", 0, 5)
    return (RuleMatch(f"rule-{it.key}", "high", (hit,)),)


BACKFILL = timedelta(hours=24)


def test_known_keys_are_skipped_and_order_kept() -> None:
    items = [item("guid:a"), item("guid:b"), item("guid:c"), item("guid:d")]
    fresh = new_items(items, {"guid:b", "guid:d", "guid:zzz"}, rule_for, False, BACKFILL, NOW)
    assert [n.item.key for n in fresh] == ["guid:a", "guid:c"]
    assert [n.item for n in fresh] == [items[0], items[2]]


def test_matches_come_from_the_callable_for_new_items_only() -> None:
    calls: list[str] = []

    def match(it: Item) -> list[RuleMatch]:
        calls.append(it.key)
        return list(rule_for(it)) if it.key != "guid:quiet" else []

    items = [item("guid:a"), item("guid:known"), item("guid:quiet")]
    fresh = new_items(items, {"guid:known"}, match, False, BACKFILL, NOW)
    assert calls == ["guid:a", "guid:quiet"]
    assert fresh[0].matches == rule_for(items[0])
    assert isinstance(fresh[0].matches, tuple)
    assert fresh[1].matches == ()


@pytest.mark.parametrize(
    ("published", "silent"),
    [
        (NOW, False),
        (NOW - timedelta(hours=1), False),
        (NOW - timedelta(hours=23, minutes=59), False),
        (NOW + timedelta(hours=3), False),  # a little ahead (clock skew): recent, alerted
        (NOW - timedelta(hours=24, minutes=1), True),
        (NOW - timedelta(days=400), True),
        (None, True),  # undated: cannot be shown to be recent (RELIABILITY.md case 12)
    ],
)
def test_first_poll_alerts_only_the_backfill_window(published: datetime | None, silent: bool) -> None:
    (fresh,) = new_items([item("guid:x", published)], set(), rule_for, True, BACKFILL, NOW)
    assert fresh.silent is silent
    # silent items are still returned (stored, remembered), never dropped for their date
    assert fresh.item.key == "guid:x"
    assert fresh.matches == rule_for(fresh.item)


@pytest.mark.parametrize("backfill", [timedelta(0), timedelta(hours=1), timedelta(days=7)])
def test_backfill_window_is_the_one_given(backfill: timedelta) -> None:
    inside = item("guid:in", NOW - backfill + timedelta(minutes=1))
    outside = item("guid:out", NOW - backfill - timedelta(minutes=1))
    fresh = new_items([inside, outside], set(), rule_for, True, backfill, NOW)
    assert [(n.item.key, n.silent) for n in fresh] == [("guid:in", False), ("guid:out", True)]


@pytest.mark.parametrize(
    ("published", "silent"),
    [
        (NOW, False),
        (NOW - timedelta(hours=23), False),
        (None, False),  # undated news after the baseline: alerted
        (NOW - timedelta(hours=24, minutes=1), True),  # an archive dump (issue 13): stored silently
        (NOW - timedelta(days=400), True),
    ],
)
def test_after_the_first_poll_backfill_still_applies(published: datetime | None, silent: bool) -> None:
    (fresh,) = new_items([item("guid:x", published)], set(), rule_for, False, BACKFILL, NOW)
    assert fresh.silent is silent


def test_readded_feed_keeps_its_seen_set_on_its_first_poll() -> None:
    """RELIABILITY.md case 29: known keys are skipped on a first poll too, recent or not."""
    items = [item("guid:old-but-recent", NOW), item("guid:new", NOW)]
    fresh = new_items(items, {"guid:old-but-recent"}, rule_for, True, BACKFILL, NOW)
    assert [(n.item.key, n.silent) for n in fresh] == [("guid:new", False)]


def test_new_items_of_an_empty_feed() -> None:
    assert new_items([], set(), rule_for, True, BACKFILL, NOW) == ()


# --- read_body ----------------------------------------------------------------------------------------------


def task(**changes: object) -> FeedTask:
    base = FeedTask(
        feed_id=7,
        config_url=URL,
        url=URL,
        name="Example",
        etag='"etag-1"',
        last_modified="Mon, 10 Mar 2025 07:00:00 GMT",
        body_hash=None,
        first_poll=False,
        error_count=0,
        permanent_url=None,
        permanent_hits=0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def rss(entries: list[tuple[str, str]], title: str = "Example News") -> bytes:
    """An RSS 2.0 body; each entry is (guid, title), linked and dated."""
    items = "".join(
        f"<item><guid>{guid}</guid><title>{headline}</title><link>https://example.com/{guid}</link>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=i), usegmt=True)}</pubDate></item>"
        for i, (guid, headline) in enumerate(entries)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://example.com/</link>{items}</channel></rss>"
    ).encode()


def ok(body: bytes, **changes: object) -> FetchResult:
    base = FetchResult(
        status="ok",
        url=URL,
        body=body,
        headers={"content-type": "application/rss+xml; charset=utf-8"},
        http_status=200,
        etag='"etag-2"',
        last_modified="Mon, 10 Mar 2025 08:00:00 GMT",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_not_modified_keeps_the_tasks_validators() -> None:
    result = FetchResult(status="not_modified", url=URL, http_status=304)
    got = read_body(task(), result, NOW)
    assert got == PollOutcome(
        feed_id=7,
        status="not_modified",
        http_status=304,
        etag='"etag-1"',
        last_modified="Mon, 10 Mar 2025 07:00:00 GMT",
    )


def test_not_modified_after_a_permanent_redirect_reports_the_new_url() -> None:
    """A feed that moved (301) usually answers the conditional GET at its new home with 304. The outcome
    must carry `permanent_url`, or the store, seeing None, resets its count of polls that ended at the new
    URL, and a feed that keeps answering 304 never has its URL updated (DESIGN.md §3)."""
    moved = "https://new.example.com/news.xml"
    result = FetchResult(status="not_modified", url=moved, http_status=304, permanent_url=moved)
    got = read_body(task(), result, NOW)
    assert isinstance(got, PollOutcome)
    assert got.status == "not_modified"
    assert got.permanent_url == moved


@pytest.mark.parametrize(
    ("status", "http_status", "error", "retry_after"),
    [
        ("failed", 503, "HTTP 503 Service Unavailable", 120.0),
        ("failed", 429, "HTTP 429 Too Many Requests", 3600.0),
        ("failed", None, "timed out after 20s", None),
        ("gone", 410, "HTTP 410 Gone: the publisher removed this feed", None),
    ],
)
def test_failed_and_gone_become_outcomes_with_their_error(
    status: str, http_status: int | None, error: str, retry_after: float | None
) -> None:
    result = FetchResult(
        status=status,  # type: ignore[arg-type]
        url=URL,
        http_status=http_status,
        error=error,
        retry_after=retry_after,
        body=b"<rss><channel><item><guid>x</guid></item></channel></rss>",  # an error page: never parsed
    )
    got = read_body(task(), result, NOW)
    # retry_after travels on, for next_poll (RELIABILITY.md case 18)
    assert got == PollOutcome(
        feed_id=7,
        status=status,  # type: ignore[arg-type]
        error=error,
        http_status=http_status,
        retry_after=retry_after,
    )


def test_identical_body_is_unchanged_and_not_parsed() -> None:
    garbage = b"\x00\xff not a feed at all <html><body>nope</body></html>"
    digest = hashlib.sha256(garbage).hexdigest()
    got = read_body(task(body_hash=digest), ok(garbage, permanent_url="https://new.example.com/x"), NOW)
    assert got == PollOutcome(
        feed_id=7,
        status="unchanged",
        http_status=200,
        etag='"etag-2"',
        last_modified="Mon, 10 Mar 2025 08:00:00 GMT",
        body_hash=digest,
        permanent_url="https://new.example.com/x",
    )
    # the same bytes with another stored hash are parsed, and fail: so "unchanged" above was not a parse
    other = read_body(task(body_hash="0" * 64), ok(garbage), NOW)
    assert isinstance(other, PollOutcome) and other.status == "failed"


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/rss+xml", ""])
def test_html_page_is_a_failed_poll(content_type: str) -> None:
    page = (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
        b"<body><div>Checking your browser</div></body></html>"
    )
    got = read_body(task(), ok(page, headers={"content-type": content_type}), NOW)
    assert got == PollOutcome(feed_id=7, status="failed", error="not a feed (HTML)", http_status=200)


def test_small_rss_is_read_into_items() -> None:
    body = rss([("a-1", "Shelling near Khankendi"), ("b-2", "Talks in Brussels")])
    got = read_body(task(first_poll=True), ok(body), NOW)
    assert isinstance(got, ReadFeed)
    assert got.title == "Example News"
    assert got.body_hash == hashlib.sha256(body).hexdigest()
    assert [(i.key, i.title, i.link) for i in got.items] == [
        ("guid:a-1", "Shelling near Khankendi", "https://example.com/a-1"),
        ("guid:b-2", "Talks in Brussels", "https://example.com/b-2"),
    ]
    assert got.items[0].published == NOW
    assert got.items[1].published == NOW - timedelta(minutes=1)
    assert got.warnings == ()


def test_entries_sharing_a_guid_become_one_item_with_a_warning() -> None:
    """RELIABILITY.md case 7: the first entry is kept, the duplicate is reported, not alerted twice."""
    body = rss([("dup", "First version"), ("other", "Another story"), ("dup", "Second version")])
    got = read_body(task(), ok(body), NOW)
    assert isinstance(got, ReadFeed)
    assert [(i.key, i.title) for i in got.items] == [("guid:dup", "First version"), ("guid:other", "Another story")]
    assert any("dup" in w and "share" in w for w in got.warnings), got.warnings


def test_entries_sharing_a_link_without_guid_become_one_item_with_a_warning() -> None:
    """No guid: the key is the canonical link, so a tracking parameter does not make a second item."""
    body = rss([("a", "First"), ("b", "Second"), ("c", "Third")])
    body = re.sub(rb"<guid>[^<]*</guid>", b"", body)
    body = body.replace(b"https://example.com/c", b"https://example.com/a?utm_source=rss")
    got = read_body(task(), ok(body), NOW)
    assert isinstance(got, ReadFeed)
    assert [(i.key, i.title) for i in got.items] == [
        ("link:https://example.com/a", "First"),
        ("link:https://example.com/b", "Second"),
    ]
    assert any("share" in w for w in got.warnings), got.warnings


def test_more_than_500_entries_are_cut_to_the_first_500_with_a_warning() -> None:
    body = rss([(f"g{n}", f"Story {n}") for n in range(650)])
    got = read_body(task(), ok(body), NOW)
    assert isinstance(got, ReadFeed)
    assert MAX_ITEMS_PER_POLL == 500
    assert [i.key for i in got.items] == [f"guid:g{n}" for n in range(500)]
    assert any("650" in w and "500" in w for w in got.warnings), got.warnings


def test_exactly_500_entries_are_all_read_without_a_warning() -> None:
    got = read_body(task(), ok(rss([(f"g{n}", f"Story {n}") for n in range(500)])), NOW)
    assert isinstance(got, ReadFeed)
    assert len(got.items) == 500
    assert got.warnings == ()


def test_an_entry_without_identity_is_skipped_with_a_warning() -> None:
    body = rss([("a", "Kept")]).replace(b"</channel>", b"<item><description></description></item></channel>")
    got = read_body(task(), ok(body), NOW)
    assert isinstance(got, ReadFeed)
    assert [i.key for i in got.items] == ["guid:a"]
    assert any("skipped" in w for w in got.warnings), got.warnings


def test_a_body_that_is_not_a_feed_fails_with_the_parsers_reason() -> None:
    got = read_body(task(), ok(b"   "), NOW)
    assert got == PollOutcome(feed_id=7, status="failed", error="empty body", http_status=200)


def test_known_keys_cut_a_changed_body_to_its_new_entries() -> None:
    body = rss([("c", "Third story"), ("b", "Second story"), ("a", "First story")])
    digest = hashlib.sha256(body).hexdigest()
    everything = read_body(task(), ok(body), NOW, {"guid:a", "guid:b", "guid:c"})
    assert everything == PollOutcome(feed_id=7, status="ok", http_status=200, etag='"etag-2"',
                                     last_modified="Mon, 10 Mar 2025 08:00:00 GMT", body_hash=digest)  # fmt: skip
    one_new = read_body(task(), ok(body), NOW, {"guid:a", "guid:b"})
    assert isinstance(one_new, ReadFeed) and one_new.body_hash == digest
    assert [(i.key, i.title) for i in one_new.items] == [("guid:c", "Third story")]
    # Without known keys (a first poll), every entry is read.
    all_read = read_body(task(), ok(body), NOW)
    assert isinstance(all_read, ReadFeed) and [i.key for i in all_read.items] == ["guid:c", "guid:b", "guid:a"]
