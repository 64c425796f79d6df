"""Text folding for matching: one normal form for names, words and the text they are looked for in. Pure.

`fold_words(text)` turns text into lower-case words separated by single spaces, with a space at each end:

- case-insensitive (`str.casefold`, so `ß` = `ss` and Greek final sigma = sigma);
- diacritic-insensitive in any script: compatibility decomposition, then combining accents are dropped
  (Latin, Greek, Cyrillic, Armenian, Hebrew and Arabic marks), so text in decomposed form matches names
  in composed form; Japanese voicing marks stay (they make other words) and compose with their kana;
  invisible format characters (soft hyphen, zero-width joiners) vanish, a zero-width space separates;
- Latin letters that do not decompose are folded the way Lucene's ASCIIFoldingFilter folds them
  (`ə` → `e`, `ı` → `i`, `ø` → `o`, `ł` → `l`, `æ` → `ae`, ...);
- every character that is not a letter, mark or digit separates words, so `Nagorno–Karabakh` and
  `Azerbaijan's` split where a reader would;
- each character of a script written without spaces (Chinese, Japanese, Thai, ...) is a word of its own, so
  a name in those scripts matches as a run of characters anywhere inside a longer run.

Why by hand: no maintained Python port of Lucene's folding exists, and ICU's `Latin-ASCII` transform needs a
system ICU build. The per-character table is built lazily and cached, and ASCII text takes a fast path that
the profile showed is 5-10x faster than folding every character.

`FoldedText` keeps the way back: for a span of whole words in the folded form it gives the character
offsets in the original text and the word numbers (for `NEAR`). That mapping is built only when asked for,
since most items have no hit.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from itertools import chain, repeat

# Latin letters with no decomposition, folded as Lucene's ASCIIFoldingFilter does (lower case only:
# the table is consulted after casefold).
_LATIN_EXTRA: dict[str, str] = {
    "ə": "e", "ǝ": "e", "ɛ": "e", "ı": "i", "ɨ": "i", "ø": "o", "ɔ": "o", "ł": "l", "ŀ": "l", "ƚ": "l",
    "đ": "d", "ð": "d", "ɖ": "d", "ɗ": "d", "ħ": "h", "ŧ": "t", "ƭ": "t", "ŋ": "n", "ɲ": "n", "ĸ": "q",
    "ƀ": "b", "ɓ": "b", "ƈ": "c", "ȼ": "c", "ƒ": "f", "ɠ": "g", "ǥ": "g", "ƙ": "k", "ɱ": "m", "ƥ": "p",
    "ʠ": "q", "ɍ": "r", "ʂ": "s", "ȿ": "s", "ʉ": "u", "ʋ": "v", "ƴ": "y", "ɏ": "y", "ƶ": "z", "ȥ": "z",
    "ʐ": "z", "ʑ": "z", "æ": "ae", "œ": "oe", "þ": "th", "ĳ": "ij", "ƿ": "w", "ȣ": "ou",
    # Apostrophe-like letters: a separator, as the ASCII apostrophe is.
    "ʼ": " ", "ʻ": " ", "ʹ": " ", "ʽ": " ",
    # Arabic tatweel only stretches a word.
    "ـ": "",
}  # fmt: skip

# Combining marks that are accents (dropped); other marks (Japanese voicing, Indic vowel signs) stay.
_ACCENT_RANGES = (
    (0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05C7), (0x0610, 0x061A), (0x064B, 0x065F),
    (0x0670, 0x0670), (0x06D6, 0x06ED), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)  # fmt: skip

# Japanese voicing marks, combining and half-width: text in decomposed form (カ + ゙) must fold as the
# composed kana (ガ) does, and ガ must stay apart from カ (ガザ, Gaza, is not inside カサブランカ).
_VOICING = frozenset("\u3099\u309a\uff9e\uff9f")


# Scripts written without spaces between words: each character is a word of its own.
_NOSPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3134F),  # CJK extensions B-G
)


def _in_ranges(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def is_nospace(char: str) -> bool:
    """True for a character of a script written without spaces between words."""
    return _in_ranges(ord(char), _NOSPACE_RANGES)


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN"


def _fold_char(char: str) -> str:
    """Folded form of one character: lower case, no accents, Latin as ASCII, separators as one space."""
    if char in _VOICING:
        return ""  # a voicing mark left on its own; composed with its kana in `_pieces`
    if unicodedata.category(char) == "Cf" and char != "\u200b":
        return ""  # soft hyphen, zero-width joiners, direction marks: invisible inside a word
    if not _is_word_char(char):
        return " "
    out: list[str] = []
    # Case-fold on both sides of the decomposition: `ᴬ` and mathematical capitals only decompose to a
    # cased letter.
    for part in unicodedata.normalize("NFKD", _LATIN_EXTRA.get(char.casefold(), char.casefold())).casefold():
        if _in_ranges(ord(part), _ACCENT_RANGES) or unicodedata.category(part) == "Cf":
            continue
        part = _LATIN_EXTRA.get(part, part)
        out.append(part if all(_is_word_char(c) for c in part) else " ")
    folded = unicodedata.normalize("NFC", "".join(out))
    if folded and is_nospace(char):
        return f" {' '.join(folded)} "
    return folded


class _FoldTable(dict[int, str]):
    """`str.translate` table that folds each character on first sight and remembers it."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        self[code] = folded
        return folded


