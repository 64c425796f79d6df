"""The pre-scan finds the same keys feedparser and normalize give, or declines; `only` keeps the chosen
entries byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.pipeline.normalize import normalize
from monitor.pipeline.parse import ParsedFeed, parse_feed
from monitor.pipeline.prescan import only, scan
from tests.conftest import SHARED

NOW = datetime(2026, 11, 25, tzinfo=UTC)
URL = "https://feeds.example/rss"

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>T</title>
<atom:link href="https://feeds.example/rss" rel="self"/>
<item><title>One</title><guid isPermaLink="false"> a-1 </guid></item>
<item><title>Two &amp; more</title><guid><![CDATA[a&2]]></guid><description><![CDATA[<b>x</b>]]></description></item>
<item><title>Three</title><guid>a&amp;3</guid></item>
</channel></rss>"""


def keys_by_feedparser(body: bytes) -> list[str]:
    parsed = parse_feed(body, {}, URL)
    assert isinstance(parsed, ParsedFeed)
    return [item.key for item in (normalize(e, URL, NOW) for e in parsed.entries) if item is not None]


def test_keys_match_the_parser_of_record() -> None:
    found = scan(RSS)
    assert found is not None
    assert list(found.keys) == keys_by_feedparser(RSS) == ["guid:a-1", "guid:a&2", "guid:a&3"]


def test_only_keeps_the_chosen_entries_exactly() -> None:
    found = scan(RSS)
    assert found is not None
    cut = only(RSS, found, [2, 0])
    assert keys_by_feedparser(cut) == ["guid:a-1", "guid:a&3"]
    assert b"<title>T</title>" in cut and b"Two" not in cut


@pytest.mark.parametrize(
    "body",
    [
        RSS.replace(b"<guid>a&amp;3</guid>", b""),  # an entry without a GUID
        RSS.replace(b"<title>T</title>", b'<title>T</title><!DOCTYPE x [<!ENTITY e "e">]>'),
        RSS.replace(b'encoding="utf-8"', b'encoding="windows-1251"'),
        RSS.decode().encode("utf-16"),
        RSS.replace(b"<![CDATA[<b>x</b>]]>", b"<![CDATA[<item>nested</item>]]>"),
        RSS.replace(b"<guid>a&amp;3</guid>", b"<guid>a<b>3</b></guid>"),
        b"",
    ],
    ids=["no-guid", "entities", "other-encoding", "utf-16", "item-in-cdata", "markup-in-guid", "empty"],
)
def test_declines_what_it_cannot_read_safely(body: bytes) -> None:
    assert scan(body) is None


def corpus_feeds() -> list[Path]:
    if not (SHARED / "corpus").is_dir():
        return []
    return sorted(p for p in (SHARED / "corpus").glob("*/*") if p.suffix in (".xml", ".atom", ".rss"))


@pytest.mark.skipif(not (SHARED / "corpus").is_dir(), reason="../shared/corpus is not here")
def test_real_feeds_scan_to_the_same_keys_or_decline() -> None:
    scanned = 0
    for path in corpus_feeds():
        body = path.read_bytes()
        found = scan(body)
        if found is None:
            continue
        scanned += 1
        assert list(found.keys) == keys_by_feedparser(body), path.name
    assert scanned >= 40  # the common case (RSS 2.0 with GUIDs) is handled
