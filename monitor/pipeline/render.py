"""Alert messages, rendered per channel format (text, Markdown, HTML). Pure.

Everything that comes from a feed is untrusted: HTML is escaped, Markdown's control characters are
escaped, and angle brackets become look-alikes in text and Markdown so that Slack's `<!channel>` or a
Telegram `<a href>` stays inert text. Only http(s) links are ever rendered as links.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from monitor.records import AlertView, Hit

Format = Literal["text", "markdown", "html"]

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SUMMARY_CHARS = 300
HEADLINE_CHARS = 300
TITLE_CHARS = 200
DIGEST_MAX = 50


@dataclass(frozen=True)
class Message:
    title: str
    """Plain text, for services with a title of their own (an email subject)."""
    body: str
    format: Format
    heading: str = ""
    """The title escaped and set in `format`, for services with no title field: it opens the body."""


def _inert(text: str) -> str:
    """Feed text with control characters removed and angle brackets made harmless look-alikes."""
    return _CONTROL.sub("", text).replace("<", "‹").replace(">", "›")


def _escape(text: str, fmt: Format) -> str:
    if fmt == "html":
        return html.escape(_CONTROL.sub("", text), quote=True)
    text = _inert(text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text) if fmt == "markdown" else text


def _mark(text: str, fmt: Format) -> str:
    if fmt == "html":
        return f"<b>{text}</b>"
    if fmt == "markdown":
        return f"**{text}**"
    return f"«{text}»"


def highlight(text: str, hits: Sequence[Hit], field: str, fmt: Format) -> str:
    """`text` escaped for `fmt`, with the spans of `hits` in `field` marked; overlapping spans merge."""
    spans = sorted((h.start, h.end) for h in hits if h.field == field and 0 <= h.start < h.end <= len(text))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, position = [], 0
    for start, end in merged:
        out.append(_escape(text[position:start], fmt))
        out.append(_mark(_escape(text[start:end], fmt), fmt))
        position = end
    out.append(_escape(text[position:], fmt))
    return "".join(out)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "…"


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if moment else "time unknown"


def _link(url: str | None, fmt: Format) -> str:
    if not url or not url.startswith(("http://", "https://")):
        return ""
    # Characters a URL may not hold raw (< > " space ...) are percent-encoded, so a link can carry no markup.
    url = quote(url, safe="%/:=&?~#+!$,;'@()*[]")
    if fmt == "html":
        return f'<a href="{html.escape(url, quote=True)}">{html.escape(url)}</a>'
    if fmt == "markdown":
        return f"<{url}>"
    return url


def _names(hits: Sequence[Hit]) -> list[str]:
    return list(dict.fromkeys(h.text for h in hits))


def _change(alert: AlertView, outlets: bool) -> str:
    """What an update or a spread follow-up announces, before the headline: "update: now urgent",
    "now in 5 outlets: Reuters, AP, …" (the outlets only where there is room); "" for a first alert."""
    if alert.kind == "first" or not alert.note:
        return ""
    if alert.kind == "update":
        return f"update: {alert.note}"
    return f"{alert.note}: {', '.join((alert.outlet, *alert.also))}" if outlets else alert.note


def render_alert(alert: AlertView, fmt: Format, zone: ZoneInfo, limit: int | None = None) -> Message:
    """One story: headline with the matched names marked, outlet, time, rules, priority, link, also-ran.
    Within `limit` characters of body (the service's), the optional lines go first (also-ran, summary,
    matched names, rules), and the link is always kept."""
    change = _change(alert, outlets=True)
    title = f"[{alert.priority.upper()}] {_clip(change, TITLE_CHARS // 2) + ': ' if change else ''}"
    title += _clip(alert.title, TITLE_CHARS)
    newline = "<br>\n" if fmt == "html" else "\n"
    summary = alert.summary if len(alert.summary) <= SUMMARY_CHARS else _clip(alert.summary, SUMMARY_CHARS)
    headline = alert.title if len(alert.title) <= HEADLINE_CHARS else _clip(alert.title, HEADLINE_CHARS)
    lines = [
        highlight(headline, [h for h in alert.hits if h.end <= len(headline)], "title", fmt),
        f"{_escape(alert.outlet, fmt)} · {_when(alert.published or alert.detected, zone)} · {alert.priority}",
        f"rules: {_escape(', '.join(alert.rules), fmt)}",
        f"matched: {', '.join(_mark(_escape(n, fmt), fmt) for n in _names(alert.hits))}",
    ]
    if summary:
        lines.append(highlight(summary, [h for h in alert.hits if h.end <= len(summary)], "summary", fmt))
    link = _link(alert.link, fmt)
    if link:
        lines.append(link)
    if alert.also:
        lines.append(f"also: {_escape(', '.join(alert.also), fmt)}")
    optional = [line for line in (lines[-1] if alert.also else None, lines[4] if summary else None, lines[3], lines[2])
                if line is not None]  # fmt: skip
    while limit is not None and len(newline.join(lines)) > limit and optional:
        lines.remove(optional.pop(0))
    if limit is not None and len(newline.join(lines)) > limit:  # a headline and outlet longer than the service takes
        lines = [line for line in (_inert(_clip(alert.title, max(20, limit // 4))), link) if line]
    return _message(title, newline.join(lines), fmt)


def _message(title: str, body: str, fmt: Format) -> Message:
    heading = _mark(_escape(title, fmt), fmt) if fmt != "text" else _inert(title)
    return Message(_inert(title), body, fmt, heading)


def render_digest(
    alerts: Sequence[AlertView], fmt: Format, zone: ZoneInfo, heading: str, limit: int | None = None
) -> Message:
    """Several stories in one message: one line each, most urgent first, at most DIGEST_MAX listed, and as
    many whole lines (each with its link) as `limit` characters of body hold."""
    newline = "<br>\n" if fmt == "html" else "\n"
    order = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
    ranked = sorted(alerts, key=lambda a: (order.get(a.priority, 2), a.detected))
    lines = []
    for alert in ranked[:DIGEST_MAX]:
        headline = highlight(alert.title, alert.hits, "title", fmt)
        if change := _change(alert, outlets=False):
            headline = _escape(f"{change}: ", fmt) + headline
        parts = [f"[{alert.priority}]", headline, f"({_escape(alert.outlet, fmt)}, {_when(alert.detected, zone)})"]
        link = _link(alert.link, fmt)
        if link:
            parts.append(link)
        lines.append(" ".join(parts))
    tail = 60  # room for the "… and N more" line
    while limit is not None and len(newline.join(lines)) + tail > limit and len(lines) > 1:
        lines.pop()
    if len(ranked) > len(lines):
        lines.append(f"… and {len(ranked) - len(lines)} more: see `monitor alerts`")
    return _message(f"{heading}: {len(alerts)} stories", newline.join(lines), fmt)


def render_test(channel: str, fmt: Format) -> Message:
    return _message("monitor: test message", f"This is a test from monitor to channel {_escape(channel, fmt)}.", fmt)
