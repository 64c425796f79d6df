"""Apprise, behind one door: URL checks, masking, and sending. The only module that imports apprise.

Apprise is imported on first use, not at import time: it loads every plugin (most of a second), and
commands such as `monitor match` never send anything.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from urllib.parse import urlsplit

from monitor.pipeline.render import Message


class _SecretFilter(logging.Filter):
    """Guards the loggers of Apprise and its HTTP stack: Apprise logs a webhook's full path at DEBUG
    ("Loaded JSON URL: ..."), and a path can be the secret. Their chatter below WARNING is dropped; what is
    left is scrubbed of every piece of every URL this process has handed Apprise."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        for url in list(self.urls):
            message = scrub(message, url)
        record.msg, record.args = message, None
        return True


_SECRETS = _SecretFilter()


@cache
def _apprise() -> ModuleType:
    import apprise

    # Apprise sends through requests/urllib3, whose DEBUG lines carry each request's path: the secret of a
    # webhook URL. Their records are filtered like Apprise's own, whatever level the root logger is at.
    for name in ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests"):
        logging.getLogger(name).addFilter(_SECRETS)
    return apprise


def _known(url: str) -> str:
    _SECRETS.urls.add(url)
    return url


def check_url(url: str) -> str | None:
    """None when Apprise can send to `url`, else why not, without repeating the URL (it may hold secrets)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if not scheme:
        return "not an Apprise URL: write it as scheme://… (e.g. mailto://, slack://, json://)"
    if _apprise().Apprise.instantiate(_known(url)) is None:
        return f"Apprise cannot use this {scheme}:// URL: check the scheme and its required parts"
    return None


def mask_url(url: str) -> str:
    """A form of `url` safe to log or store: scheme and Apprise's masked host, path and query hidden.

    A short digest tells two targets of one channel apart without revealing either.
    """
    digest = hashlib.sha256(url.encode()).hexdigest()[:6]
    scheme = urlsplit(url).scheme if "://" in url else "?"
    plugin = _apprise().Apprise.instantiate(_known(url)) if scheme != "?" else None
    netloc = urlsplit(plugin.url(privacy=True)).netloc if plugin is not None else "…"
    return f"{scheme}://{netloc}/…#{digest}"


# Webhook-style services let us send the idempotency key as a header, so a receiver can drop the resend
# that follows a crash between its acceptance and our record of it.
_HEADER_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls")


@dataclass(frozen=True)
class SendResult:
    """How one send went. `ok` False with `retry` True is worth trying again later."""

    ok: bool
    error: str | None = None
    retry: bool = True


def message_format(url: str) -> str:
    """The body format the service behind `url` takes natively: text, markdown or html."""
    plugin = _apprise().Apprise.instantiate(_known(url))
    native = getattr(plugin, "notify_format", None)
    if isinstance(native, tuple | list):  # Apprise 2 lists the formats a service takes, preferred first
        native = native[0] if native else None
    value = getattr(native, "value", "text")
    return value if value in ("text", "markdown", "html") else "text"


def body_limit(url: str) -> int | None:
    """The most characters of body the service behind `url` takes (Apprise knows each: Telegram 4,096,
    Discord 2,000, ntfy 7,800), less the heading it carries there when it has no title field."""
    plugin = _apprise().Apprise.instantiate(_known(url))
    limit = getattr(plugin, "body_maxlen", 0) or 0
    if limit <= 0 or limit >= 1_000_000:
        return None
    return limit - (0 if getattr(plugin, "title_maxlen", 1) else TITLE_ROOM)


def min_gap(url: str) -> float:
    """Seconds to leave between two messages to the target behind `url`: the pace its chat service accepts
    (Telegram one a second per chat, Slack one a second per channel). Webhooks and mail servers take bursts:
    pacing them would only delay the desk."""
    return _PACE.get(urlsplit(url).scheme.lower(), 0.0)


_PACE = {"tgram": 1.0, "slack": 1.0, "discord": 0.5, "msteams": 1.0, "mmost": 0.5, "rocket": 0.5, "matrix": 0.5}
"""Seconds between messages the chat services take (their published rate limits), by Apprise scheme."""


TITLE_ROOM = 260
"""Characters kept for the heading that opens the body of a service with no title field."""


def scrub(text: str, url: str) -> str:
    """`text` with every long piece of `url` (tokens, passwords, webhook paths) replaced by ***."""
    for piece in sorted(set(re.split(r"[^A-Za-z0-9_\-.~%]+", url)), key=len, reverse=True):
        if len(piece) >= 4 and piece.lower() not in _SAFE_PIECES:
            text = text.replace(piece, "***")
    return text


_SAFE_PIECES = frozenset({"http", "https", "json", "jsons", "mailto", "mailtos", "localhost", "127.0.0.1"})


def send(url: str, message: Message, idempotency_key: str) -> SendResult:
    """One Apprise call to one target. Blocking: run it in a worker thread."""
    apprise = _apprise()
    scheme = urlsplit(url).scheme.lower()
    if scheme in _HEADER_SCHEMES:
        url += ("&" if "?" in url else "?") + "+X-Idempotency-Key=" + idempotency_key
    try:
        plugin = apprise.Apprise.instantiate(_known(url))
        if plugin is None:
            return SendResult(False, f"Apprise cannot use this {scheme}:// URL (fix it in channels.toml)")
        title, body = message.title, message.body
        if not getattr(plugin, "title_maxlen", 1):
            # A service with no title field gets Apprise's own merge of title into body, unescaped: so the
            # body opens with the heading this side escaped for its format instead.
            title, body = (
                "",
                f"{message.heading}\n{body}" if message.format != "html" else f"{message.heading}<br>\n{body}",
            )
        sender = apprise.Apprise()
        sender.add(plugin)
        result = sender.notify(body=body, title=title, body_format=message.format)
    except Exception as e:  # Apprise plugins raise anything; one target's trouble is a value
        return SendResult(False, scrub(f"Apprise raised {type(e).__name__}: {e}", url))
    if result is None:
        return SendResult(False, "Apprise had no service to notify (a config problem, not a success)", retry=False)
    if result:
        return SendResult(True)
    status = str(getattr(getattr(result, "status", None), "name", "FAILURE"))
    if status == "NOMATCH":
        return SendResult(False, "Apprise had no service to notify (a config problem, not a success)", retry=False)
    if status == "TIMEOUT":
        return SendResult(False, "Apprise timed out sending")
    warnings = [entry.message for entry in getattr(result, "logs", list)() if entry.level in ("WARNING", "ERROR")]
    return SendResult(False, scrub(f"send failed: {warnings[-1] if warnings else 'no reason given'}", url))
