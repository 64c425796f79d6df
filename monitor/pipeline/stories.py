"""The story layer: does a new item report the same event as an item already stored? Pure.

DESIGN.md §6, the fourth dedup layer. Outlets rewrite a wire story's headline and lede, so the question is
asked of words, weighted by how much they say: each item is reduced to a `Sketch`, the folded and stemmed
words of its title and lede, each weighted by its rarity in general language (wordfreq's frequency lists
for the languages the desk reads: "the" weighs nothing, "said" little, "Stepanakert" or "surrender" a lot).
Two items are judged one story when

- they come from different feeds (an outlet running a second item on a subject runs a new development), or
  one feed re-posted a near-copy (similarity ≥ 0.9, the same numbers in the title) within 12 hours;
- they were published close enough: the bar rises with the time between them and nothing joins beyond the
  window;
- the weighted cosine of their words clears the bar, they share at least two informative words (never a
  single name or place: two events in one city are two stories), and the words that are not names agree
  too (what happened, not only to whom and where);
- and their titles do not fill one template with different names or numbers ("England v Chile ... how to
  watch" and "England v Samoa ... how to watch"): those are always two stories.

An item joins a story only if it is one story with every item the story shows (`choose`), not just the
nearest: a story grows one development at a time, and what resembles only its latest turn is news.

A false join is worse than a missed one (it swallows a development the desk never hears of), so the bars
are set for precision; `bench/stories/evaluate.py` measures both on hand-labelled real coverage.

Why by hand and not scikit-learn's TfidfVectorizer: the weights must exist for the first item a service
ever sees and stay the same across restarts and instances, so they come from a fixed frequency list, not
from a corpus fitted at run time; what is left (a weighted cosine over a few dozen words) is a few lines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from monitor.pipeline.fold import fold_words, is_nospace

LEDE_CHARS = 400
"""Of the summary (or content, when there is no summary), the start that is compared: a lede."""
KEY_WEIGHT = 2.5
"""Words at least this informative index the item: a candidate story shares at least one of them."""
MAX_KEYS = 12
INFORMATIVE = 2.0
"""Two items must share at least two words at least this informative."""
LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "pl", "ru", "uk", "tr", "nl")
"""Whose frequency lists weigh words: a word common in any of them says little."""
_MAX_WEIGHT = 5.0
_ZIPF_TOP = 7.0
_UNLISTED_ZIPF = 2.0

# (hours apart at most, cosine needed): the bar rises with the time between two items.
BARS: tuple[tuple[float, float], ...] = ((6.0, 0.50), (24.0, 0.56), (48.0, 0.70), (float("inf"), 0.80))
SAME_FEED_BAR = 0.90
SAME_FEED_EVENT_BAR = 0.50
SAME_FEED_APART = timedelta(hours=12)


@dataclass(frozen=True)
class StoryPolicy:
    """keywords.toml's `[stories]`: how stories are formed and followed."""

    window: timedelta = timedelta(hours=72)
    spread_alert: int | None = None


DEFAULT_POLICY = StoryPolicy()


