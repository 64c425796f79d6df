"""Feed bytes to entries: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by hand. Pure.

`parse_feed(body, headers, url)` reads a body `fetch` already has: feedparser gets a byte stream and headers,
never a location it could open; no clock; nothing a server sends makes it raise. It returns a `ParsedFeed`,
or a `ParseFailure` with one line for the operator: "empty body"; "not a feed (HTML)" (a login wall or bot
challenge served with 200); "refused: the feed declares XML entities" (billion laughs, quadratic blowup,
XXE: a scan of the prolog finds `<!ENTITY` before any XML parser runs, so nothing is expanded or read; a
DOCTYPE without entities, like RSS 0.91's Netscape DTD, is allowed: feedparser strips it and expat loads no
external entity); "not a feed (<why>)"; "refused: gzip body over 16 MiB once decompressed" (a body gzipped
without Content-Encoding is inflated here, up to a cap); "unreadable feed (<why>)" (feedparser raised even
on a second reading, see `_read`).

A feed read with feedparser's `bozo` flag (wrong encoding, invalid bytes, illegal characters, cut off after
complete items) is a feed: its entries are kept, the bozo message goes into `warnings`. An entry that cannot
be read is skipped with a warning. When the body ends inside an entry, that half entry is skipped: keyed
from half its fields, it would come back under another key with the whole feed and alert twice.

Why `sanitize_html=False, resolve_relative_uris=False`: `normalize` turns HTML into text, so feedparser's
sanitizer and its rewriting of links inside HTML are wasted. Without them feedparser read 8 corpus feeds in
half the time (1,360 against 660 entries/s): 2.5-4x faster on full HTML bodies (TIME, a 1.5 MB blog), 5-20%
on headline feeds. Entry links are resolved by feedparser against xml:base, then here against the feed URL.

Why JSON Feed by hand: feedparser 6 does not read it, and it is a small JSON object.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import escape
from typing import Any, NamedTuple
from urllib.parse import urljoin

import feedparser
import feedparser.api

from monitor.records import Entry, ParsedFeed

# feedparser asks for the libxml2 SAX driver first on every parse; it is never installed, so each parse
# paid a failing import (stat calls under the import lock). Go straight to expat, which it falls back to.
feedparser.api.PREFERRED_XML_PARSERS = []

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_GUNZIPPED = 16 * 1024 * 1024
_MAX_WARNINGS = 20
_WARNING_LENGTH = 200

# The prolog before the root element: text junk, XML declaration and processing instructions, comments.
_MISC = re.compile(rb"(?:[^<]+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_DOCTYPE = re.compile(rb"<!DOCTYPE\s*([^\s\[>]*)", re.IGNORECASE)
# Tokens of a DOCTYPE: quoted literals and comments are skipped whole, so neither a `>` nor a `[` inside
# them ends the declaration early and hides an entity declaration after it.
_DTD_TOKEN = re.compile(rb"\"[^\"]*\"|'[^']*'|<!--.*?-->|<\?.*?\?>|<!ENTITY|[\[\]>]|[^\"'<\[\]>]+|.", re.DOTALL | re.I)
_ROOT = re.compile(rb"<([A-Za-z_][-\w.:]*)")
_HTML_ROOTS = frozenset({"html", "head", "body", "meta", "title", "script", "div", "p", "br", "table", "form"})
_FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})
_SPACE = re.compile(r"\s+")
_DECLARED_ENCODING = re.compile(rb"(?<=<\?xml)([^>]*?)\sencoding\s*=\s*(['\"])[^'\"]*\2")
_CHARACTER_REFERENCE = re.compile(rb"&#([xX][0-9a-fA-F]{1,16}|[0-9]{1,24});")
_ENTRY_OPEN = re.compile(rb"<(?:item|entry)[\s>]")
_TAIL = 64
_UNDECLARED_RSS_PREFIX = re.compile(rb"(</?|\s)rss:(?=[A-Za-z])")

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([^\s;\"']+)", re.IGNORECASE)
_DECLARED_NAME = re.compile(rb"(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\sencoding\s*=\s*[\"']([^\"']*)")
_VALID_NON_ASCII = re.compile("[^\x00-\x7f\udc80-\udcff]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_UTF8 = ("utf-8", "utf8")
_UTF8_BYTES = (b"utf-8", b"utf8")
_LEADING = re.compile(rb"(?:\xef\xbb\xbf)?\s*")
_JSON_FEED_VERSION = re.compile(r"^https?://jsonfeed\.org/version/(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class ParseFailure:
    """A body that is not a feed we can read; `reason` is one line for the operator."""

    reason: str


class _Prolog(NamedTuple):
    root: str | None  # the first element's name
    doctype: str | None  # the name the DOCTYPE gives
    declares_entities: bool


def parse_feed(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed | ParseFailure:
    """The feed in `body` as served with `headers` from `url` (see the module docstring)."""
    if not body or body.isspace():
        return ParseFailure("empty body")
    if body.startswith(_GZIP_MAGIC):  # some servers gzip a body without saying so in Content-Encoding
        unzipped = _gunzip(body)
        if isinstance(unzipped, ParseFailure):
            return unzipped
        body = unzipped
    content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "")
    start = _LEADING.match(body).end()  # type: ignore[union-attr]  # may match nothing, never fails
    first = body[start : start + 1]
    if first in (b"{", b"[") or ("json" in content_type.lower() and first != b"<"):
        return _parse_json_feed(body, url)
    return _parse_xml_feed(body, content_type, url)


def _parse_xml_feed(body: bytes, content_type: str, url: str) -> ParsedFeed | ParseFailure:
    prolog = _scan_prolog(_ascii_compatible(body))
    if prolog.declares_entities:
        return ParseFailure("refused: the feed declares XML entities")
    if _is_html(prolog):
        return ParseFailure("not a feed (HTML)")
    read = _read(body, content_type)
    if isinstance(read, ParseFailure):
        return read
    result, warnings = read
    bozo = _one_line(result.get("bozo_exception")) if result.get("bozo") else None
    if not result.entries and not result.get("version"):
        if "html" in content_type.lower():
            return ParseFailure("not a feed (HTML)")
        why = bozo or (f"root element <{prolog.root}>" if prolog.root else "no feed elements")
        return ParseFailure(f"not a feed ({why})")
    if bozo:
        warnings.insert(0, f"bozo: {bozo}")
    raw_entries = list(result.entries)
    if bozo and raw_entries and _last_entry_cut_off(_ascii_compatible(body)):
        raw_entries.pop()  # the next complete poll brings it (see the module docstring)
        warnings.append("document cut off inside its last entry: that entry skipped")
    entries: list[Entry] = []
    for index, raw in enumerate(raw_entries, start=1):
        try:
            entries.append(_xml_entry(raw, url))
        except Exception as error:  # whatever one entry holds, the others are kept
            warnings.append(f"entry {index} skipped: {_one_line(error)}")
    feed = result.get("feed", {})
    return ParsedFeed(
        title=_text_or_none(feed.get("title")),
        link=_resolve(url, _text_or_none(feed.get("link"))),
        entries=tuple(entries),
        warnings=_capped(warnings + _duplicate_guids(entries)),
    )


# --- XML ---------------------------------------------------------------------------------------------------


def _read(body: bytes, content_type: str) -> tuple[Any, list[str]] | ParseFailure:
    """feedparser's result for `body`, after the repairs real feeds need, and the warnings they leave."""
    warnings: list[str] = []
    mended = _mend_utf8(body, content_type)
    if mended is not None:
        body = mended
        warnings.append("bytes that are not UTF-8 in a UTF-8 feed were read as windows-1252")
    # Without a content type (a saved file) feedparser calls every feed bozo; application/xml lets the BOM
    # and the XML declaration decide the encoding (RFC 7303). No Content-Location: feedparser would resolve
    # each RSS <guid> against it (`<guid>12345</guid>` → `https://host/feed/12345`), so a feed that moves
    # would change every key and alert everything again. Links are resolved against the feed URL instead.
    headers = {"content-type": content_type or "application/xml"}
    try:
        result = _feedparser(body, headers)
    except Exception:  # feedparser raises on a garbled encoding name, a `&#xD800;`, a `&#99999999;`
        try:
            result = _feedparser(_repaired(body), headers)
        except Exception as error:  # a feed's bytes must never crash a poll: the operator gets the reason
            return ParseFailure(f"unreadable feed ({_one_line(error)})")
        warnings.append("feedparser failed; read again without the declared encoding and invalid &#...; references")
    if not result.entries and b"<rss:item" in body and b"xmlns:rss" not in body:
        # A real publisher prefixes every RSS element with an undeclared `rss:`, and feedparser sees no items.
        with suppress(Exception):  # if the repaired body fails, the first reading stands
            result = _feedparser(_UNDECLARED_RSS_PREFIX.sub(rb"\1", body), headers)
    return result, warnings


