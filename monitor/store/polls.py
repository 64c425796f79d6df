"""Recording a batch of polls in one transaction: feed states, new items, stories, matches, alerts and the
deliveries of the outbox. Set-based: a batch of hundreds of polls costs a handful of statements, not a few
per item, which is what lets one process keep up with thousands of feeds.

    outcomes ─► feed states (one UPDATE per outcome shape, run for all rows at once)
             └► storm brake (a feed re-presenting its archive: stored silently, the operator warned)
                └► new items ─► stories (`stories`: URL, content and story layers, within the window)
                             ─► items INSERT … ON CONFLICT DO NOTHING (the dedup of record); story keys
                             ─► matches; alerts by story (`alerting`: first, update, spread; ON CONFLICT
                                DO NOTHING); deliveries
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, update
from sqlmodel import Session, col, select

from monitor.pipeline.stories import DEFAULT_POLICY, StoryPolicy
from monitor.records import Hit, PollOutcome
from monitor.store import alerting, stories
from monitor.store.alerting import Router
from monitor.store.bulk import insert_rows, new_ids, tuples, upsert
from monitor.store.tables import DELIVERY, FEED, FEED_STATE, ITEM, MATCH, STORY_KEY, FeedRow, FeedStateRow, ItemRow
from monitor.store.types import UTCDateTime

CHUNK = 400
"""Values per IN list: well under SQLite's limit of 32,766 bound parameters."""


@dataclass(frozen=True)
class StoredPoll:
    """What storing a poll did."""

    new_items: int
    alerts: int
    deliveries: int
    storm: str | None = None
    """Why the poll's new items were stored silently (a GUID reset, a CMS migration), for the operator."""
    gap: str | None = None
    """Every entry of the poll was new: what may have scrolled off between polls, for the operator."""
    matched: tuple[str, ...] = ()
    """The rule of each match stored."""
    alerted: tuple[tuple[str, str], ...] = ()
    """(kind, rule) for each rule each alert made names."""


@dataclass(frozen=True)
class Poll:
    outcome: PollOutcome
    next_poll_at: datetime | None


def record(session: Session, polls: Sequence[Poll], now: datetime, route: Router, move_after: int,
           policy: StoryPolicy = DEFAULT_POLICY) -> list[StoredPoll]:  # fmt: skip
    """Apply `polls` in `session` (the caller commits): each feed's state, and everything new."""
    outcomes, storms = _brake(session, [p.outcome for p in polls], now)
    gaps = _gaps(session, outcomes, storms, now)
    counts = _store_items(session, outcomes, now, route, policy)
    stored = [
        replace(counts.get(poll.outcome.feed_id, StoredPoll(0, 0, 0)), storm=storms.get(poll.outcome.feed_id),
                gap=gaps.get(poll.outcome.feed_id))
        for poll in polls
    ]  # fmt: skip
    success: list[dict[str, Any]] = []
    failure: list[dict[str, Any]] = []
    titles: list[dict[str, Any]] = []
    moved: list[tuple[Poll, int]] = []
    for poll, result in zip(polls, stored, strict=True):
        outcome = poll.outcome
        common = {"b_feed": outcome.feed_id, "b_outcome": outcome.status, "b_now": now, "b_next": poll.next_poll_at}
        if outcome.status not in _SUCCESS:
            failure.append({**common, "b_status": "gone" if outcome.status == "gone" else "failing",
                            "b_error": outcome.error})  # fmt: skip
            continue
        if outcome.feed_title:
            titles.append({"b_feed": outcome.feed_id, "b_title": outcome.feed_title[:300]})
        if outcome.permanent_url is not None:
            moved.append((poll, result.new_items))  # rare: read, decided and written one by one
            continue
        success.append({**common, "b_new": result.new_items, "b_etag": outcome.etag,
                        "b_modified": outcome.last_modified, "b_hash": outcome.body_hash})  # fmt: skip
    # One statement per shape, run for many rows at once: no feed or state row is loaded to be updated.
    connection = session.connection()
    for statement, rows in ((_SUCCEEDED, success), (_FAILED, failure), (_RETITLED, titles)):
        if rows:
            connection.execute(statement, rows)
    if moved:
        ids = [poll.outcome.feed_id for poll, _ in moved]
        feeds = {row.id: row for row in session.exec(select(FeedRow).where(col(FeedRow.id).in_(ids)))}
        query = select(FeedStateRow).where(col(FeedStateRow.feed_id).in_(ids))
        states = {row.feed_id: row for row in session.exec(query)}
        for poll, new_items in moved:
            state, feed = states[poll.outcome.feed_id], feeds[poll.outcome.feed_id]
            _update_state(feed, state, poll.outcome, poll.next_poll_at, now, new_items, move_after)
    return stored


