"""Apprise, behind one door: URL checks, masking, and sending. The only module that imports apprise.

Apprise is imported on first use, not at import time: it loads every plugin (most of a second), and
commands such as `monitor match` never send anything.
"""

from __future__ import annotations

import hashlib
from functools import cache
from types import ModuleType
from urllib.parse import urlsplit


@cache
def _apprise() -> ModuleType:
    import apprise

    return apprise


def check_url(url: str) -> str | None:
    """None when Apprise can send to `url`, else why not, without repeating the URL (it may hold secrets)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if not scheme:
        return "not an Apprise URL: write it as scheme://… (e.g. mailto://, slack://, json://)"
    if _apprise().Apprise.instantiate(url) is None:
        return f"Apprise cannot use this {scheme}:// URL: check the scheme and its required parts"
    return None


def mask_url(url: str) -> str:
    """A form of `url` safe to log or store: scheme and Apprise's masked host, path and query hidden.

    A short digest tells two targets of one channel apart without revealing either.
    """
    digest = hashlib.sha256(url.encode()).hexdigest()[:6]
    scheme = urlsplit(url).scheme if "://" in url else "?"
    plugin = _apprise().Apprise.instantiate(url) if scheme != "?" else None
    netloc = urlsplit(plugin.url(privacy=True)).netloc if plugin is not None else "…"
    return f"{scheme}://{netloc}/…#{digest}"