def _feedparser(body: bytes, response_headers: dict[str, str]) -> Any:
    return feedparser.parse(
        io.BytesIO(body), response_headers=response_headers, sanitize_html=False, resolve_relative_uris=False
    )


def _repaired(body: bytes) -> bytes:
    """`body` without the encoding name of its XML declaration and with unrepresentable `&#...;` as U+FFFD."""
    body = _DECLARED_ENCODING.sub(rb"\1", body, count=1)
    return _CHARACTER_REFERENCE.sub(_valid_reference, body)


def _valid_reference(reference: re.Match[bytes]) -> bytes:
    digits = reference[1]
    code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    return reference[0] if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else b"&#xFFFD;"


def _mend_utf8(body: bytes, content_type: str) -> bytes | None:
    """A UTF-8 body with a few stray bytes, made valid UTF-8; None when the body needs no mending.

    feedparser reads a UTF-8 feed with one bad byte as windows-1252 from start to end, so every Cyrillic or
    Armenian word turns to mojibake and no name matches. Here the stray bytes alone are read as
    windows-1252. Only for a body that says UTF-8 (or nothing) and has more valid multi-byte characters than
    stray bytes: otherwise it is in another encoding, which feedparser's own fallbacks handle.
    """
    charset = _CHARSET.search(content_type)
    declared = _DECLARED_NAME.match(body)
    if (charset and charset[1].lower() not in _UTF8) or (declared and declared[1].lower() not in _UTF8_BYTES):
        return None
    if _ascii_compatible(body) is not body:
        return None  # UTF-16/32 or EBCDIC
    try:
        body.decode("utf-8")
        return None
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="surrogateescape")
    # Latin-1 text makes a valid UTF-8 sequence now and then (`é` + NBSP + `»` reads as 頻): UTF-8 must win.
    if len(_VALID_NON_ASCII.findall(text)) <= len(_ESCAPED_BYTE.findall(text)):
        return None
    mended = _ESCAPED_BYTE.sub(lambda byte: bytes([ord(byte[0]) - 0xDC00]).decode("cp1252", "replace"), text)
    return mended.encode("utf-8")


