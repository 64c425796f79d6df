"""Reliability, group C: config and hot reload (RELIABILITY.md cases 25-30).

Covered elsewhere:
- 25 (invalid TOML while running: rejected with file:line:col, the running config stays, the failure counted)
  and 27 (saves by truncate-then-write, by rename, half-written: debounced, only a complete valid config
  applied): tests/test_reload.py and tests/test_config_errors.py; the reload-failure counter in /metrics:
  tests/test_operator.py.
- 26 (every problem at once, nothing applied): tests/test_config_errors.py. Adapted: the watch list has no
  regexes (a bad query or name is the equivalent), feeds have no ids (a duplicate URL is), and `file://` feeds
  are allowed by design (DESIGN.md §3, saved feeds).
- 29 (a new feed's first poll; a removed and re-added feed keeps its seen keys): tests/test_service.py,
  tests/test_decide.py, tests/test_store.py.
Here: 28, and 30 (a target changed or removed while deliveries are pending)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.config import load_config
from monitor.config.loader import target_key
from monitor.errors import ConfigError
from tests.conftest import cli
from tests.harness import Harness, rss
from tests.servers import Route


def test_28_a_keyword_added_matches_from_the_next_cycle_and_back_fills_nothing(harness: Harness) -> None:
    """Items already stored are never matched again: adding a name alerts on the next new item that carries
    it, not on the stored ones that did."""
    harness.farm.routes["/x.xml"] = Route(rss(("s1", "Ceasefire talks in Zangezur", harness.clock.now)))
    assert harness.cycle()[0].alerts == 0
    keywords = harness.dir / "keywords.toml"
    keywords.write_text(
        keywords.read_text().replace(
            'names = ["Karabakh", "Stepanakert"]', 'names = ["Karabakh", "Stepanakert", "Zangezur"]'
        )
    )
    harness.clock.now += timedelta(minutes=10)
    harness.farm.routes["/x.xml"] = Route(
        rss(
            ("s2", "Road through Zangezur reopens", harness.clock.now),
            ("s1", "Ceasefire talks in Zangezur", harness.clock.now),
        )
    )
    report, _ = harness.cycle()
    assert (report.new_items, report.alerts) == (1, 1) and "reopens" in harness.console[-1]


def test_30_removing_a_target_cancels_its_deliveries_and_moves_no_other(harness: Harness) -> None:
    """Deliveries follow their target, not its position: with /a removed from a channel's list while /a and /b
    have alerts pending, /b still gets its own alert once under the same idempotency key, /c (already
    served) gets nothing more, and /a's delivery is cancelled with a log line. By position, /a's alert went to
    /b and /b's to /c, each under a key the target had never seen."""
    a, b, c = (harness.sink.url(p) for p in ("/a", "/b", "/c"))
    harness.channels(f'[channels.desk]\nurls = ["{a}", "{b}", "{c}"]\n')
    harness.sink.fail_paths = {"/a": 503, "/b": 503}
    harness.farm.routes["/x.xml"] = Route(rss(("s1", "Karabakh story", harness.clock.now)))
    _, delivered = harness.cycle()
    assert (delivered.sent, delivered.failed) == (1, 2)
    harness.channels(f'[channels.desk]\nurls = ["{b}", "{c}"]\n')
    harness.sink.fail_paths = {}
    harness.clock.now += timedelta(minutes=10)
    _, delivered = harness.cycle(poll=False)
    assert (delivered.sent, delivered.cancelled) == (1, 1)
    paths = [r["path"].split("?")[0] for r in harness.sink.received]
    assert sorted(paths) == ["/b", "/c"]
    [to_b] = [r for r in harness.sink.received if r["path"].startswith("/b")]
    assert to_b["headers"]["x-idempotency-key"] == f"monitor-1-desk-{target_key(b)}"
    listed = cli("alerts", "--db", harness.db).stdout
    assert f"desk[{target_key(a)}]: cancelled" in listed, listed


def test_30_a_target_keeps_its_key_when_its_secret_changes(harness: Harness) -> None:
    """The key is the URL as written, `${VAR}`s unexpanded: a rotated token keeps the target (and its pending
    deliveries), no secret goes into the key, and a URL listed twice in a channel is an error, not two keys."""
    harness.channels('[channels.desk]\nurls = ["json://127.0.0.1:9/${DESK_TOKEN}"]\n')
    before = load_config(harness.dir, env={"DESK_TOKEN": "old-secret-token"}).channels
    after = load_config(harness.dir, env={"DESK_TOKEN": "new-secret-token"}).channels
    assert before is not None and after is not None
    assert before[0].keys == after[0].keys
    assert "secret" not in before[0].keys[0] and before[0].targets != after[0].targets
    harness.channels('[channels.desk]\nurls = [\n  "json://127.0.0.1:9/a",\n  "json://127.0.0.1:9/a",\n]\n')
    with pytest.raises(ConfigError) as error:
        load_config(harness.dir)
    assert "channels.toml:4" in str(error.value) and "the same target as urls[0]" in str(error.value)
