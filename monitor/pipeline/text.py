"""HTML to plain text, the way a reader sees it. Pure.

Feeds put HTML, entities and sometimes scripts into titles and summaries. Matching and hit offsets are
defined on the text a person would read: tags, comments, attributes and script/style bodies vanish,
entities are decoded, block elements and line breaks separate words, and runs of whitespace collapse to
one space. A field that has no markup at all is returned unchanged, so offsets into plain input are
offsets into the input itself.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# A tag opener (`<p`, `</b`, `<!--`, `<?xml`) or a character reference; `a < b` and `AT&T` are plain text.
_MARKUP = re.compile(r"<[A-Za-z/!?]|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SPACE = re.compile(r"\s+")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)

# Elements whose content is never text a reader sees.
_HIDDEN = frozenset({"script", "style", "template", "noscript", "head", "title", "svg", "math", "iframe"})
# Elements that separate words even when the source has no whitespace between them.
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main", "nav", "ol", "p",
        "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip


def looks_like_html(text: str) -> bool:
    """True when `text` has a tag or a character reference, so it must be read as HTML."""
    return _MARKUP.search(text) is not None


class _Extractor(HTMLParser):
    """Collects visible text; the stdlib parser is lenient with the broken HTML feeds carry."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_depth += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed and trimmed."""
    extractor = _Extractor()
    # A comment left open runs to the end, as in a browser; the stdlib parser would show it as text.
    extractor.feed(_COMMENT.sub("", html))
    extractor.close()
    return _SPACE.sub(" ", "".join(extractor.parts)).strip()


def visible_text(field: str) -> str:
    """`field` as text: parsed as HTML when it has markup, otherwise returned exactly as given."""
    return html_to_text(field) if looks_like_html(field) else field
