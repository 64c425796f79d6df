"""Reliability: the dedup layers (DESIGN.md §6), each where it alone can catch a copy: a flash too short for
the story layer (the content digest), an edited headline at the same address in the same feed (the URL; the
story layer joins a feed's own items only when they are near-copies). Planting a bug in either layer fails
its test.

RELIABILITY.md cases 7 (one GUID twice in a feed) and 9 (an edited entry under its GUID): tests/test_decide.py
and tests/test_e2e.py; case 8 (every GUID regenerated, the storm brake): tests/test_store.py.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from tests.harness import Harness, headline


def _feed(*items: tuple[str, str, str, str]) -> bytes:
    """RSS of (guid, title, link, description) items, published an hour ago."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>{link}</link><description>{text}</description>"
        "<pubDate>PUBDATE</pubDate></item>"
        for guid, title, link, text in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>X</title>{body}</channel></rss>'.encode()


def _serve(harness: Harness, *items: tuple[str, str, str, str]) -> None:
    from tests.servers import Route

    stamp = format_datetime(harness.clock.now - timedelta(hours=1))
    harness.farm.routes["/x.xml"] = Route(_feed(*items).replace(b"PUBDATE", stamp.encode()))


LEDE = "Shelling was reported overnight near the town, according to local officials and residents."


def test_the_same_content_under_a_new_guid_and_link_alerts_once(harness: Harness) -> None:
    """A CMS re-publishes an entry with a new GUID and a new link (a tracking parameter would be folded; this
    is a new path), text unchanged: the content digest joins it, and the story layer's near-copy rule would."""
    first = ("g1", headline(1), "https://x.example/2026/12/story-1", LEDE)
    _serve(harness, first)
    assert harness.cycle()[0].alerts == 1
    harness.clock.now += timedelta(minutes=10)
    _serve(harness, ("g1-republished", first[1], "https://x.example/amp-archive/8812", LEDE), first)
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (1, 0)


def test_a_flash_copied_word_for_word_by_another_outlet_alerts_once(harness: Harness) -> None:
    """Two outlets run the same one-word flash, each under its own GUID and link: too few words for the story
    layer to judge (it needs two informative words in common), so only the content digest joins them."""
    from tests.servers import Route

    stamp = format_datetime(harness.clock.now - timedelta(minutes=5))
    for path, outlet in (("/a.xml", "a"), ("/b.xml", "b")):
        item = (
            f"<item><guid>{outlet}-1</guid><title>KARABAKH</title><link>https://{outlet}.example/f1</link>"
            f"<pubDate>{stamp}</pubDate></item>"
        )
        body = f'<rss version="2.0"><channel><title>{outlet}</title>{item}</channel></rss>'
        harness.farm.routes[path] = Route(body.encode())
    harness.feeds(harness.farm.url("/a.xml"))
    assert harness.cycle()[0].alerts == 1
    harness.feeds(harness.farm.url("/a.xml"), harness.farm.url("/b.xml"))
    harness.clock.now += timedelta(minutes=10)
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (1, 0)


def test_the_same_link_under_a_new_guid_and_an_edited_title_alerts_once(harness: Harness) -> None:
    """An edited headline under a new GUID at the same address: only the URL layer can see it is the same
    item (the text differs, and the feed is the same)."""
    first = ("g1", headline(1), "https://x.example/2026/12/story-1", LEDE)
    _serve(harness, first)
    assert harness.cycle()[0].alerts == 1
    harness.clock.now += timedelta(minutes=10)
    _serve(harness, ("g1-v2", headline(2), first[2], LEDE + " Updated."))
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (1, 0)


def test_a_new_item_in_the_same_feed_is_not_swallowed(harness: Harness) -> None:
    """The other side of both: a new GUID, link and text in the same feed alerts."""
    _serve(harness, ("g1", headline(1), "https://x.example/1", LEDE))
    harness.cycle()
    harness.clock.now += timedelta(minutes=10)
    _serve(harness, ("g2", headline(2), "https://x.example/2", "Talks resumed in the capital on Tuesday."))
    assert harness.cycle()[0].alerts == 1
