"""Alerting by story (DESIGN.md §6-7): the first item of a story alerts; a later item alerts again only when it
escalates the story, and a story that spreads far gets one follow-up.

    items stored ─► per story, in batch order:
                    has not alerted                   ─► first alert     (rules and priority of the item)
                    fires a new rule / higher priority ─► update alert    ("now urgent", "now also rule-x")
                    anything else                      ─► joins silently  (its outlet shows as "also: ...")
                 ─► stories that reached `[stories] spread_alert` outlets ─► spread alert, once

Each alert is unique per (story, kind, reason), where the reason is the state it announces: two instances
storing items of one story at once insert the same alert once (ON CONFLICT DO NOTHING), and only the one
whose row went in writes its deliveries. What a story has alerted for lives on the story row.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session

from monitor.records import PRIORITIES, NewItem, Priority, RuleMatch
from monitor.store.bulk import many, upsert
from monitor.store.tables import ALERT, ITEM, STORY

Route = tuple[str, str, datetime]
"""Where an alert goes: channel id, target key, and when the delivery is first due."""
Router = Callable[[Sequence[RuleMatch]], list[Route]]


@dataclass
class Tally:
    """What storing one feed's poll did, counted as it is stored."""

    new_items: int = 0
    alerts: int = 0
    deliveries: int = 0
    matched: list[str] = field(default_factory=list)
    """The rule of each match stored."""
    alerted: list[tuple[str, str]] = field(default_factory=list)
    """(kind, rule) for each rule each alert made names."""


@dataclass(frozen=True)
class Joined:
    """An item that went in, and the story it joined or began."""

    feed_id: int
    item_id: int
    story_id: int
    new: NewItem


@dataclass
class _State:
    rules: list[str]
    priority: Priority | None
    changed: bool = False


def _best(priorities: Sequence[Priority]) -> Priority:
    return min(priorities, key=PRIORITIES.index)


def alerts(session: Session, joined: Sequence[Joined], made: set[int], now: datetime, route: Router,
           spread: int | None, counts: dict[int, Tally]) -> list[dict[str, Any]]:  # fmt: skip
    """Insert the alerts the batch's items make (`made`: the stories the batch began); return the deliveries
    of those that went in."""
    alerting = [j for j in joined if j.new.matches and not j.new.silent]
    # Only a story that grew can have spread: one the batch joined, or began with several items.
    per_story = Counter(j.story_id for j in joined)
    grew = {s for s, n in per_story.items() if s not in made or n > 1} if spread is not None else set()
    touched = sorted({j.story_id for j in alerting} | grew)
    if not touched:
        return []
    states = _states(session, touched)
    rows: list[dict[str, Any]] = []
    routes: list[tuple[int, list[RuleMatch]]] = []  # per row: the feed to count it for, the rules it routes by
    for item in alerting:
        state = states[item.story_id]
        rules = [m.rule for m in item.new.matches]
        priority = _best([m.priority for m in item.new.matches])
        if state.priority is None:
            state.rules, state.priority, state.changed = rules, priority, True
            rows.append(_row(item, "first", "", "", state, now))
        else:
            added = [rule for rule in rules if rule not in state.rules]
            higher = PRIORITIES.index(priority) < PRIORITIES.index(state.priority)
            if not added and not higher:
                continue  # the story alerted already: this outlet joins it ("also: ...")
            state.rules = [*state.rules, *added]
            state.priority = priority if higher else state.priority
            state.changed = True
            note = ", ".join(
                part for part in (f"now {priority}" if higher else "",
                                  ("also " if higher else "now also ") + ", ".join(added) if added else "") if part
            )  # fmt: skip
            rows.append(_row(item, "update", f"{state.priority}:{','.join(sorted(state.rules))}", note, state, now))
        routes.append((item.feed_id, list(item.new.matches)))
    if spread is not None:
        last = {j.story_id: j for j in joined}  # the item that brought each story to where it is
        for story_id, outlets in _outlets(session, [s for s in sorted(grew) if states[s].priority is not None]).items():
            state = states[story_id]
            if outlets >= spread and state.priority is not None:
                rows.append(_row(last[story_id], "spread", str(spread), f"now in {outlets} outlets", state, now))
                routes.append((last[story_id].feed_id,
                               [RuleMatch(rule, state.priority, ()) for rule in state.rules]))  # fmt: skip
    _save(session, states)
    statement = (
        upsert(session, ALERT)
        .on_conflict_do_nothing(index_elements=["story_id", "kind", "reason"])
        .returning(ALERT.c.id, ALERT.c.story_id, ALERT.c.kind, ALERT.c.reason)
    )
    inserted = {(int(s), str(k), str(r)): int(a) for a, s, k, r in many(session, statement, rows)}
    deliveries: list[dict[str, Any]] = []
    for row, (feed_id, matches) in zip(rows, routes, strict=True):
        alert_id = inserted.pop((row["story_id"], row["kind"], row["reason"]), None)
        if alert_id is None:
            continue  # announced already, by this batch or another instance
        tally = counts.setdefault(feed_id, Tally())
        tally.alerts += 1
        tally.alerted.extend((row["kind"], rule) for rule in json.loads(row["rules"]))
        for channel, target, due in route(matches):
            deliveries.append(
                {"alert_id": alert_id, "channel": channel, "target": target, "next_try_at": due,
                 "created_at": now, "status": "pending", "attempts": 0}
            )  # fmt: skip
            tally.deliveries += 1
    return deliveries


