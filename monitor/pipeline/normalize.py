"""Entry to Item: identity decided once, text extracted and bounded, URL canonical, time checked. Pure.

`normalize(entry, feed_url, now)` turns what a feed said into what the service stores and matches:

- `key`, the entry's identity within its feed, decided here once (STYLE.md convention 7) and never by
  anything that changes from poll to poll (not `now`, not the markup):
  `guid:<guid>` when the entry has one (whitespace trimmed; `guid:sha256:<hex>` when over 500 characters),
  else `link:<canonical link>` (`link:sha256:<hex>` when long), else
  `hash:<first 32 hex of sha256(folded title, link as given, published date as given)>`, with the text's
  start added when there is no title, so title-less entries of one feed do not all collide. An entry
  with no guid, no link, no title and no text has no identity: it is dropped (None).
- `title` ≤ 300 characters, `summary` and `content` ≤ 2,000, as plain text (`visible_text`), whitespace
  collapsed, control characters removed (PostgreSQL refuses NUL), cut at a word boundary with "…";
  `content` is empty when it merely repeats the summary (Atom feeds often give one text twice).
- `published` in UTC; a date more than a day ahead of `now` (2099) becomes None, since a stored future
  date would sort above every later item and hide it. The key uses the date as given, so the key of an
  entry dated tomorrow does not change when tomorrow comes.
- `fingerprint`: 32 hex of sha256 over the folded title and the first ~600 characters of the summary (or
  content): the same story text gives the same fingerprint whatever its markup, GUID or tracking link
  (DESIGN.md §6, layer 3).
- `url` canonical and `link` as published, both http(s) only (see `urls`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

from monitor.pipeline.fold import fold_words
from monitor.pipeline.text import html_to_text, looks_like_html
from monitor.pipeline.urls import canonical_url, safe_link
from monitor.records import Entry, Item

TITLE_LIMIT = 300
TEXT_LIMIT = 2000
FINGERPRINT_TEXT = 600
KEY_LIMIT = 500
FUTURE_SLACK = timedelta(days=1)
# Markup is looked at up to this many characters per field: enough for 2,000 visible characters in any
# real feed, and a 5 MB title costs no more than a normal one.
_RAW_LIMIT = 256 * 1024
_TITLE_RAW_LIMIT = 64 * 1024

# C0/C1 controls (tab, newline and friends included: they become spaces) and lone surrogates, which JSON
# can carry and no database can store.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def normalize(entry: Entry, feed_url: str, now: datetime) -> Item | None:
    """The entry cleaned for storage and matching, or None when it has no identity (see module docstring)."""
    link = _absolute(feed_url, entry.link)
    title = clean_text(entry.title, TITLE_LIMIT, raw_limit=_TITLE_RAW_LIMIT)
    summary = clean_text(entry.summary)
    content = clean_text(entry.content)
    key = _key(entry, link, title, summary or content)
    if key is None:
        return None
    if _repeats(content, summary):
        content = ""
    lede = _cut(summary or content, FINGERPRINT_TEXT, mark="")
    return Item(
        key=key,
        url=canonical_url(link),
        link=safe_link(link),
        title=title,
        summary=_cut(summary, TEXT_LIMIT),
        content=_cut(content, TEXT_LIMIT),
        published=_published(entry.published, now),
        fingerprint=fingerprint(title, lede),
    )


def entry_key(entry: Entry, feed_url: str = "") -> str | None:
    """The key `normalize(entry, feed_url, ...)` gives this entry (same feed URL), or None when it drops it.

    Cheap when the entry has a GUID or a link (no text is extracted), so a poll can skip entries whose
    keys it already knows before normalizing them.
    """
    by_guid = guid_key(entry.guid)
    if by_guid is not None:
        return by_guid
    link = _absolute(feed_url, entry.link)
    link_key = _link_key(link)
    if link_key is not None:
        return link_key
    title = clean_text(entry.title, TITLE_LIMIT, raw_limit=_TITLE_RAW_LIMIT)
    return _key(entry, link, title, clean_text(entry.summary) or clean_text(entry.content))


def fingerprint(title: str, text: str) -> str:
    """32 hex characters identifying a story's text: title and lede, folded (case, accents, punctuation)."""
    return hashlib.sha256(fold_words(f"{title} {text}").encode("utf-8")).hexdigest()[:32]


def clean_text(field: str, limit: int | None = None, *, raw_limit: int = _RAW_LIMIT) -> str:
    """`field` (HTML or text) as one line of visible text, cut to `limit` characters when given."""
    if len(field) > raw_limit:
        field = field[:raw_limit]
        # Do not hand a half tag to the HTML parser: it would show up as text.
        if field.rfind("<") > field.rfind(">"):
            field = field[: field.rfind("<")]
    if looks_like_html(field):
        text = html_to_text(field)  # whitespace already collapsed
        if _INVISIBLE.search(text) is not None:
            text = " ".join(_INVISIBLE.sub(" ", text).split())
    else:
        text = " ".join(_INVISIBLE.sub(" ", field).split())
    return text if limit is None else _cut(text, limit)


# --- identity ----------------------------------------------------------------------------------------------


def _key(entry: Entry, link: str | None, title: str, text: str) -> str | None:
    key = guid_key(entry.guid) or _link_key(link)
    if key is not None:
        return key
    if not title and not text:
        return None
    published = entry.published.isoformat() if entry.published is not None else ""
    parts = [fold_words(title), (link or "").strip(), published]
    if not title:
        parts.append(fold_words(_cut(text, FINGERPRINT_TEXT, mark="")))
    return "hash:" + hashlib.sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def guid_key(guid: str | None) -> str | None:
    """The key of an entry with this GUID (whitespace and invisible characters folded), None without one."""
    cleaned = " ".join(_INVISIBLE.sub(" ", guid).split()) if guid else ""
    return _bounded("guid:", cleaned) if cleaned else None


def _link_key(link: str | None) -> str | None:
    canonical = canonical_url(link)
    return _bounded("link:", canonical) if canonical else None


def _bounded(prefix: str, value: str) -> str:
    """A key of bounded length: values longer than KEY_LIMIT are replaced by their digest."""
    if len(value) <= KEY_LIMIT:
        return prefix + value
    return f"{prefix}sha256:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()}"


def _absolute(feed_url: str, link: str | None) -> str | None:
    if not link or not link.strip():
        return None
    try:
        return urljoin(feed_url, link.strip()) if feed_url else link.strip()
    except ValueError:
        return link.strip()


# --- text and time -----------------------------------------------------------------------------------------


def _cut(text: str, limit: int, mark: str = "…") -> str:
    """`text` in at most `limit` characters, `mark` included, cut at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(mark)]
    space = cut.rfind(" ")
    if space >= limit // 2:  # no boundary in reach (a long URL, a script without spaces): cut mid-word
        cut = cut[:space]
    return cut.rstrip() + mark


def _repeats(content: str, summary: str) -> bool:
    """True when the content says nothing the summary does not (equal, or a shorter start of it)."""
    if not content:
        return False
    folded_content, folded_summary = fold_words(content), fold_words(summary)
    return folded_summary.startswith(folded_content)


def _published(published: datetime | None, now: datetime) -> datetime | None:
    if published is None:
        return None
    try:
        published = _utc(published)
    except OverflowError:
        return None  # year 1 with a positive offset: before the start of UTC time, so no usable date
    return None if published > _utc(now) + FUTURE_SLACK else published


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC already (never as the machine's local time)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
