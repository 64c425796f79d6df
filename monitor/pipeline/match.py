"""The matcher: every name, word and literal of a watch list searched at once, then each rule evaluated. Pure.

All patterns go into one Aho-Corasick automaton over the folded text (see `fold`), keyed with a space on
each side, so the automaton itself reports only whole-word hits and reports every one of them, overlapping
names included (`EU Mission in Armenia` and `Armenia`), which a regex alternation cannot. A trailing `*`
drops the closing space from the key; the hit then runs to the end of that word. A `*` inside a phrase
(`Нагорн* Карабах*`) keys on the phrase up to that word, and the words after it are checked one by one.
The cost of an item is one automaton pass per field plus work per hit, whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import ahocorasick

from monitor.pipeline.fold import FoldedText, fold_words
from monitor.pipeline.query import And, Near, Node, Not, Or, Ref, Term, Title
from monitor.records import FIELDS, Document, Hit, Priority, RuleMatch

TITLE = 0  # index of the title in FIELDS


@dataclass(frozen=True)
class RuleSpec:
    """A rule as the matcher needs it: parsed, references already checked against the groups."""

    id: str
    priority: Priority
    query: Node


@dataclass(frozen=True)
class _Pattern:
    slot: int
    """Which group or literal this pattern belongs to."""
    key_length: int
    """Length of the automaton key, spaces included."""
    open_end: bool
    """The key's last word ends in `*`: the hit runs on to the end of that word."""
    then: tuple[tuple[str, bool], ...]
    """Words that must follow the key (word, is_prefix), for a `*` inside a phrase."""


class _Hit(NamedTuple):
    slot: int
    field: int
    start: int  # in the folded text, at a word start
    end: int  # in the folded text, at a word end


def pattern_words(text: str) -> list[tuple[str, bool]]:
    """Folded words of a name or literal, each with whether it ends in `*` (matches any continuation)."""
    words: list[tuple[str, bool]] = []
    for raw in text.split():
        prefix = raw.endswith("*")
        folded = fold_words(raw[:-1] if prefix else raw).split()
        words.extend((word, False) for word in folded[:-1])
        if folded:
            words.append((folded[-1], prefix))
    return words


def _key(words: list[tuple[str, bool]]) -> tuple[str, bool, tuple[tuple[str, bool], ...]]:
    """Automaton key of a pattern, whether it is open-ended, and the words left to check after it."""
    for index, (_, prefix) in enumerate(words):
        if prefix:
            head = " " + " ".join(w for w, _ in words[: index + 1])
            return head, True, tuple(words[index + 1 :])
    return " " + " ".join(w for w, _ in words) + " ", False, ()


def fold(document: Document) -> list[FoldedText]:
    """The title, summary and content of `document` as every matcher reads them."""
    return [FoldedText(document.title), FoldedText(document.summary), FoldedText(document.content)]