def _row(item: Joined, kind: str, reason: str, note: str, state: _State, now: datetime) -> dict[str, Any]:
    assert state.priority is not None
    return {
        "story_id": item.story_id,
        "item_id": item.item_id,
        "kind": kind,
        "reason": reason[:500],
        "note": note,
        "created_at": now,
        "rules": json.dumps(state.rules),
        "priority": state.priority,
    }


def _states(session: Session, story_ids: Sequence[int]) -> dict[int, _State]:
    """What each story has alerted for; on PostgreSQL the rows stay locked until commit, so two instances
    escalating one story take turns. FOR NO KEY UPDATE, in id order: the items this batch inserted hold a
    KEY SHARE lock on their stories, which FOR UPDATE would wait on (and deadlock with) across instances."""
    states: dict[int, _State] = {}
    for start in range(0, len(story_ids), 400):
        query = select(STORY.c.id, STORY.c.rules, STORY.c.priority).where(
            STORY.c.id.in_(story_ids[start : start + 400])
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.order_by(STORY.c.id).with_for_update(key_share=True)
        found: Any = session.connection().execute(query)  # untyped rows
        for story_id, rules, priority in found:
            states[int(story_id)] = _State(json.loads(rules or "[]"), _priority(priority))
    return states


def _priority(value: str | None) -> Priority | None:
    return next((p for p in PRIORITIES if p == value), None)


def _outlets(session: Session, story_ids: Sequence[int]) -> dict[int, int]:
    """How many feeds each story's items came from."""
    found: dict[int, int] = {}
    for start in range(0, len(story_ids), 400):
        query = (
            select(ITEM.c.story_id, func.count(ITEM.c.feed_id.distinct()))
            .where(ITEM.c.story_id.in_(story_ids[start : start + 400]))
            .group_by(ITEM.c.story_id)
        )
        rows: Any = session.connection().execute(query)
        for story_id, outlets in rows:
            found[int(story_id)] = int(outlets)
    return found


_SAVE = (
    update(STORY)
    .where(STORY.c.id == bindparam("b_id"))
    .values(rules=bindparam("b_rules"), priority=bindparam("b_priority"))
)


def _save(session: Session, states: dict[int, _State]) -> None:
    rows = [
        {"b_id": story_id, "b_rules": json.dumps(state.rules), "b_priority": state.priority}
        for story_id, state in states.items()
        if state.changed
    ]
    if rows:
        session.connection().execute(_SAVE, rows)