_TABLE = _FoldTable()
_ASCII_TABLE = {code: _fold_char(chr(code)) for code in range(128)}
_TABLE.update(_ASCII_TABLE)
_ASCII_BYTES = bytes.maketrans(bytes(range(128)), "".join(_ASCII_TABLE[code] for code in range(128)).encode("ascii"))
_SPACE_RUN = re.compile(r"^ +| {2,}")


def fold_char(char: str) -> str:
    """The folded form of one character (`" "` for a separator)."""
    return _TABLE[ord(char)]


def _pieces(text: str) -> list[str]:
    """The folded form of each character of `text`, a voicing mark composed into the kana before it."""
    pieces = [_TABLE[ord(char)] for char in text]
    for index in range(1, len(text)):
        if text[index] in _VOICING:
            composed = unicodedata.normalize("NFKC", text[index - 1 : index + 1])
            if len(composed) == 1:
                pieces[index - 1] = _TABLE[ord(composed)]
    return pieces


def _has_voicing(text: str) -> bool:
    return "\u3099" in text or "\u309a" in text or "\uff9e" in text or "\uff9f" in text


def fold_words(text: str) -> str:
    """`text` folded to lower-case words joined by single spaces, with one space before and after."""
    if text.isascii():
        # bytes.translate and bytes.split run several times faster than their str twins.
        return " " + b" ".join(text.encode("ascii").translate(_ASCII_BYTES).split()).decode("ascii") + " "
    separated = "".join(_pieces(text)) if _has_voicing(text) else text.translate(_TABLE)
    return " " + " ".join(separated.split()) + " "


class FoldedText:
    """A field's text, folded, with the way back from folded word spans to the original characters.

    The way back has two steps, each built only when a hit needs it: folded words were joined by one space
    where the separated text had runs of separators (`_gaps`), and a character may have folded to zero or
    several characters (`_origin`, None when every character folded to exactly one).
    """

    __slots__ = ("_gaps", "_origin", "folded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.folded = fold_words(text)
        self._gaps: tuple[list[int], list[int]] | None = None
        self._origin: list[int] | None = None

    def _build(self) -> tuple[list[int], list[int]]:
        text = self.text
        if text.isascii():
            separated = text.translate(_ASCII_TABLE)
        else:
            if _has_voicing(text):
                pieces = _pieces(text)
                lengths = list(map(len, pieces))
                separated = "".join(pieces)
            else:
                lengths = list(map(len, map(_TABLE.__getitem__, map(ord, text))))
                separated = text.translate(_TABLE)
            if len(separated) != len(text) or lengths.count(1) != len(lengths):
                self._origin = list(chain.from_iterable(map(repeat, range(len(text)), lengths)))
        # Each run of separators became one space (a leading run, none): from a folded position on, the
        # separated text is `shift` characters further along.
        thresholds: list[int] = [0]
        shifts: list[int] = [-1]
        shift = -1
        for run in _SPACE_RUN.finditer(separated):
            begin, end = run.span()
            shift += end - begin if begin == 0 else end - begin - 1
            thresholds.append(end - shift)
            shifts.append(shift)
        self._gaps = (thresholds, shifts)
        return self._gaps

    def _separated(self, position: int) -> int:
        thresholds, shifts = self._gaps if self._gaps is not None else self._build()
        return position + shifts[bisect.bisect_right(thresholds, position) - 1]

    def words(self, start: int, end: int) -> tuple[int, int]:
        """Word numbers (first, last) of the folded span [start, end), which covers whole words."""
        folded = self.folded
        first = folded.count(" ", 0, start) - 1
        return first, first + folded.count(" ", start, end)

    def original(self, start: int, end: int) -> tuple[int, int]:
        """Character offsets in the original text of the folded span [start, end) of whole words."""
        begin = self._separated(start)
        last = self._separated(end - 1)
        origin = self._origin
        if origin is None:
            return begin, last + 1
        end = origin[last] + 1
        text = self.text
        while end < len(text) and not _TABLE[ord(text[end])]:
            end += 1  # a combining accent after the last letter belongs to the word as written
        return origin[begin], end