class Matcher:
    """A compiled watch list. Build once per config; `match` is safe to call from any thread."""

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        rules: Sequence[RuleSpec],
        entity_ids: Collection[str] | None = None,
    ) -> None:
        """`groups` maps entity and term-group ids to names or words; `rules` in config order.

        `entity_ids` says which groups are entities (default: all), which only guides rule indexing.
        """
        if entity_ids is None:
            entity_ids = groups.keys()
        self.rules = tuple(rules)
        self._slot_refs: list[str | None] = []
        slots: dict[tuple[str | None, str], int] = {}
        entries: dict[str, list[_Pattern]] = {}

        def add(ref: str | None, text: str) -> int:
            words = pattern_words(text)
            identity = (ref, " ".join(w + ("*" if p else "") for w, p in words)) if ref is None else (ref, "")
            slot = slots.get(identity)
            if slot is None:
                slot = slots[identity] = len(self._slot_refs)
                self._slot_refs.append(ref)
            if words:
                key, open_end, then = _key(words)
                pattern = _Pattern(slot, len(key), open_end, then)
                bucket = entries.setdefault(key, [])
                if pattern not in bucket:
                    bucket.append(pattern)
            return slot

        self._group_slots: dict[str, int] = {}
        for gid, names in groups.items():
            for name in names:
                self._group_slots[gid] = add(gid, name)
        self._compiled = [(rule, _compile(rule.query, self._group_slots, add)) for rule in self.rules]
        # A rule is tried only on items that have a hit in one of its trigger sets: slots without which it
        # cannot hold. Entity names are rarer in text than term-group words ("talks", "shelling"), so a rule
        # is filed under its entities when it can be; a rule that can hold with no hit at all (`NOT x`) is
        # tried on every item.
        terms = {slot for slot, ref in enumerate(self._slot_refs) if ref is not None and ref not in entity_ids}
        self._always: list[int] = []
        self._rules_of_slot: dict[int, list[int]] = {}
        for index, (_, tree) in enumerate(self._compiled):
            triggers = _triggers(tree)
            if not triggers:
                self._always.append(index)
                continue
            chosen = min(triggers, key=lambda t: (bool(t & terms), len(t)))
            for slot in chosen:
                self._rules_of_slot.setdefault(slot, []).append(index)
        self._automaton = ahocorasick.Automaton()
        for key, patterns in entries.items():
            self._automaton.add_word(key, tuple(patterns))
        if entries:
            self._automaton.make_automaton()
        self.pattern_count = sum(len(p) for p in entries.values())

    def match(self, document: Document, folded: list[FoldedText] | None = None) -> tuple[RuleMatch, ...]:
        """Every rule that fires on `document`, in config order, with the hits that made it fire. `folded`:
        its fields folded already (`fold`), when several matchers read one document."""
        texts = folded if folded is not None else fold(document)
        hits = self._find(texts)
        if not hits and not self._always:
            return ()
        candidates = set(self._always)
        for slot in hits:
            candidates.update(self._rules_of_slot.get(slot, ()))
        found: list[RuleMatch] = []
        for index in sorted(candidates):
            rule, tree = self._compiled[index]
            result = _evaluate(tree, hits, texts)
            if result is not None:
                found.append(RuleMatch(rule.id, rule.priority, self._report(result, texts)))
        return tuple(found)

    def _find(self, texts: list[FoldedText]) -> dict[int, list[_Hit]]:
        hits: dict[int, list[_Hit]] = {}
        if not self.pattern_count:
            return hits
        for field, text in enumerate(texts):
            folded = text.folded
            if len(folded) < 3:
                continue
            for last, patterns in self._automaton.iter(folded):
                for pattern in patterns:
                    start = last - pattern.key_length + 2
                    end = folded.index(" ", last) if pattern.open_end else last
                    if pattern.then:
                        end = _follow(folded, end, pattern.then)
                        if end < 0:
                            continue
                    hits.setdefault(pattern.slot, []).append(_Hit(pattern.slot, field, start, end))
        return hits

    def _report(self, result: Iterable[_Hit], texts: list[FoldedText]) -> tuple[Hit, ...]:
        seen: dict[tuple[str | None, int, int, int], Hit] = {}
        for hit in result:
            text = texts[hit.field]
            start, end = text.original(hit.start, hit.end)
            ref = self._slot_refs[hit.slot]
            key = (ref, hit.field, start, end)
            if key not in seen:
                seen[key] = Hit(ref, text.text[start:end], FIELDS[hit.field], start, end)
        ordered = sorted(seen.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][0] or ""))
        return tuple(hit for _, hit in ordered)


def _follow(folded: str, end: int, words: tuple[tuple[str, bool], ...]) -> int:
    """End of the words after `end` when they are `words` (prefixes where flagged), else -1."""
    for word, prefix in words:
        begin = end + 1
        if begin >= len(folded):
            return -1
        end = folded.index(" ", begin)
        actual = folded[begin:end]
        if actual != word and not (prefix and actual.startswith(word)):
            return -1
    return end