def _gunzip(body: bytes) -> bytes | ParseFailure:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, _MAX_GUNZIPPED)
    except zlib.error:
        return ParseFailure("not a feed (corrupt gzip data)")
    if inflater.unconsumed_tail:
        return ParseFailure(f"refused: gzip body over {_MAX_GUNZIPPED // (1024 * 1024)} MiB once decompressed")
    if not data:
        return ParseFailure("not a feed (corrupt gzip data)")
    return data  # a stream cut short gives what it has, like any cut-off feed


def _ascii_compatible(body: bytes) -> bytes:
    """`body` where markup is ASCII bytes (UTF-16/32 and EBCDIC transcoded), for the scans done here."""
    codec = _wide_codec(body[:4])
    return body if codec is None else body.decode(codec, errors="replace").encode("utf-8")


def _wide_codec(head: bytes) -> str | None:
    """The codec of a body whose markup is not ASCII bytes, from its BOM or its first character `<`."""
    if head.startswith(b"\xff\xfe\x00\x00") or head[1:4] == b"\x00\x00\x00":
        return "utf-32-le"
    if head[:2] == b"\x00\x00":
        return "utf-32-be"
    if head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "utf-16"
    if head[:1] == b"\x00" or head[1:2] == b"\x00":
        return "utf-16-be" if head[:1] == b"\x00" else "utf-16-le"
    return "cp037" if head == b"\x4c\x6f\xa7\x94" else None  # `<?xm` in EBCDIC


