"""`monitor backtest`: stored items replayed through a candidate watch list and a reference one, grouped into
stories as the service groups them, and the stories whose alerts would differ (DESIGN.md §4).

    stored items (--since) ──► both matchers ──► alerting under either? ──► story (stored story, else the
    story layer over the stories replayed so far) ──► per story: rules and priority before and after ──► diff

Grouping follows the service: an item joins the story the service put it in (its URL, content and story
layers, as stored), and an item that alerts now but did not then, so was never clustered, goes through the
same story layer (`pipeline.stories.choose`) against the stories replayed before it. Nothing is stored or
sent.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from monitor.config import WatchList, load_config
from monitor.errors import ConfigError, MonitorError
from monitor.pipeline.match import Matcher, fold
from monitor.pipeline.stories import Member, Sketch, choose, decode, sketch
from monitor.records import PRIORITIES, Document, Hit, Priority, RuleMatch
from monitor.store.history import StoredItem, items_since
from monitor.watch import build_matcher

Change = Literal["gained", "lost", "changed"]


@dataclass
class _Side:
    """What one watch list makes of a story: its rules in the order they first fired, the highest priority,
    and the hits of the first item that fired them."""

    rules: dict[str, None] = field(default_factory=dict)
    priority: Priority | None = None
    hits: tuple[Hit, ...] = ()

    def add(self, matches: Sequence[RuleMatch]) -> None:
        if not matches:
            return
        if not self.hits:
            self.hits = tuple(dict.fromkeys(hit for match in matches for hit in match.hits))
        for match in matches:
            self.rules.setdefault(match.rule)
            if self.priority is None or PRIORITIES.index(match.priority) < PRIORITIES.index(self.priority):
                self.priority = match.priority


@dataclass
class _Story:
    story_id: int
    """The story the service stored its first item in (what `monitor stories` shows)."""
    title: str
    first_seen: datetime
    items: int = 0
    before: _Side = field(default_factory=_Side)
    after: _Side = field(default_factory=_Side)


@dataclass(frozen=True)
class StoryChange:
    change: Change
    story_id: int
    title: str
    first_seen: datetime
    items: int
    rules: tuple[str, ...]
    priority: Priority | None
    rules_before: tuple[str, ...]
    priority_before: Priority | None
    hits: tuple[Hit, ...]
    """What explains it: the candidate's hits (gained, changed), or the reference's (lost)."""

    def because(self) -> tuple[str, ...]:
        """The rules the change is counted under: those that fire now (gained) or fired before (lost); for a
        changed story, those added or dropped, else (its priority alone changed) every rule it fires."""
        if self.change != "changed":
            return self.rules or self.rules_before
        moved = tuple(r for r in (*self.rules, *self.rules_before) if (r in self.rules) != (r in self.rules_before))
        return moved or self.rules


@dataclass(frozen=True)
class Replay:
    replayed: int
    """Items read."""
    stories: int
    """Stories alerting under either watch list."""
    changes: list[StoryChange]
    """Newest story first."""

    def summary(self) -> dict[str, Any]:
        per_rule: dict[str, dict[str, int]] = {}
        for change in self.changes:
            for rule in change.because():
                counts = per_rule.setdefault(rule, {"gained": 0, "lost": 0, "changed": 0})
                counts[change.change] += 1
        counted = {kind: sum(1 for c in self.changes if c.change == kind) for kind in ("gained", "lost", "changed")}
        return {"replayed": self.replayed, "stories": self.stories, **counted, "rules": dict(sorted(per_rule.items()))}


def replay(items: Iterable[StoredItem], candidate: Matcher, reference: Matcher, window: timedelta) -> Replay:
    """Every item through both matchers, in publication order; the stories whose alerts differ."""
    from monitor.store.stories import StoryIndex  # the service's own candidate index, in memory

    index = StoryIndex()
    stories: list[_Story] = []
    by_stored: dict[int, int] = {}
    replayed = 0
    for item in items:
        replayed += 1
        if item.silent:
            continue
        document = Document(str(item.item_id), item.title, item.summary, item.content)
        texts = fold(document)  # folded once for both matchers
        after, before = candidate.match(document, texts), reference.match(document, texts)
        if not after and not before:
            continue
        words: Sketch = decode(item.sketch) if item.sketch else sketch(item.title, item.summary, item.content)
        number = by_stored.get(item.story_id) if item.story_id is not None else None
        if number is None:
            number = choose(words, item.feed_id, item.at, index.candidates(words), window)
        if number is None:
            number = len(stories)
            stories.append(_Story(item.story_id if item.story_id is not None else -item.item_id, item.title, item.at))
        if item.story_id is not None:
            by_stored.setdefault(item.story_id, number)
        index.add(Member(number, item.feed_id, item.at, words))
        story = stories[number]
        story.items += 1
        story.before.add(before)
        story.after.add(after)
    changes = [change for story in stories if (change := _change(story)) is not None]
    changes.sort(key=lambda c: (c.first_seen, c.story_id), reverse=True)
    return Replay(replayed, len(stories), changes)


def _change(story: _Story) -> StoryChange | None:
    before, after = story.before, story.after
    if before.rules and after.rules:
        if set(before.rules) == set(after.rules) and before.priority == after.priority:
            return None
        kind: Change = "changed"
    else:
        kind = "gained" if after.rules else "lost"
    return StoryChange(
        kind, story.story_id, story.title, story.first_seen, story.items, tuple(after.rules), after.priority,
        tuple(before.rules), before.priority, after.hits if after.rules else before.hits,
    )  # fmt: skip


# --- the command -------------------------------------------------------------------------------------------


def run(config_dir: Path, db: str | None, since: timedelta, against: Path | None, limit: int | None,
        as_json: bool) -> None:  # fmt: skip
    """`monitor backtest`: the candidate is `config_dir`'s watch list, the reference `against`'s, else the
    watch list the service last loaded."""
    from monitor.listings import existing_engine

    candidate = _watchlist(config_dir)
    engine = existing_engine(db)
    reference = _watchlist(against) if against is not None else _stored_watchlist(engine)
    result = replay(
        items_since(engine, datetime.now(UTC) - since),
        build_matcher(candidate),
        build_matcher(reference),
        candidate.stories.window,
    )
    _print(result, limit, as_json)


def _watchlist(directory: Path) -> WatchList:
    config = load_config(directory, feeds=False, channels=False)
    assert config.watchlist is not None
    return config.watchlist


def _stored_watchlist(engine: Any) -> WatchList:
    from monitor.store import watchlists

    stored = watchlists.newest(engine)
    if stored is None:
        raise MonitorError(
            "no watch list stored yet (the service stores the one it loads): run `monitor run`, or pass --against DIR"
        )
    with tempfile.TemporaryDirectory(prefix="monitor-backtest-") as folder:
        (Path(folder) / "keywords.toml").write_text(stored.text, encoding="utf-8")
        try:
            config = load_config(Path(folder), feeds=False, channels=False, sources=False)
        except ConfigError as error:
            raise MonitorError(
                f"the stored watch list (loaded {stored.loaded_at:%Y-%m-%d %H:%MZ}) no longer loads "
                f"({error.problems[0].message}): pass --against DIR"
            ) from None
    assert config.watchlist is not None
    return config.watchlist


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {"ref": hit.ref, "text": hit.text, "field": hit.field, "start": hit.start, "end": hit.end}


def change_json(change: StoryChange) -> dict[str, Any]:
    from monitor.listings import iso

    row: dict[str, Any] = {
        "change": change.change, "story": change.story_id, "title": change.title, "rules": list(change.rules),
        "priority": change.priority, "first_seen": iso(change.first_seen), "items": change.items,
        "hits": [_hit_json(hit) for hit in change.hits],
    }  # fmt: skip
    if change.change != "gained":
        row["rules_before"] = list(change.rules_before)
        row["priority_before"] = change.priority_before
    return row


def _print(result: Replay, limit: int | None, as_json: bool) -> None:
    from monitor.listings import emit, when

    summary = result.summary()
    if as_json:
        out = sys.stdout
        shown = result.changes if limit is None else result.changes[:limit]
        out.writelines(json.dumps(change_json(c), ensure_ascii=False) + "\n" for c in shown)
        out.write(json.dumps({"summary": summary}, ensure_ascii=False) + "\n")
        out.flush()
        return

    def row(c: StoryChange) -> tuple[str, ...]:
        rules = ", ".join(c.rules) or "-"
        if c.change != "gained":
            rules = f"{', '.join(c.rules_before) or '-'} ({c.priority_before}) → {rules}" + (
                f" ({c.priority})" if c.priority else ""
            )
        why = "; ".join(f"{h.ref or 'literal'}: {h.text!r} in {h.field}" for h in c.hits[:4])
        return (c.change, str(c.story_id), when(c.first_seen), c.title, rules, str(c.items), why)

    per_rule = ", ".join(
        f"{rule} +{n['gained']} -{n['lost']} ~{n['changed']}" for rule, n in summary["rules"].items()
    )  # fmt: skip
    note = (
        f"{summary['replayed']} items replayed, {summary['stories']} stories alerting: {summary['gained']} gained, "
        f"{summary['lost']} lost, {summary['changed']} changed" + (f"; per rule: {per_rule}" if per_rule else "")
    )
    emit(
        "backtest: the candidate against the reference", result.changes, limit, False,
        columns=("change", "story", "first seen", "headline", "rules (before → after)", "items", "why"),
        row=row, record=change_json, note=note,
    )  # fmt: skip
    if not sys.stdout.isatty():
        sys.stdout.write(f"# {note}\n")
