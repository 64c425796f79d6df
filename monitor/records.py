"""The plain, immutable records that flow between the pipeline's stages.

Each stage takes records and returns records; ORM models never leave `store/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")

Field = Literal["title", "summary", "content"]
FIELDS: tuple[Field, ...] = ("title", "summary", "content")


@dataclass(frozen=True)
class Document:
    """The text of one item as the matcher sees it: HTML already turned into text."""

    id: str
    """The caller's identifier for the item, echoed back in results."""
    title: str
    """Headline, as plain text."""
    summary: str = ""
    """Summary or lede, as plain text."""
    content: str = ""
    """Full body when the feed carries one, as plain text."""
    language: str | None = None
    """BCP 47 tag when known; matching does not depend on it."""

    def field(self, name: Field) -> str:
        return {"title": self.title, "summary": self.summary, "content": self.content}[name]


@dataclass(frozen=True)
class Hit:
    """One place where a name, word or literal from the watch list occurs in a document."""

    ref: str | None
    """Entity or term-group id the hit belongs to; None for a literal written in the query itself."""
    text: str
    """The matched text exactly as it stands in the document field."""
    field: Field
    """Which field of the document it is in."""
    start: int
    """Character offset of the first matched character in that field's text."""
    end: int
    """Character offset just past the last matched character."""


@dataclass(frozen=True)
class RuleMatch:
    """A rule that fired on a document, and the hits that made it fire."""

    rule: str
    """The rule's id."""
    priority: Priority
    """The rule's priority."""
    hits: tuple[Hit, ...]
    """Hits that satisfied the query, ordered by field (title, summary, content), then position."""


# --- polling: fetch → parse → normalize --------------------------------------------------------------

FetchStatus = Literal["ok", "not_modified", "failed", "gone"]


@dataclass(frozen=True)
class FetchResult:
    """What one HTTP (or file) request for a feed came back with. A failure is a value, not an exception."""

    status: FetchStatus
    """ok: a body to parse; not_modified: 304; failed: see `error`; gone: 410, stop polling."""
    url: str
    """The URL requested (after any temporary redirects, the last one fetched)."""
    body: bytes = b""
    """The decoded (decompressed) body, only when status is ok."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers that matter to parsing and polling (content-type, etag, ...), lower-case keys."""
    http_status: int | None = None
    """The final HTTP status code, None for file:// or when no response arrived."""
    etag: str | None = None
    """ETag to send as If-None-Match next time."""
    last_modified: str | None = None
    """Last-Modified to send as If-Modified-Since next time."""
    permanent_url: str | None = None
    """Where a chain of permanent redirects (301/308) ended, when it did; the feed's URL should follow."""
    retry_after: float | None = None
    """Seconds the server asked us to wait (Retry-After), when it did."""
    error: str | None = None
    """One line for the operator when status is failed: "HTTP 500", "timed out after 20s", ..."""


@dataclass(frozen=True)
class Entry:
    """One entry as the feed gave it, before any cleaning. Text fields may hold HTML."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    published: datetime | None
    """Published (else updated) time, timezone-aware UTC, None when absent or unparseable."""
    author: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed document."""

    title: str | None
    """The feed's own title."""
    link: str | None
    entries: tuple[Entry, ...]
    warnings: tuple[str, ...] = ()
    """Problems that did not stop parsing (bozo, skipped entries), for the log."""


@dataclass(frozen=True)
class Item:
    """An entry cleaned for storage and matching: identity decided, text extracted, URL canonical."""

    key: str
    """Identity within its feed: "guid:<guid>", "link:<canonical link>" or "hash:<digest>"; never changes."""
    url: str | None
    """Canonical URL (tracking parameters, fragments and AMP/mobile variants folded), http(s) only."""
    link: str | None
    """The link as published, http(s) only."""
    title: str
    """Plain text, at most 300 characters."""
    summary: str
    """Plain text, at most 2,000 characters."""
    content: str
    """Plain text of the full body when different from the summary, at most 2,000 characters."""
    published: datetime | None
    fingerprint: str
    """Digest of the folded title and text: equal for the same story text whatever the markup or GUID."""

    def document(self) -> Document:
        return Document(self.key, self.title, self.summary, self.content)


# --- storage and delivery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedTask:
    """A feed leased for one poll: everything the poller needs, nothing it may change directly."""

    feed_id: int
    config_url: str
    """The URL as feeds.toml names it: how the feed's settings are found."""
    url: str
    """The URL to request (follows permanent redirects)."""
    name: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    """Digest of the last body parsed: an identical body is not parsed again."""
    first_poll: bool
    """Never polled successfully: items older than the backfill window are stored silently."""
    error_count: int
    permanent_url: str | None
    permanent_hits: int
    due_at: datetime | None = None
    """When the poll was due (None: never scheduled): how late the scheduler is."""


@dataclass(frozen=True)
class NewItem:
    """An item not seen before in its feed, with the rules it fired, ready to store."""

    item: Item
    matches: tuple[RuleMatch, ...]
    silent: bool
    """Store without alerting (older than a new feed's backfill window)."""


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one feed came to; stored on the feed, shown by `monitor feeds`."""

    feed_id: int
    status: Literal["ok", "not_modified", "unchanged", "failed", "gone"]
    """unchanged: a 200 whose body was byte-identical to the last one."""
    error: str | None = None
    http_status: int | None = None
    new_items: tuple[NewItem, ...] = ()
    feed_title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    permanent_url: str | None = None
    retry_after: float | None = None
    warnings: tuple[str, ...] = ()
    entries: int = 0
    """How many entries the feed's body held (0 when it was not read)."""
    first_poll: bool = False
    """The feed's first successful poll: every entry is new, and none can be a storm of old ones."""
    seconds: float = 0.0
    """How long the poll took, from the request to the items read and matched."""


@dataclass(frozen=True)
class AlertView:
    """An alert as rendering and `monitor alerts` need it."""

    alert_id: int
    story_id: int
    title: str
    link: str | None
    outlet: str
    """The feed that brought the story first."""
    also: tuple[str, ...]
    """Other outlets that ran the same story."""
    published: datetime | None
    detected: datetime
    rules: tuple[str, ...]
    priority: Priority
    hits: tuple[Hit, ...]
    summary: str
    kind: str = "first"
    """first: the story's first alert; update: it fired a new rule or a higher priority; spread: it reached
    `[stories] spread_alert` outlets."""
    note: str = ""
    """What changed, for an update or spread: "now urgent", "now also karabakh-aid", "now in 5 outlets"."""


@dataclass(frozen=True)
class DeliveryTask:
    """A delivery claimed for sending: the alert, and where to, by channel id and target key."""

    delivery_id: int
    alert: AlertView
    channel: str
    target: str
    attempts: int
    idempotency_key: str
    waited: bool = False
    """An earlier attempt failed, or the delivery was held (a failing target, the hourly cap)."""
    interrupted: bool = False
    """An earlier attempt was claimed and never recorded (the sender died mid-send): the target may have it
    already. The resend carries the same idempotency key, and is logged."""
    batch: str | None = None
    """For an interrupted delivery that went out in one message with others: that message's key."""