_SUCCESS = frozenset({"ok", "not_modified", "unchanged"})
_WHEN = UTCDateTime()
_THIS_FEED = FEED_STATE.c.feed_id == bindparam("b_feed")
_POLLED = {
    "last_outcome": bindparam("b_outcome"),
    "last_poll_at": bindparam("b_now", type_=_WHEN),
    "next_poll_at": bindparam("b_next", type_=_WHEN),
    "lease_until": None,
    "lease_owner": None,
}
_SUCCEEDED = (
    update(FEED_STATE)
    .where(_THIS_FEED)
    .values(
        status="ok", error_count=0, last_error=None, last_success_at=bindparam("b_now", type_=_WHEN),
        item_count=FEED_STATE.c.item_count + bindparam("b_new"),
        # A 304 carries the validators it was asked with, unless it sent new ones.
        etag=bindparam("b_etag"), last_modified=bindparam("b_modified"),
        body_hash=func.coalesce(bindparam("b_hash"), FEED_STATE.c.body_hash),
        permanent_url=None, permanent_hits=0, **_POLLED,
    )
)  # fmt: skip
"""The state after a poll that worked and was not redirected for good (as `_update_state` leaves it)."""
_FAILED = (
    update(FEED_STATE)
    .where(_THIS_FEED)
    .values(status=bindparam("b_status"), last_error=bindparam("b_error"),
            error_count=FEED_STATE.c.error_count + 1, **_POLLED)
)  # fmt: skip
_RETITLED = update(FEED).where(FEED.c.id == bindparam("b_feed")).values(title=bindparam("b_title"))


def _update_state(feed: FeedRow, state: FeedStateRow, outcome: PollOutcome, next_poll_at: datetime | None,
                  now: datetime, new_items: int, move_after: int) -> None:  # fmt: skip
    if outcome.status in _SUCCESS:
        state.status, state.error_count, state.last_error = "ok", 0, None
        state.last_success_at = now
        state.item_count += new_items
        state.etag, state.last_modified = outcome.etag, outcome.last_modified
        state.body_hash = outcome.body_hash or state.body_hash
        _follow_redirect(feed, state, outcome.permanent_url, move_after)
    else:
        state.status = "gone" if outcome.status == "gone" else "failing"
        state.last_error = outcome.error
        state.error_count += 1
    state.last_outcome = outcome.status
    state.last_poll_at = now
    state.next_poll_at = next_poll_at
    state.lease_until, state.lease_owner = None, None


def _follow_redirect(feed: FeedRow, state: FeedStateRow, target: str | None, move_after: int) -> None:
    """Move the feed's URL only after `move_after` polls in a row ended at the same permanent target."""
    if target is None or target == feed.url:
        state.permanent_url, state.permanent_hits = None, 0
        return
    state.permanent_hits = state.permanent_hits + 1 if state.permanent_url == target else 1
    state.permanent_url = target
    if state.permanent_hits >= move_after:
        feed.url, state.permanent_url, state.permanent_hits = target, None, 0
        state.etag = state.last_modified = None


def _store_items(session: Session, outcomes: Sequence[PollOutcome], now: datetime, route: Router,
                 policy: StoryPolicy) -> dict[int, StoredPoll]:  # fmt: skip
    fresh = [stories.prepare(o.feed_id, n, now) for o in outcomes for n in o.new_items]
    if not fresh:
        return {}
    assigned = stories.assign(session, fresh, now, policy.window)
    ids = new_ids(session, ITEM, len(fresh))
    rows: list[dict[str, Any]] = [
        {
            "id": item_id,
            "feed_id": f.feed_id,
            "key": f.new.item.key,
            "url": f.new.item.url,
            "link": f.new.item.link,
            "fingerprint": f.new.item.fingerprint,
            "story_id": story,
            "title": f.new.item.title,
            "summary": f.new.item.summary,
            "content": f.new.item.content,
            "published_at": f.new.item.published,
            "seen_at": now,
            "silent": f.new.silent,
            "sketch": f.sketch.encode() if f.sketch is not None else None,
        }
        for f, story, item_id in zip(fresh, assigned.stories, ids, strict=True)
    ]
    insert_rows(session, upsert(session, ITEM).on_conflict_do_nothing(index_elements=["feed_id", "key"]), rows)
    # A row another instance stored first was skipped, and its id is not in the table: it is not new here.
    kept = _present(session, ids)
    item_ids = [item_id if item_id in kept else None for item_id in ids]
    insert_rows(session, insert(STORY_KEY), stories.index_rows(fresh, item_ids))
    counts: dict[int, alerting.Tally] = {}
    matches: list[dict[str, Any]] = []
    joined: list[alerting.Joined] = []
    for f, story, item_id in zip(fresh, assigned.stories, item_ids, strict=True):
        if item_id is None:
            continue
        tally = counts.setdefault(f.feed_id, alerting.Tally())
        tally.new_items += 1
        tally.matched.extend(match.rule for match in f.new.matches)
        for match in f.new.matches:
            hits = json.dumps([_hit_json(h) for h in match.hits], ensure_ascii=False)
            matches.append({"item_id": item_id, "rule": match.rule, "priority": match.priority, "hits": hits})
        joined.append(alerting.Joined(f.feed_id, item_id, story, f.new))
    insert_rows(session, insert(MATCH), matches)
    deliveries = alerting.alerts(session, joined, assigned.made, now, route, policy.spread_alert, counts)
    insert_rows(session, insert(DELIVERY), deliveries)
    return {
        feed_id: StoredPoll(t.new_items, t.alerts, t.deliveries, matched=tuple(t.matched), alerted=tuple(t.alerted))
        for feed_id, t in counts.items()
    }


