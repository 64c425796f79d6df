"""parse_feed: golden fixtures, hostile bodies (RELIABILITY.md A.1-A.5, A.7), encodings and the real corpus.

Each feed in tests/data/feeds/ sits beside `<name>.expected.json`: the URL and headers it is served with, and
either the failure reason or the feed title and link, then per entry title, link, guid and published, and
substrings the warnings must contain. The corpus tests read ../shared/corpus and skip when it is absent.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.pipeline import parse as parse_module
from monitor.pipeline.parse import ParseFailure, parse_feed
from monitor.records import Entry, ParsedFeed
from tests.conftest import SHARED

FEEDS = Path(__file__).parent / "data" / "feeds"
CORPUS = SHARED / "corpus"
CANARY = "CANARY-7f3a9c-secret-file-content"
URL = "https://feeds.example.com/dir/feed.xml"
RSS = "application/rss+xml"


def golden_cases() -> list[str]:
    return sorted(path.name.removesuffix(".expected.json") for path in FEEDS.glob("*.expected.json"))


def feed_file(stem: str) -> Path:
    (path,) = (path for path in FEEDS.glob(f"{stem}.*") if not path.name.endswith(".expected.json"))
    return path


@pytest.fixture
def canary(tmp_path: Path) -> dict[str, str]:
    """A canary file and a DTD that would pull it in; the placeholders in the XXE fixtures point at them."""
    secret = tmp_path / "canary.txt"
    secret.write_text(CANARY, encoding="utf-8")
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY xxe SYSTEM "{secret.as_uri()}">\n<!ENTITY inline "{CANARY}">\n', encoding="utf-8")
    return {"CANARY_FILE_URL": secret.as_uri(), "CANARY_DTD_URL": dtd.as_uri()}


def entry_record(entry: Entry) -> dict[str, Any]:
    published = entry.published.isoformat() if entry.published is not None else None
    return {"title": entry.title, "link": entry.link, "guid": entry.guid, "published": published}


@pytest.mark.parametrize("stem", golden_cases())
def test_golden(stem: str, canary: dict[str, str]) -> None:
    expected = json.loads((FEEDS / f"{stem}.expected.json").read_text(encoding="utf-8"))
    body = feed_file(stem).read_bytes()
    for placeholder, value in canary.items():
        body = body.replace(placeholder.encode(), value.encode())
    result = parse_feed(body, expected["headers"], expected["url"])
    assert CANARY not in repr(result)
    if "failure" in expected:
        assert result == ParseFailure(expected["failure"])
        return
    assert isinstance(result, ParsedFeed), result
    assert {"title": result.title, "link": result.link} == expected["feed"]
    assert [entry_record(entry) for entry in result.entries] == expected["entries"]
    for fragment in expected["warnings"]:
        assert any(fragment in warning for warning in result.warnings), (fragment, result.warnings)
    if not expected["warnings"]:
        assert result.warnings == ()
    for entry in result.entries:
        assert entry.published is None or entry.published.tzinfo is UTC


@pytest.mark.parametrize("stem", ["latin1_no_decl", "latin1_labelled_utf8", "utf16_bom"])
def test_mueller_survives_the_encoding(stem: str) -> None:
    result = parse_feed(feed_file(stem).read_bytes(), {}, URL)
    assert isinstance(result, ParsedFeed)
    assert "Müller" in result.entries[0].title


def test_latin1_that_happens_to_hold_a_utf8_sequence_stays_latin1() -> None:
    # `é`, NBSP, `»` in Latin-1 are also the UTF-8 bytes of 頻; the rest of the body is plainly Latin-1.
    text = "<rss version='2.0'><channel><item><title>Müller à Zürich, café\xa0» ça</title></item></channel></rss>"
    result = parse_feed(text.encode("latin-1"), {}, URL)
    assert isinstance(result, ParsedFeed)
    assert result.entries[0].title == "Müller à Zürich, café\xa0» ça"


def test_cyrillic_from_windows_1251_with_charset_in_the_header() -> None:
    body = feed_file("windows1251").read_bytes().replace(b' encoding="windows-1251"', b"")
    result = parse_feed(body, {"Content-Type": "text/xml; charset=windows-1251"}, URL)
    assert isinstance(result, ParsedFeed)
    assert "Степанакерт" in result.entries[0].title


# --- failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"", {}, "empty body"),
        (b" \r\n\t ", {"content-type": RSS}, "empty body"),
        (b"<!DOCTYPE html><html><body>Just a moment...</body></html>", {}, "not a feed (HTML)"),
        (b"<html><head><title>Login</title></head></html>", {"content-type": RSS}, "not a feed (HTML)"),
        (b"\xef\xbb\xbf\n<!-- cf --><!doctype html>\n<head><meta charset=utf-8>", {}, "not a feed (HTML)"),
        (b"Access denied", {"content-type": "text/html"}, "not a feed (HTML)"),
        (b"<?xml version='1.0'?><note/>", {}, "not a feed (root element <note>)"),
        (b"{not json", {"content-type": "application/json"}, "not a feed (invalid JSON: "),
        (b"[1, 2]", {}, "not a feed (JSON that is not an object)"),
        (b'{"items": []}', {"content-type": "application/feed+json"}, "not a feed (JSON without a JSON Feed version)"),
        (b"[" * 100_000 + b"]" * 100_000, {}, "not a feed (invalid JSON: maximum recursion depth"),
        (b"\x1f\x8b\x08\x00garbage", {}, "not a feed (corrupt gzip data)"),
    ],
)
def test_failures(body: bytes, headers: dict[str, str], reason: str) -> None:
    result = parse_feed(body, headers, URL)
    assert isinstance(result, ParseFailure), result
    assert result.reason.startswith(reason), result.reason
    assert "\n" not in result.reason


def test_a_gzip_body_without_content_encoding_is_read() -> None:
    plain = parse_feed(feed_file("rss20").read_bytes(), {}, URL)
    zipped = parse_feed(gzip.compress(feed_file("rss20").read_bytes()), {}, URL)
    assert zipped == plain


def test_a_gzip_bomb_is_refused_with_bounded_memory() -> None:
    bomb = gzip.compress(b"<rss>" + b" " * (200 * 1024 * 1024))
    tracemalloc.start()
    try:
        result = parse_feed(bomb, {}, URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(result, ParseFailure)
    assert result.reason.startswith("refused: gzip body over")
    assert peak < 50 * 1024 * 1024


# --- entity declarations: refused before any XML parser runs ------------------------------------------------

ENTITY_BODIES = {
    "billion laughs": feed_file("billion_laughs").read_bytes(),
    "quadratic blowup": feed_file("quadratic_blowup").read_bytes(),
    "lower-case declaration": b'<?xml version="1.0"?><!DOCTYPE rss [<!entity a "b">]><rss/>',
    "parameter entity": b'<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><rss/>',
    "`<` in a quoted system id": b'<!DOCTYPE rss SYSTEM "<a" [<!ENTITY lol "lol">]><rss>&lol;</rss>',
    "`]>` inside a comment first": b'<!DOCTYPE rss [<!-- ]> --><!ENTITY lol "lol">]><rss>&lol;</rss>',
    "a comment with a tag before the DOCTYPE": b'<!-- <rss> --><!DOCTYPE rss [<!ENTITY a "a">]><rss/>',
    "junk before the prolog": b'junk <?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "a">]><rss/>',
    "UTF-16": '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE rss [<!ENTITY a "a">]><rss/>'.encode("utf-16"),
    "UTF-16 without BOM": '<!DOCTYPE rss [<!ENTITY a "a">]><rss/>'.encode("utf-16-be"),
    "gzip-compressed": gzip.compress(feed_file("billion_laughs").read_bytes()),
}


@pytest.mark.parametrize("name", sorted(ENTITY_BODIES))
def test_entity_declarations_are_refused_fast(name: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = parse_feed(ENTITY_BODIES[name], {"content-type": RSS}, URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result == ParseFailure("refused: the feed declares XML entities")
    assert time.perf_counter() - started < 10  # generous for a shared machine; an expansion takes minutes
    assert peak < 50 * 1024 * 1024


@pytest.mark.parametrize(
    "body",
    [
        # feedparser's own case: an XHTML DOCTYPE in front of <rss> is stripped, the feed read.
        b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://site.invalid/">'
        b"<rss><channel><title>found</title><item><title>t</title></item></channel></rss>",
        # An article about XXE quotes a declaration in CDATA: text, not a declaration.
        b'<rss version="2.0"><channel><item><title>XXE explained</title>'
        b'<description><![CDATA[<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>]]></description>'
        b"</item></channel></rss>",
    ],
)
def test_doctype_without_entity_declarations_is_read(body: bytes) -> None:
    result = parse_feed(body, {"content-type": RSS}, URL)
    assert isinstance(result, ParsedFeed), result
    assert len(result.entries) == 1


class _Canary(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Canary.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f'<!ENTITY xxe "{CANARY}">'.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canary_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    _Canary.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_url_is_ever_fetched_for_external_entities_or_dtds(canary_server: str) -> None:
    bodies = [
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{canary_server}/entity">]>'
        "<rss><channel><item><title>&xxe;</title></item></channel></rss>",
        f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{canary_server}/dtd">'
        "<rss><channel><item><title>a &xxe; b</title></item></channel></rss>",
        f'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//X//EN" "{canary_server}/public">'
        "<rss><channel><item><title>&xxe;</title></item></channel></rss>",
    ]
    for body in bodies:
        result = parse_feed(body.encode(), {"content-type": RSS}, URL)
        assert CANARY not in repr(result)
    assert _Canary.hits == []


# --- lenient: bozo feeds keep their entries -----------------------------------------------------------------


def test_a_feed_served_as_html_is_still_a_feed() -> None:
    result = parse_feed(feed_file("rss20").read_bytes(), {"content-type": "text/html; charset=utf-8"}, URL)
    assert isinstance(result, ParsedFeed)
    assert len(result.entries) == 2


def test_a_garbled_encoding_name_is_ignored_with_a_warning() -> None:
    body = feed_file("rss091").read_bytes().replace(b"ISO-8859-1", b"ISO-8859\x80-1")
    result = parse_feed(body, {}, URL)
    assert isinstance(result, ParsedFeed)
    assert [entry.summary for entry in result.entries] == ["Café news"]
    assert any(warning.startswith("feedparser failed; read again") for warning in result.warnings)


def test_references_to_impossible_characters_do_not_lose_the_feed() -> None:
    body = (
        b'<rss version="2.0"><channel><title>T&#0;</title><item><title>a&#xD800;b&#99999999999;c</title>'
        b"<guid>g1</guid></item><item><title>fine</title><guid>g2</guid></item></channel></rss>"
    )
    result = parse_feed(body, {"content-type": RSS}, URL)
    assert isinstance(result, ParsedFeed)
    assert [entry.title for entry in result.entries] == ["a\ufffdb\ufffdc", "fine"]


def test_json_strings_come_out_storable() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1", "title": "t\\u0000\\ud800", "items": [{"id": "\\udc00x"}]}'
    result = parse_feed(body, {}, URL)
    assert isinstance(result, ParsedFeed)
    assert result.title == "t\ufffd"
    assert result.entries[0].guid == "\ufffdx"


def test_illegal_characters_keep_the_entries() -> None:
    body = b'<rss version="2.0"><channel><item><title>Bad \x01 char \x0c</title><guid>g</guid></item></channel></rss>'
    result = parse_feed(body, {"content-type": RSS}, URL)
    assert isinstance(result, ParsedFeed)
    assert [entry.guid for entry in result.entries] == ["g"]
    assert result.warnings and result.warnings[0].startswith("bozo: ")


def test_an_entry_that_cannot_be_read_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = parse_module._xml_entry

    def flaky(raw: Any, url: str) -> Entry:
        if raw.get("id") == "dup-2":
            raise TypeError("unreadable")
        return real(raw, url)

    monkeypatch.setattr(parse_module, "_xml_entry", flaky)
    result = parse_feed(feed_file("duplicate_guids").read_bytes(), {}, URL)
    assert isinstance(result, ParsedFeed)
    assert [entry.title for entry in result.entries] == ["First version", "Second, same guid"]
    assert "entry 3 skipped: unreadable" in result.warnings


def test_never_raises_on_any_truncation() -> None:
    body = feed_file("rss20").read_bytes()
    for end in range(0, len(body), 5):
        result = parse_feed(body[:end], {"content-type": RSS}, URL)
        assert isinstance(result, ParsedFeed | ParseFailure)
        if isinstance(result, ParsedFeed):
            # A half-read entry never comes out: its key would differ once the whole feed arrives.
            assert all(entry.guid in (None, "news-example-1001") or entry.link for entry in result.entries)


FIXTURE_BODIES = sorted(path.read_bytes() for path in FEEDS.iterdir() if not path.name.endswith(".json"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIXTURE_BODIES),
    st.integers(min_value=0, max_value=2000),
    st.binary(max_size=40),
    st.sampled_from(["", RSS, "text/html", "application/json", "text/xml; charset=bogus"]),
)
def test_never_raises_on_spliced_bytes(body: bytes, at: int, junk: bytes, content_type: str) -> None:
    result = parse_feed(body[:at] + junk + body[at:], {"content-type": content_type}, URL)
    assert isinstance(result, ParsedFeed | ParseFailure)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_never_raises_on_any_bytes(body: bytes) -> None:
    assert isinstance(parse_feed(body, {}, URL), ParsedFeed | ParseFailure)


def test_many_warnings_are_capped() -> None:
    items = "".join(f"<item><guid>same</guid><title>{n}</title></item>" for n in range(30))
    body = f"<rss version='2.0'><channel>{items}</channel></rss>".encode()
    result = parse_feed(body, {}, URL)
    assert isinstance(result, ParsedFeed)
    assert len(result.entries) == 30
    assert result.warnings == ("30 entries share the guid 'same'",)


# --- the real corpus ------------------------------------------------------------------------------------------


def corpus_files() -> list[str]:
    if not CORPUS.is_dir():
        return []
    files = [*sorted((CORPUS / "news").iterdir()), *sorted((CORPUS / "tricky").iterdir())]
    files += sorted(path for path in (CORPUS / "karabakh").iterdir() if path.suffix == ".xml")
    return [str(path.relative_to(CORPUS)) for path in files]


def manifest_items() -> dict[str, int]:
    text = (CORPUS / "MANIFEST.md").read_text(encoding="utf-8")
    return {match[1]: int(match[2]) for match in re.finditer(r"^\| `([^`]+)` \|[^|]*\|[^|]*\| (\d+) \|", text, re.M)}


# MANIFEST counts `<item>` elements in the stored bytes; this file is stored gzip-compressed (0 visible), and
# parse_feed decompresses it.
MANIFEST_EXCEPTIONS = {"invalid_characters_gzipped.xml.gz": 25}
# Real feeds with no entries at all, for a reason a person would accept.
EMPTY_FEEDS = {"feedrs_invalid_1.xml", "reader_10.json", "reader_unknown.json"}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
@pytest.mark.parametrize("relative", corpus_files())
def test_corpus_file(relative: str) -> None:
    path = CORPUS / relative
    result = parse_feed(path.read_bytes(), {}, f"https://corpus.example/{relative}")
    assert isinstance(result, ParsedFeed), result
    expected = MANIFEST_EXCEPTIONS.get(path.name, manifest_items().get(path.name))
    assert expected is not None, f"{path.name} not in MANIFEST.md"
    assert len(result.entries) == expected
    assert result.entries or path.name in EMPTY_FEEDS
    for entry in result.entries:
        assert entry.published is None or entry.published.tzinfo is UTC


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
def test_corpus_cyrillic_survives_windows_1251() -> None:
    body = (CORPUS / "tricky" / "pravda_windows1251_2020-09-29.xml").read_bytes()
    result = parse_feed(body, {}, URL)
    assert isinstance(result, ParsedFeed)
    titles = [entry.title for entry in result.entries]
    assert all(re.search("[а-яіїєА-ЯІЇЄ]", title) and title in body.decode("cp1251") for title in titles), titles


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
def test_feedparser_peer_suite_never_raises() -> None:
    for path in sorted((CORPUS / "feedparser").rglob("*")):
        if path.is_file():
            header = re.search(rb"Header:\s*Content-type:\s*([^\r\n]*)", path.read_bytes()[:2000], re.I)
            headers = {"content-type": header[1].decode("latin-1").strip()} if header else {}
            assert isinstance(parse_feed(path.read_bytes(), headers, URL), ParsedFeed | ParseFailure)