@dataclass(frozen=True)
class Sketch:
    """The words of an item's title and lede that decide its story, with their weights."""

    base: dict[str, float]
    """Word (stemmed) → how informative it is on its own (`weight`)."""
    title: frozenset[str]
    names: frozenset[str]
    """Title words that read as names: capitalised inside a headline that is not in Title Case."""
    proper: frozenset[str]
    """Every word that reads as a name (capitalised mid-sentence in the title or lede): who and where, which
    `event_similarity` leaves out."""
    weights: dict[str, float] = field(init=False, compare=False)
    """Word → weight in the comparison: title words count twice."""
    norm: float = field(init=False, compare=False)
    keys: tuple[str, ...] = field(init=False, compare=False)
    """The item's most informative words: how stories that may share its event are found."""
    event: dict[str, float] = field(init=False, compare=False)
    """The weights of the words that are not names (`event_similarity`)."""
    event_norm2: float = field(init=False, compare=False)
    numbers: frozenset[str] = field(init=False, compare=False)
    """Title words with a digit: "200" in "toll rises to 200"."""

    def __post_init__(self) -> None:
        weights = {w: 2 * v if w in self.title else v for w, v in self.base.items()}
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "norm", math.sqrt(sum(v * v for v in weights.values())))
        ranked = sorted((w for w, v in self.base.items() if v >= KEY_WEIGHT), key=lambda w: (-self.base[w], w))
        object.__setattr__(self, "keys", tuple(ranked[:MAX_KEYS]))
        event = {w: v for w, v in weights.items() if self.base[w] <= NAME_WEIGHT and w not in self.proper}
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "event_norm2", sum(v * v for v in event.values()))
        object.__setattr__(self, "numbers", frozenset(w for w in self.title if any(c.isdigit() for c in w)))

    def encode(self) -> str:
        """A compact form for the database: `word:weight` for title words, then the rest, then the names."""
        title = " ".join(f"{w}:{self.base[w]:.1f}" for w in sorted(self.title) if w in self.base)
        rest = " ".join(f"{w}:{v:.1f}" for w, v in self.base.items() if w not in self.title)
        return " | ".join((title, rest, " ".join(sorted(self.names)), " ".join(sorted(self.proper))))


@dataclass(frozen=True)
class Member:
    """An item already in a story, as the story layer compares it."""

    story_id: int
    feed_id: int
    published: datetime
    """Publication time, else when the service first saw it."""
    sketch: Sketch


@lru_cache(maxsize=1)
def _zipf_table() -> dict[str, int]:
    """Folded word → ten times its highest Zipf frequency (log10 per billion words) across `LANGUAGES`.
    Loaded once, on the first story question (~0.4 s, ~20 MB). Words rarer than 1 per million in English,
    and 1 per 30,000 in the other languages (their common words: articles, prepositions, verbs of saying),
    are left out: they weigh the most anyway, and a table of every listed word of eleven languages took
    40 MB. wordfreq's own copies of its lists are let go once read."""
    import wordfreq  # ~20 MB of lists: only a process that clusters loads it

    table: dict[str, int] = {}
    try:
        for language in LANGUAGES:
            # Bucket i holds the words of frequency 10^(-i/100): Zipf 9 - i/100, kept in tenths (small ints
            # are shared objects: no memory per entry).
            floor = 30 if language == "en" else 45
            for bucket, words in enumerate(wordfreq.get_frequency_list(language, "small")):
                zipf_tenths = 90 - bucket // 10
                if zipf_tenths < floor:
                    break
                for word in words:
                    for part in fold_words(word).split():
                        if table.get(part, 0) < zipf_tenths:
                            table[part] = zipf_tenths
            wordfreq.get_frequency_list.cache_clear()  # one language's list in memory at a time
    finally:
        wordfreq.get_frequency_list.cache_clear()
    return table


def weight(word: str) -> float:
    """How much sharing `word` says: 0 for the commonest words, up to 5 for names and rare words."""
    known = _WEIGHTS.get(word)
    if known is None:
        if word.isdigit():
            known = 0.5 if len(word) == 4 else 1.0  # years and counts say little on their own
        else:
            zipf = _zipf_table().get(word, _UNLISTED_ZIPF * 10) / 10
            known = max(0.0, min(_MAX_WEIGHT, _ZIPF_TOP - zipf - 0.5))
        if len(_WEIGHTS) < 200_000:  # bounded: a stream of rare words must not grow it for ever
            _WEIGHTS[word] = known
    return known


_WEIGHTS: dict[str, float] = {}


def _words(folded: str) -> list[str]:
    """Words of folded text; runs of single characters of a script without spaces become bigrams."""
    parts = folded.split()
    if not any(len(p) == 1 and is_nospace(p) for p in parts):
        return [p for p in parts if len(p) > 1 or p.isdigit()]
    words: list[str] = []
    for index, part in enumerate(parts):
        if len(part) == 1 and is_nospace(part):
            if index + 1 < len(parts) and len(parts[index + 1]) == 1 and is_nospace(parts[index + 1]):
                words.append(part + parts[index + 1])
        elif len(part) > 1 or part.isdigit():
            words.append(part)
    return words


