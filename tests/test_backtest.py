"""`monitor backtest` on a seeded history: outlets on a loopback farm polled by the real service, with the
reference watch list on one database and the candidate on another. What the backtest says the candidate
gains, loses and changes must be what the two services really alerted, story by story; and nothing is
stored or sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.store.engine import open_engine
from monitor.store.tables import ALERT, STORY
from tests.conftest import cli
from tests.servers import FeedFarm, Route, running
from tests.test_e2e import database_text, rss, run_cycle

ENTITIES = """\
schema = 1

[entities.khankendi]
kind = "place"
names = ["Khankendi", "Stepanakert"]

[entities.lachin]
kind = "place"
names = ["Lachin corridor", "Lachin"]

[entities.fuzuli]
kind = "place"
names = ["Fuzuli"]

[terms.violence]
words = ["shelling", "shells", "artillery", "killed", "kills"]

[terms.humanitarian]
words = ["convoy", "aid", "Red Cross"]

[terms.mines]
words = ["landmine*", "deminer*"]
"""
FIGHTING = '[[rules]]\nid = "fighting"\nquery = "@khankendi AND @violence"\npriority = "{priority}"\n\n'
AID = '[[rules]]\nid = "aid"\nquery = "(@lachin OR @khankendi) AND @humanitarian"\npriority = "high"\n\n'
MINES = '[[rules]]\nid = "mines"\nquery = "@fuzuli AND @mines"\npriority = "normal"\n\n'
REFERENCE = ENTITIES + FIGHTING.format(priority="urgent") + AID
CANDIDATE = ENTITIES + FIGHTING.format(priority="high") + MINES  # aid dropped, mines added, fighting lowered

# (guid, title, link, description): each outlet's own words for the same events.
SHELLING_A = ("a1", "Azerbaijani artillery shells Stepanakert as offensive begins", "https://a.example/1",
              "Heavy shelling hit Stepanakert on Tuesday morning, residents said.")  # fmt: skip
CONVOY_A = ("a2", "Red Cross aid convoy reaches Stepanakert through the Lachin corridor", "https://a.example/2",
            "The first Red Cross aid convoy in months reached Stepanakert through the Lachin corridor.")  # fmt: skip
CONVOY_B = ("b1", "Red Cross aid convoy crosses Lachin corridor to reach Stepanakert", "https://b.example/1",
            "A Red Cross aid convoy reached Stepanakert through the Lachin corridor, the first in months.")  # fmt: skip
MINE_B = ("b2", "Landmine blast kills two deminers near Fuzuli", "https://b.example/2",
          "Two Azerbaijani deminers were killed by a landmine blast near Fuzuli, the agency said.")  # fmt: skip
MINE_C = ("c1", "Two deminers killed by landmine blast near Fuzuli", "https://c.example/1",
          "A landmine blast near Fuzuli killed two Azerbaijani deminers on Monday, the agency said.")  # fmt: skip
QUIET_C = ("c2", "Baku hosts the Grand Prix", "https://c.example/2", "The race starts on Sunday.")
# Outlets answer in any order: a story is named by whichever of its items was stored first.
CONVOY = {CONVOY_A[1], CONVOY_B[1]}
MINE = {MINE_B[1], MINE_C[1]}


@dataclass
class History:
    candidate: Path
    reference: Path
    reference_db: str
    candidate_db: str


def _config(folder: Path, keywords: str, farm: FeedFarm) -> Path:
    folder.mkdir()
    (folder / "keywords.toml").write_text(keywords, encoding="utf-8")
    feeds = "".join(f'[[feeds]]\nurl = "{farm.url(f"/{o}.xml")}"\nname = "Outlet {o.upper()}"\n\n' for o in "abc")
    (folder / "feeds.toml").write_text("[fetch]\nallow_private_addresses = true\n\n" + feeds, encoding="utf-8")
    return folder


@pytest.fixture
def history(tmp_path: Path, database: str) -> Iterator[History]:
    """The same outlets polled by a service on the reference watch list (`database`) and by one on the
    candidate (a SQLite file): a first poll that only stores, then the news."""
    farm = FeedFarm()
    for outlet in "abc":
        farm.routes[f"/{outlet}.xml"] = Route(rss([], f"Outlet {outlet.upper()}"))
    with running(farm):
        history = History(_config(tmp_path / "candidate", CANDIDATE, farm),
                          _config(tmp_path / "reference", REFERENCE, farm),
                          database, f"sqlite:///{tmp_path}/candidate.db")  # fmt: skip
        start = datetime.now(UTC) - timedelta(hours=1)
        for config, db in ((history.reference, history.reference_db), (history.candidate, history.candidate_db)):
            asyncio.run(run_cycle(config, db, start))
        farm.routes["/a.xml"] = Route(rss([SHELLING_A, CONVOY_A], "Outlet A"))
        farm.routes["/b.xml"] = Route(rss([CONVOY_B, MINE_B], "Outlet B"))
        farm.routes["/c.xml"] = Route(rss([MINE_C, QUIET_C], "Outlet C"))
        for config, db in ((history.reference, history.reference_db), (history.candidate, history.candidate_db)):
            asyncio.run(run_cycle(config, db, start + timedelta(minutes=20)))
        yield history


def alerted(db: str) -> dict[str, tuple[list[str], str]]:
    """What a service alerted, by story (SHELLING, CONVOY or MINE): the rules and priority of its last alert."""
    engine = open_engine(db)
    with engine.connect() as connection:
        rows: Any = connection.execute(
            select(STORY.c.title, ALERT.c.rules, ALERT.c.priority).join_from(ALERT, STORY).order_by(ALERT.c.id)
        )
        found = {_story(str(title)): (json.loads(rules), str(priority)) for title, rules, priority in rows}
    engine.dispose()
    return found


def _story(title: str) -> str:
    return "CONVOY" if title in CONVOY else "MINE" if title in MINE else "SHELLING" if title == SHELLING_A[1] else title


def backtest(history: History, *extra: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    result = cli("backtest", "--config-dir", str(history.candidate), "--db", history.reference_db, "--json", *extra)
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "summary" in lines[-1]
    return lines[:-1], lines[-1]["summary"]


def test_backtest_says_what_the_candidate_would_have_alerted(history: History) -> None:
    before, after = alerted(history.reference_db), alerted(history.candidate_db)
    # What the two services really did: the convoy (two outlets, one story) only under the reference, the mine
    # blast (two outlets, one story) only under the candidate, the shelling under both at other priorities.
    assert set(before) == {"SHELLING", "CONVOY"}
    assert set(after) == {"SHELLING", "MINE"}

    database = database_text(history.reference_db)
    rows, summary = backtest(history)
    assert database_text(history.reference_db) == database  # nothing stored

    by_change = {row["change"]: row for row in rows}
    assert len(rows) == 3 and set(by_change) == {"gained", "lost", "changed"}
    gained, lost, changed = by_change["gained"], by_change["lost"], by_change["changed"]
    # The mine blast never alerted under the reference, so the service never clustered it: the backtest's
    # story layer must join the two outlets' rewrites as the candidate's service did.
    assert (_story(gained["title"]), gained["rules"], gained["priority"], gained["items"]) == (
        "MINE",
        ["mines"],
        "normal",
        2,
    )
    assert {(h["ref"], h["text"], h["field"]) for h in gained["hits"]} >= {("fuzuli", "Fuzuli", "title")}
    assert (_story(lost["title"]), lost["rules"], lost["rules_before"], lost["items"]) == ("CONVOY", [], ["aid"], 2)
    assert (_story(changed["title"]), changed["priority"], changed["priority_before"]) == ("SHELLING", "high", "urgent")
    assert changed["rules"] == changed["rules_before"] == ["fighting"]
    for row in rows:
        assert row["first_seen"].endswith("Z") and isinstance(row["story"], int)
    # The two services, read the same way.
    assert after["MINE"] == (gained["rules"], gained["priority"])
    assert before["CONVOY"] == (lost["rules_before"], "high")
    assert (after["SHELLING"][1], before["SHELLING"][1]) == ("high", "urgent")

    assert summary["replayed"] == 6 and summary["stories"] == 3
    assert (summary["gained"], summary["lost"], summary["changed"]) == (1, 1, 1)
    assert summary["rules"] == {
        "aid": {"gained": 0, "lost": 1, "changed": 0},
        "fighting": {"gained": 0, "lost": 0, "changed": 1},
        "mines": {"gained": 1, "lost": 0, "changed": 0},
    }

    # The stored watch list (the one the reference service loaded) is the default reference.
    assert backtest(history, "--against", str(history.reference)) == (rows, summary)
    # Against itself, nothing changes.
    same, nothing = backtest(history, "--against", str(history.candidate))
    assert same == [] and (nothing["gained"], nothing["lost"], nothing["changed"]) == (0, 0, 0)
    # A window that ends before the news replays none of it.
    _, none = backtest(history, "--since", "1m")
    assert none["replayed"] == 0


def test_backtest_table_names_each_change(history: History) -> None:
    result = cli("backtest", "--config-dir", str(history.candidate), "--db", history.reference_db)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("change\tstory\tfirst seen\theadline")
    assert any(
        line.startswith("gained\t") and any(t in line for t in MINE) and "fuzuli: 'Fuzuli' in title" in line
        for line in lines
    )
    assert any(line.startswith("lost\t") and "aid (high) → -" in line for line in lines)
    assert lines[-1].startswith("# 6 items replayed, 3 stories alerting: 1 gained, 1 lost, 1 changed")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_backtest_without_a_stored_watch_list_says_what_to_do(tmp_path: Path, database: str) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "keywords.toml").write_text(REFERENCE, encoding="utf-8")
    open_engine(database)
    cli("db", "upgrade", "--db", database)
    result = cli("backtest", "--config-dir", str(folder), "--db", database)
    assert result.code == 1
    assert "no watch list stored yet" in result.stderr and "--against DIR" in result.stderr
    bad = cli("backtest", "--config-dir", str(folder), "--db", database, "--since", "soon")
    assert bad.code == 1 and bad.stderr.startswith("error: --since")
