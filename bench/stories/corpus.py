"""The Karabakh items of `../shared/corpus/karabakh/` as the story evaluation reads them (never copied here).

Each `items_*.json` file is one day of one outlet's feed as captured by rumca-js/RSS-Link-Database. An item is
known by its link, which is what the labels name.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "karabakh"


@dataclass(frozen=True)
class CorpusItem:
    link: str
    feed: str
    """The feed URL the item was captured from."""
    title: str
    summary: str
    published: datetime
    language: str | None
    file: str


def load(folder: Path = CORPUS) -> list[CorpusItem]:
    """Every item of every `items_*.json` file, in publication order; an item seen twice (the same link in
    two captures of one feed) once."""
    seen: set[str] = set()
    items: list[CorpusItem] = []
    for path in sorted(folder.glob("items_*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["entries"] if isinstance(data, dict) else data
        for entry in entries:
            link = entry.get("link")
            if not link or link in seen or not entry.get("title"):
                continue
            seen.add(link)
            items.append(
                CorpusItem(
                    link=link,
                    feed=entry["source"],
                    title=html.unescape(entry["title"]).strip(),
                    summary=html.unescape(entry.get("description") or "").strip(),
                    published=datetime.fromisoformat(entry["date_published"].replace("Z", "+00:00")),
                    language=entry.get("language"),
                    file=path.name,
                )
            )
    items.sort(key=lambda item: (item.published, item.link))
    return items