def _names(title: str) -> frozenset[str]:
    """Title words that read as names: capitalised, not first, in a headline that is not Title Case."""
    raw = [w for w in title.replace("-", " ").split() if w[:1].isalpha()]
    if len(raw) < 3:
        return frozenset()
    capitals = [w for w in raw[1:] if w[:1].isupper()]
    if len(capitals) > 0.5 * (len(raw) - 1):
        return frozenset()  # Title Case: capitals say nothing
    return frozenset(word for w in capitals for word in _words(fold_words(w)))


_SENTENCE_END = frozenset(".!?:;\"'“”‘’«»|–—-")


def _proper(title: str, lede: str) -> frozenset[str]:
    """Words capitalised other than at the start of a sentence, in the lede and in a headline not in Title
    Case: the names of the story's people, places and organisations, in any Latin, Greek or Cyrillic text."""
    found: set[str] = set(_names(title))
    words = lede.split()
    for index, word in enumerate(words):
        if index and word[:1].isupper() and words[index - 1][-1:] not in _SENTENCE_END:
            found.update(_words(fold_words(word)))
    return frozenset(found)


def sketch(title: str, summary: str, content: str = "") -> Sketch:
    """The sketch of an item's title and lede (plain text, as normalised)."""
    lede = (summary or content)[:LEDE_CHARS]
    title_words = _stemmed(_words(fold_words(title)))
    base: dict[str, float] = {}
    for stem, word in [*title_words, *_stemmed(_words(fold_words(lede)))]:
        base[stem] = max(base.get(stem, 0.0), round(weight(word), 1))
    base = {w: v for w, v in base.items() if v > 0}
    proper = frozenset(stem for stem, _ in _stemmed(sorted(_proper(title, lede))))
    names = frozenset(stem for stem, _ in _stemmed(sorted(_names(title))))
    return Sketch(base, frozenset(stem for stem, _ in title_words), names, proper)


@lru_cache(maxsize=1024)
def decode(text: str) -> Sketch:
    """A sketch back from `Sketch.encode` (remembered: the items of a busy story are compared again and
    again)."""
    title_part, body, names, proper = [*text.split(" | "), "", "", ""][:4]
    base: dict[str, float] = {}
    title: set[str] = set()
    for part, in_title in ((title_part, True), (body, False)):
        for pair in part.split():
            word, _, value = pair.rpartition(":")
            base[word] = float(value)
            if in_title:
                title.add(word)
    return Sketch(base, frozenset(title), frozenset(names.split()), frozenset(proper.split()))


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer  # PyStemmer: Snowball's English stemmer in C

    return Stemmer.Stemmer("english")


def _stemmed(words: Iterable[str]) -> list[tuple[str, str]]:
    """(stem, word) for each word: English inflections folded (`launches`, `launched` → `launch`), other
    scripts and short words as they are."""
    stem = _stemmer().stemWord
    return [(stem(w) if len(w) > 3 and w.isascii() and w.isalpha() else w, w) for w in words]


def similarity(a: Sketch, b: Sketch) -> float:
    """Weighted cosine of the two sketches' words (each word weighted as informative as its lighter use)."""
    if not a.norm or not b.norm:
        return 0.0
    small, large = (a, b) if len(a.weights) <= len(b.weights) else (b, a)
    dot = sum(v * large.weights[w] for w, v in small.weights.items() if w in large.weights)
    return dot / (a.norm * b.norm)


NAME_WEIGHT = 3.5
"""Words weighing more than this (rarer than ~1 in a million words) are mostly names: places, people, groups."""
EVENT_BAR = 0.25
"""The words that are not names must agree this much too: a story is an event, not the names it happens to."""


