"""The article `monitor draw` reads: a text or HTML file, or an http(s) URL fetched with the service's
fetcher and limits; its headline and main text, without navigation, ads or boilerplate (trafilatura)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import MonitorError
from monitor.policy import FetchPolicy

_HTML = re.compile(r"<\s*(html|body|p|div|article|head)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Article:
    source: str
    """The path or URL as given."""
    title: str | None
    """The headline, when the article has one apart from its text."""
    text: str
    """The main text, paragraphs separated by blank lines."""


def read_article(source: str, policy: FetchPolicy) -> Article:
    """The article at `source`; MonitorError says what is wrong with it."""
    if re.match(r"https?://", source, re.IGNORECASE):
        body = _fetch(source, policy)
        return _from_html(source, body.decode("utf-8", errors="replace"))
    path = Path(source)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MonitorError(f"{source}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    if _HTML.search(text[:5000]):
        return _from_html(source, text)
    return Article(source, None, _paragraphs(text))


def _fetch(url: str, policy: FetchPolicy) -> bytes:
    from monitor.fetch import Fetcher

    async def get() -> bytes:
        async with Fetcher(policy) as fetcher:
            result = await fetcher.fetch(url)
        if result.status != "ok":
            raise MonitorError(f"{url}: {result.error or result.status}")
        return result.body

    return asyncio.run(get())


def _from_html(source: str, html: str) -> Article:
    import trafilatura

    extracted = trafilatura.bare_extraction(
        html, include_comments=False, include_tables=False, favor_precision=True, with_metadata=True
    )
    if extracted is None:
        raise MonitorError(f"{source}: no article text found in the page")
    text = getattr(extracted, "text", None) or ""
    title = getattr(extracted, "title", None)
    if not text.strip():
        raise MonitorError(f"{source}: no article text found in the page")
    return Article(source, title.strip() if title else None, _paragraphs(text))


def _paragraphs(text: str) -> str:
    """One paragraph a block: lines joined, blocks separated by one blank line."""
    blocks = re.split(r"\n\s*\n|\r\n\s*\r\n", text.replace("\r\n", "\n"))
    lines = []
    for block in blocks:
        for line in block.split("\n"):
            if line.strip():
                lines.append(" ".join(line.split()))
    return "\n\n".join(lines)
