"""A quick look at a feed body before paying for feedparser. Pure.

Most polls that bring a changed body bring nothing new (a new `lastBuildDate`), and the rest bring one or
two items among fifty. feedparser costs about a millisecond per entry, so reading all fifty to find the
two new ones is most of a poll's CPU. This scan finds each entry's extent and GUID with a few regular
expressions, so the poller can (a) skip a body whose entries are all known and (b) hand feedparser only
the new entries, cut out of the real bytes.

The scan only ever decides what feedparser reads, never what is stored: every stored field still comes
from feedparser. When anything is unusual (an entry without a plain GUID, namespaced elements, an odd
encoding, entities, nesting), it returns None and the whole body is parsed as before, so its mistakes
can cost time but never an alert.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.pipeline.normalize import guid_key

_BLOCKS = {
    b"item": re.compile(rb"<item(?:\s[^>]*)?>.*?</item\s*>", re.DOTALL),
    b"entry": re.compile(rb"<entry(?:\s[^>]*)?>.*?</entry\s*>", re.DOTALL),
}
_OPENS = {b"item": re.compile(rb"<item[\s>/]"), b"entry": re.compile(rb"<entry[\s>/]")}
_IDS = {
    b"item": re.compile(rb"<guid(?:\s[^>]*)?>(.*?)</guid\s*>", re.DOTALL),
    b"entry": re.compile(rb"<id(?:\s[^>]*)?>(.*?)</id\s*>", re.DOTALL),
}
_CDATA = re.compile(rb"^\s*<!\[CDATA\[(.*?)\]\]>\s*$", re.DOTALL)
_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)", re.IGNORECASE)
_REFUSED = b"<!ENTITY"


@dataclass(frozen=True)
class Scan:
    """Where each entry of a body lies, and the key `normalize` will give it."""

    keys: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    """Byte offsets of each entry's element, start to end, in body order."""


def scan(body: bytes) -> Scan | None:
    """The entries' keys and extents, or None when the body must simply be parsed whole."""
    if _REFUSED in body or not _plain_encoding(body):
        return None
    tag = b"item" if b"<item" in body else b"entry"
    if tag == b"entry" and b"<source" in body:
        return None  # an Atom <source> holds an <id> of its own
    blocks = list(_BLOCKS[tag].finditer(body))
    if not blocks or len(blocks) != len(_OPENS[tag].findall(body)):
        return None
    keys: list[str] = []
    for block in blocks:
        ids = _IDS[tag].findall(block.group())
        if len(ids) != 1:
            return None
        key = _key(ids[0])
        if key is None:
            return None
        keys.append(key)
    return Scan(tuple(keys), tuple(block.span() for block in blocks))


def first_entries(body: bytes, limit: int) -> tuple[bytes, int] | None:
    """The body cut to its first `limit` entries, and how many it had; None when it has no more.

    This is what bounds a poll's parsing: a body under the size cap may hold hundreds of thousands of tiny
    entries, and feedparser builds every one before any cap on its output can apply. Entries are siblings,
    so the cut runs from the start of entry `limit + 1` to the end of the last one, and the document's
    closing tags stay. A body this cannot read as bytes (UTF-16) is parsed whole.
    """
    if not _plain_encoding(body):
        return None
    tag = b"item" if b"<item" in body else b"entry"
    starts: list[int] = []
    count = 0
    for opened in _OPENS[tag].finditer(body):
        count += 1
        if count <= limit + 1:
            starts.append(opened.start())
    if count <= limit:
        return None
    closing = body.rfind(b"</" + tag)
    end = body.find(b">", closing) + 1 if closing >= 0 else 0
    if end <= starts[limit]:
        return body[: starts[limit]], count  # no closing tag after the cut: feedparser reads what precedes
    return body[: starts[limit]] + body[end:], count


def only(body: bytes, found: Scan, keep: Iterable[int]) -> bytes:
    """The body with every entry but those at the positions in `keep` cut out; the rest is untouched."""
    kept = sorted(set(keep))
    first, last = found.spans[0][0], found.spans[-1][1]
    return body[:first] + b"".join(body[slice(*found.spans[i])] for i in kept) + body[last:]


def _plain_encoding(body: bytes) -> bool:
    """UTF-8 or ASCII-compatible single-byte text whose GUIDs the scan can read as ASCII."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:2] == b"\x1f\x8b":
        return False
    declared = _ENCODING.match(body)
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8", b"us-ascii", b"ascii")


def _key(raw: bytes) -> str | None:
    cdata = _CDATA.match(raw)
    if cdata:
        raw = cdata.group(1)
    elif b"<" in raw:
        return None  # markup inside the GUID: leave it to feedparser
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "&" in text and not cdata:
        text = html.unescape(text)
    return guid_key(text)