def event_similarity(a: Sketch, b: Sketch) -> float:
    """Weighted cosine over the words that are not names: what happened, not to whom or where."""
    # Each side's words less the names of either side; the norms are corrected for the other's names only.
    left, right = a.event, b.event
    left2 = a.event_norm2 - sum(left[w] ** 2 for w in b.proper if w in left)
    right2 = b.event_norm2 - sum(right[w] ** 2 for w in a.proper if w in right)
    if left2 <= 1e-12 or right2 <= 1e-12:
        return 0.0
    if len(left) > len(right):
        left, right = right, left
    dot = sum(v * right[w] for w, v in left.items() if w in right and w not in a.proper and w not in b.proper)
    return dot / math.sqrt(left2 * right2)


def _informative_shared(a: Sketch, b: Sketch) -> int:
    return sum(1 for w, v in a.base.items() if w in b.base and min(v, b.base[w]) >= INFORMATIVE)


TEMPLATE_SHARE = 0.75
"""Two titles are one template when, their differing names and numbers aside, they share this much."""


def _templated(a: Sketch, b: Sketch) -> bool:
    """One template filled twice ("England v Chile ... how to watch", "England v Samoa ..."), two stories:
    both titles name someone or something (or give a number) the other item never mentions, and the rest of
    the two titles is nearly the same words. A rewrite that adds a name of its own is no template."""
    left = (a.names | a.numbers) - b.weights.keys()
    right = (b.names | b.numbers) - a.weights.keys()
    if not left or not right:
        return False
    rest_a, rest_b = a.title - left, b.title - right
    union = len(rest_a | rest_b)
    return bool(union) and len(rest_a & rest_b) >= TEMPLATE_SHARE * union


def bar(apart: timedelta) -> float:
    hours = abs(apart.total_seconds()) / 3600
    return next(needed for limit, needed in BARS if hours <= limit)


def score(new: Sketch, feed_id: int, published: datetime, member: Member, window: timedelta) -> float | None:
    """How far above its bar the pair stands (None: it may not join at all)."""
    apart = published - member.published
    if abs(apart) > window:
        return None
    if member.feed_id == feed_id:
        return _near_copy(new, member.sketch, abs(apart))
    # Cheapest test first: most pairs fail the similarity bar.
    margin = similarity(new, member.sketch) - bar(apart)
    if margin < 0 or _templated(new, member.sketch) or _informative_shared(new, member.sketch) < 2:
        return None
    return margin if event_similarity(new, member.sketch) >= EVENT_BAR else None


def _near_copy(new: Sketch, old: Sketch, apart: timedelta) -> float | None:
    """Within one feed only a near-copy joins (the outlet re-posted its article under a new link), and only
    within `SAME_FEED_APART`: a daily column repeating its title is a new story each day."""
    if apart > SAME_FEED_APART or _templated(new, old) or new.numbers != old.numbers:
        return None  # "story 1" and "story 2", "toll rises to 200" and "to 250": other items of the feed
    margin = similarity(new, old) - SAME_FEED_BAR
    return margin if margin >= 0 and event_similarity(new, old) >= SAME_FEED_EVENT_BAR else None


def choose(new: Sketch, feed_id: int, published: datetime, members: Iterable[Member],
           window: timedelta) -> int | None:  # fmt: skip
    """The story the new item joins, if any: one all of whose items within the window it clears the bar with,
    the one it clears by most. Every member must agree, not just the closest: a story grows one development
    at a time, and an item that resembles only its latest turn is a new development."""
    stories: dict[int, list[Member]] = {}
    for member in members:
        if abs(published - member.published) <= window:
            stories.setdefault(member.story_id, []).append(member)
    best: tuple[float, int] | None = None
    for story, group in stories.items():
        lowest: float | None = None
        for member in group:
            margin = score(new, feed_id, published, member, window)
            if margin is None:
                break
            lowest = margin if lowest is None else min(lowest, margin)
        else:
            if lowest is not None and (best is None or lowest > best[0]):
                best = (lowest, story)
    return None if best is None else best[1]