# Compiled trees reuse the query nodes' shapes, with leaves replaced by slot numbers.
@dataclass(frozen=True)
class _Leaf:
    slot: int


_Tree = _Leaf | And | Or | Not | Near | Title


def _compile(node: Node, groups: Mapping[str, int], add: Callable[[str | None, str], int]) -> _Tree:
    if isinstance(node, Term):
        return _Leaf(add(None, node.text))
    if isinstance(node, Ref):
        return _Leaf(groups[node.id])
    if isinstance(node, And):
        return And(tuple(_compile(p, groups, add) for p in node.parts))  # type: ignore[misc]
    if isinstance(node, Or):
        return Or(tuple(_compile(p, groups, add) for p in node.parts))  # type: ignore[misc]
    if isinstance(node, Not):
        return Not(_compile(node.part, groups, add))  # type: ignore[arg-type]
    if isinstance(node, Title):
        return Title(_compile(node.part, groups, add))  # type: ignore[arg-type]
    return Near(_compile(node.left, groups, add), _compile(node.right, groups, add), node.distance)  # type: ignore[arg-type]


def _triggers(tree: object) -> list[frozenset[int]]:
    """Sets of slots such that `tree` cannot hold unless every set has a slot with hits; [] if none needed."""
    if isinstance(tree, _Leaf):
        return [frozenset({tree.slot})]
    if isinstance(tree, And):
        return [t for part in tree.parts for t in _triggers(part)]
    if isinstance(tree, Or):
        alternatives = [_triggers(part) for part in tree.parts]
        if not all(alternatives):
            return []
        return [frozenset().union(*(min(a, key=len) for a in alternatives))]
    if isinstance(tree, Title):
        return _triggers(tree.part)
    if isinstance(tree, Near):
        return _triggers(tree.left) + _triggers(tree.right)
    return []  # NOT holds without any hit


def _evaluate(tree: object, hits: Mapping[int, list[_Hit]], texts: list[FoldedText] | None) -> list[_Hit] | None:
    """The hits that satisfy `tree`, [] when it holds without any, None when it does not hold."""
    if isinstance(tree, _Leaf):
        return hits.get(tree.slot) or None
    if isinstance(tree, And):
        collected: list[_Hit] = []
        for part in tree.parts:
            result = _evaluate(part, hits, texts)
            if result is None:
                return None
            collected.extend(result)
        return collected
    if isinstance(tree, Or):
        results = [r for r in (_evaluate(p, hits, texts) for p in tree.parts) if r is not None]
        return [hit for r in results for hit in r] if results else None
    if isinstance(tree, Not):
        return [] if _evaluate(tree.part, hits, texts) is None else None
    if isinstance(tree, Title):
        in_title = {slot: kept for slot, found in hits.items() if (kept := [h for h in found if h.field == TITLE])}
        return _evaluate(tree.part, in_title, texts)
    assert isinstance(tree, Near)
    left = _evaluate(tree.left, hits, texts)
    right = _evaluate(tree.right, hits, texts)
    if not left or not right or texts is None:
        return None
    return _near(left, right, tree.distance, texts)


def _near(left: list[_Hit], right: list[_Hit], distance: int, texts: list[FoldedText]) -> list[_Hit] | None:
    """Hits of pairs (one from each side) in one field, not overlapping, at most `distance` words apart."""
    kept: dict[_Hit, None] = {}
    for a in left:
        a_first, a_last = texts[a.field].words(a.start, a.end)
        for b in right:
            if b.field != a.field or (a.start < b.end and b.start < a.end):
                continue
            b_first, b_last = texts[b.field].words(b.start, b.end)
            gap = b_first - a_last if a.start < b.start else a_first - b_last
            if gap <= distance:
                kept[a] = None
                kept[b] = None
    return list(kept) or None