STORM_SHARE = 0.3
STORM_FEED = 10


def _brake(session: Session, outcomes: list[PollOutcome], now: datetime) -> tuple[list[PollOutcome], dict[int, str]]:
    """The storm brake: a feed of `STORM_FEED` or more entries that presents more than `STORM_SHARE` of them as
    new, when most of those carry a title or link the feed already had (its GUIDs were reset, its CMS
    migrated), has them stored silently and the operator warned, instead of re-alerting its archive."""
    storms: dict[int, str] = {}
    result: list[PollOutcome] = []
    for outcome in outcomes:
        fresh = outcome.new_items
        if outcome.first_poll or outcome.entries < STORM_FEED or len(fresh) <= STORM_SHARE * outcome.entries:
            result.append(outcome)
            continue
        titles = sorted({n.item.title for n in fresh})
        links = sorted({n.item.url for n in fresh if n.item.url})
        query = (
            select(col(ItemRow.title), col(ItemRow.url))
            .where(col(ItemRow.feed_id) == outcome.feed_id)
            .where(or_(col(ItemRow.title).in_(titles[:CHUNK]), col(ItemRow.url).in_(links[:CHUNK])))
        )
        had_titles, had_links = set(), set()
        for title, url in tuples(session.execute(query)):
            had_titles.add(title)
            had_links.add(url)
        again = sum(1 for n in fresh if n.item.title in had_titles or (n.item.url and n.item.url in had_links))
        if again * 2 <= len(fresh):
            result.append(outcome)
            continue
        reason = (
            f"storm: {len(fresh)} of {outcome.entries} entries came back as new, {again} with a title or link"
            " already stored (GUIDs reset?); stored without alerting"
        )
        storms[outcome.feed_id] = reason
        result.append(replace(outcome, new_items=tuple(replace(n, silent=True) for n in fresh)))
        session.connection().execute(
            update(FEED_STATE).where(FEED_STATE.c.feed_id == outcome.feed_id).values(warning=reason, warning_at=now)
        )
    return result, storms


GAP_FEED = 5
"""A feed showing fewer entries says too little to tell a gap from a quiet feed."""


def _gaps(session: Session, outcomes: list[PollOutcome], storms: dict[int, str], now: datetime) -> dict[int, str]:
    """The missed-item signal (RELIABILITY.md case 13): when every entry a feed shows is new, more may have
    been published and scrolled off since the last poll. Nothing can fetch those; the operator is told, so
    the feed can be polled more often, and each feed counts its gaps."""
    gaps: dict[int, str] = {}
    for outcome in outcomes:
        fresh = len(outcome.new_items)
        if outcome.first_poll or outcome.feed_id in storms or outcome.entries < GAP_FEED or fresh < outcome.entries:
            continue
        reason = (
            f"possible gap: all {outcome.entries} entries were new since the last poll; items published "
            "between polls may have scrolled off (poll this feed more often)"
        )
        gaps[outcome.feed_id] = reason
        session.connection().execute(
            update(FEED_STATE)
            .where(FEED_STATE.c.feed_id == outcome.feed_id)
            .values(warning=reason, warning_at=now, gaps=FEED_STATE.c.gaps + 1)
        )
    return gaps


def _present(session: Session, ids: list[int]) -> set[int]:
    """Which of `ids` (taken by `_new_ids`, so no other row has them) are in the item table."""
    if not ids:
        return set()
    query = select(col(ItemRow.id)).where(col(ItemRow.id) >= min(ids), col(ItemRow.id) <= max(ids))
    wanted = set(ids)
    return {int(item_id) for (item_id,) in tuples(session.execute(query)) if item_id in wanted}


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {"ref": hit.ref, "text": hit.text, "field": hit.field, "start": hit.start, "end": hit.end}
