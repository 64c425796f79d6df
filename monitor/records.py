"""The plain, immutable records that flow between the pipeline's stages.

Each stage takes records and returns records; ORM models never leave `store/`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
