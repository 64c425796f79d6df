"""Items as `monitor match` reads them: JSON Lines in, Documents out; results back to JSON Lines. Pure.

Input, one object per line: {"id": …, "title": …, "summary": …} with `content`, `link` and `language`
optional and other keys ignored (exported items carry more). `summary` and `content` may be HTML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from monitor.errors import InputError
from monitor.pipeline.text import visible_text
from monitor.records import Document, RuleMatch

_TEXT_FIELDS = ("title", "summary", "content")


@dataclass(frozen=True)
class InputItem:
    """One line of input: the id as the caller wrote it (string or number) and its text."""

    id: Any
    document: Document


def read_item(line: str, where: str) -> InputItem:
    """Parse one JSON Lines line; InputError names `where` (file:line) and what is wrong."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object with id, title and summary")
    if "id" not in obj or not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool):
        raise InputError(f'{where}: each item needs an "id" (a string or a number)')
    texts: dict[str, str] = {}
    for key in _TEXT_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: item {obj['id']!r}: {key!r} must be a string")
        texts[key] = visible_text(value) if value else ""
    language = obj.get("language")
    return InputItem(
        obj["id"],
        Document(str(obj["id"]), language=language if isinstance(language, str) else None, **texts),
    )


def read_items(lines: Iterable[str], name: str) -> Iterator[InputItem | InputError]:
    """Items from JSON Lines; a bad line yields its error in place, and reading goes on."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield read_item(line, f"{name}:{number}")
        except InputError as e:
            yield e


def result_line(item_id: Any, matches: Iterable[RuleMatch]) -> str:
    """The JSON Lines output for one item (DESIGN.md §4)."""
    return json.dumps(
        {
            "id": item_id,
            "matches": [
                {
                    "rule": m.rule,
                    "priority": m.priority,
                    "hits": [
                        {"ref": h.ref, "text": h.text, "field": h.field, "start": h.start, "end": h.end} for h in m.hits
                    ],
                }
                for m in matches
            ],
        },
        ensure_ascii=False,
    )