def _scan_prolog(data: bytes) -> _Prolog:
    """The root element's name and the DOCTYPE, found without an XML parser (so without entity expansion)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    position = _MISC.match(data).end()  # type: ignore[union-attr]  # `*` always matches
    doctype = None
    declaration = _DOCTYPE.match(data, position)
    if declaration is not None:
        doctype = declaration[1].decode("latin-1").lower()
        depth = 0
        end = len(data)
        for token in _DTD_TOKEN.finditer(data, declaration.end()):
            text = token[0]
            if text.upper() == b"<!ENTITY":
                return _Prolog(None, doctype, True)
            if text == b"[":
                depth += 1
            elif text == b"]":
                depth = max(0, depth - 1)
            elif text == b">" and depth == 0:
                end = token.end()
                break
        position = _MISC.match(data, end).end()  # type: ignore[union-attr]
    root = _ROOT.match(data, position)
    return _Prolog(root[1].decode("latin-1") if root else None, doctype, False)


def _last_entry_cut_off(data: bytes) -> bool:
    """True when the body ends inside an `<item>`/`<entry>`: one opens after the last one closes."""
    if data[-_TAIL:].rstrip().endswith((b"</rss>", b"</feed>", b"</rdf:RDF>")):
        return False
    last_close = max(data.rfind(b"</item>"), data.rfind(b"</entry>"))
    return _ENTRY_OPEN.search(data, last_close + 1) is not None


def _is_html(prolog: _Prolog) -> bool:
    root = (prolog.root or "").lower()
    if root in _HTML_ROOTS:
        return True
    # feedparser's own tests have an XHTML DOCTYPE in front of <rss>: the root element decides.
    return prolog.doctype == "html" and root.rpartition(":")[2] not in _FEED_ROOTS


def _xml_entry(raw: dict[str, Any], url: str) -> Entry:
    content = ""
    for part in raw.get("content") or ():
        value = _text(part.get("value"))
        if value.strip():
            content = value
            break
    return Entry(
        guid=_text_or_none(raw.get("id")),
        link=_resolve(url, _text_or_none(raw.get("link"))),
        title=_text(raw.get("title")),
        summary=_text(raw.get("summary")),
        content=content,
        # dict.get, not FeedParserDict.get: that maps a missing `updated_parsed` to `published_parsed` with a
        # DeprecationWarning on every entry.
        published=_from_struct(dict.get(raw, "published_parsed")) or _from_struct(dict.get(raw, "updated_parsed")),
        author=_text_or_none(raw.get("author")),
    )


def _from_struct(value: Any) -> datetime | None:
    """feedparser's parsed dates are UTC `struct_time`s."""
    if value is None:
        return None
    try:
        # timegm, not datetime(*value[:6]): it takes a leap second or a 24:00 as the moment after.
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# --- JSON Feed ---------------------------------------------------------------------------------------------


def _parse_json_feed(body: bytes, url: str) -> ParsedFeed | ParseFailure:
    try:
        document = json.loads(body)  # detects UTF-8/16/32 itself
    except (ValueError, RecursionError) as error:
        return ParseFailure(f"not a feed (invalid JSON: {_one_line(error)})")
    if not isinstance(document, dict):
        return ParseFailure("not a feed (JSON that is not an object)")
    version = document.get("version")
    match = _JSON_FEED_VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        return ParseFailure("not a feed (JSON without a JSON Feed version)")
    warnings: list[str] = []
    if match[1] not in ("1", "1.1"):
        warnings.append(f"unknown JSON Feed version {match[1]}, read as 1.1")
    items = document.get("items")
    if not isinstance(items, list):
        warnings.append("JSON Feed without an items list")
        items = []
    entries: list[Entry] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            warnings.append(f"entry {index} skipped: not a JSON object")
            continue
        try:
            entries.append(_json_entry(item, url))
        except Exception as error:  # whatever one entry holds, the others are kept
            warnings.append(f"entry {index} skipped: {_one_line(error)}")
    return ParsedFeed(
        title=_text_or_none(document.get("title")),
        link=_resolve(url, _text_or_none(document.get("home_page_url"))),
        entries=tuple(entries),
        warnings=_capped(warnings + _duplicate_guids(entries)),
    )


def _json_entry(item: Mapping[str, Any], url: str) -> Entry:
    guid = item.get("id")
    if isinstance(guid, int | float) and not isinstance(guid, bool):
        guid = str(guid)  # the spec says string; some feeds write numbers
    html = item.get("content_html")
    content = _text(html) if isinstance(html, str) and html.strip() else _plain_as_html(item.get("content_text"))
    authors = item.get("authors")
    author = authors[0] if isinstance(authors, list) and authors else item.get("author")  # 1.1, else 1.0
    return Entry(
        guid=_text_or_none(guid),
        link=_resolve(url, _text_or_none(item.get("url")) or _text_or_none(item.get("external_url"))),
        # Entry text fields may hold HTML; JSON Feed's title, summary and content_text are plain text, so
        # they are escaped to stay the same text when read as HTML (`a <b> c` is not a tag).
        title=_plain_as_html(item.get("title")),
        summary=_plain_as_html(item.get("summary")),
        content=content,
        published=_iso_date(item.get("date_published")) or _iso_date(item.get("date_modified")),
        author=_text_or_none(author.get("name")) if isinstance(author, dict) else None,
    )


def _plain_as_html(value: Any) -> str:
    text = _text(value)
    return escape(text, quote=False) if "<" in text or "&" in text else text


def _iso_date(value: Any) -> datetime | None:
    """An RFC 3339 date (what JSON Feed uses), else an RFC 822 one, as UTC; None when neither."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        return None  # `0001-01-01T00:00+05:00` lies before the first UTC moment Python can hold


# --- shared ------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return _storable(value) if isinstance(value, str) else ""


def _text_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _storable(value).strip() or None


def _storable(text: str) -> str:
    """`text` without what no database stores: NUL removed, lone surrogates (JSON `\\ud800`) as U+FFFD."""
    return _UNSTORABLE.sub(lambda bad: "" if bad[0] == "\0" else "\ufffd", text) if _UNSTORABLE.search(text) else text


def _resolve(base: str, link: str | None) -> str | None:
    """`link` made absolute against the feed URL (a no-op for absolute links)."""
    if link is None:
        return None
    try:
        return urljoin(base, link)
    except ValueError:
        return link  # a malformed link stays as given; normalize decides whether it is usable


def _duplicate_guids(entries: list[Entry]) -> list[str]:
    counts = Counter(entry.guid for entry in entries if entry.guid)
    return [f"{count} entries share the guid {guid[:80]!r}" for guid, count in counts.items() if count > 1]


def _capped(warnings: list[str]) -> tuple[str, ...]:
    if len(warnings) <= _MAX_WARNINGS:
        return tuple(warnings)
    return (*warnings[:_MAX_WARNINGS], f"... and {len(warnings) - _MAX_WARNINGS} more warnings")


def _one_line(error: object) -> str:
    """An exception as one short line: `<unknown>:3:6: not well-formed` → `line 3, column 6: not well-formed`."""
    text = _SPACE.sub(" ", str(error)).strip()
    text = re.sub(r"^<unknown>:(\d+):(\d+):", r"line \1, column \2:", text)
    if not text:
        text = type(error).__name__
    return text if len(text) <= _WARNING_LENGTH else text[: _WARNING_LENGTH - 1] + "…"
