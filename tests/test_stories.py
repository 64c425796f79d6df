"""Stories end to end, on real local parts (feed farm, SQLite file, the console channel): one alert per story
across outlets, an update when it escalates, the spread follow-up, the storm brake, and the cases that must
stay apart (two events in one city on one day, a daily column)."""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.pipeline.stories import Member, choose, sketch
from tests.conftest import cli
from tests.harness import KEYWORDS as SERVICE_KEYWORDS
from tests.harness import Harness
from tests.servers import FeedFarm, Route, WebhookSink, running

# The service tests' watch list (rule `karabakh`, high), an urgent rule to escalate to, and the spread line.
KEYWORDS = (
    SERVICE_KEYWORDS
    + """[[rules]]
id = "karabakh-casualties"
query = '@karabakh AND (killed OR dead OR casualties)'
priority = "urgent"
[stories]
spread_alert = 5
"""
)

Story = tuple[str, str, str, datetime]  # guid, title, lede, published


def rss(*items: Story, link: str = "https://{host}.example/{guid}", host: str = "x") -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><description>{lede}</description>"
        f"<link>{link.format(host=host, guid=guid)}</link><pubDate>{format_datetime(when)}</pubDate></item>"
        for guid, title, lede, when in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{host}</title>{body}</channel></rss>'.encode()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Harness]:
    farm, sink = FeedFarm(), WebhookSink()
    with running(farm, sink):
        harness = Harness(tmp_path, farm, sink)
        (harness.dir / "keywords.toml").write_text(KEYWORDS)
        harness.feeds(*(farm.url(f"/{name}.xml") for name in OUTLETS))
        for name in OUTLETS:
            farm.routes[f"/{name}.xml"] = Route(rss(host=name))
        yield harness


OUTLETS = ("bbc", "wsj", "guardian", "aljazeera", "reuters", "column")


def publish(desk: Harness, outlet: str, *items: Story) -> None:
    desk.farm.routes[f"/{outlet}.xml"] = Route(rss(*items, host=outlet))


def offensive(now: datetime) -> dict[str, Story]:
    """One event, four outlets, four wordings (the 19 September 2023 offensive)."""
    return {
        "bbc": ("b1", "Azerbaijan launches military offensive in Nagorno-Karabakh",
                "Azerbaijan has launched an offensive against Armenian separatists in Nagorno-Karabakh, "
                "calling it an anti-terrorist operation.", now - timedelta(minutes=50)),
        "wsj": ("w1", "Azerbaijan attacks Nagorno-Karabakh as threat of new war looms",
                "Azerbaijan launched what it called an anti-terrorist operation in Nagorno-Karabakh, "
                "shelling the breakaway region held by Armenian separatists.", now - timedelta(minutes=40)),
        "guardian": ("g1", "Azerbaijan begins 'anti-terrorist operation' in Nagorno-Karabakh",
                     "Baku launched an offensive against ethnic Armenian separatists in Nagorno-Karabakh, "
                     "an anti-terrorist operation it says will continue until they surrender.",
                     now - timedelta(minutes=30)),
        "aljazeera": ("a1", "Azerbaijan launches 'anti-terror' offensive in Nagorno-Karabakh",
                      "Azerbaijan's defence ministry says it has launched an anti-terrorist operation against "
                      "Armenian separatists in Nagorno-Karabakh.", now - timedelta(minutes=20)),
    }  # fmt: skip


def test_four_outlets_one_story_one_alert_then_one_spread_follow_up(desk: Harness) -> None:
    now = desk.clock.now
    for outlet, item in offensive(now).items():
        publish(desk, outlet, item)
    report, deliveries = desk.cycle()
    assert (report.new_items, report.alerts, deliveries.sent) == (4, 1, 1)
    message = desk.console[0]
    assert all(name in message for name in ("bbc", "wsj", "guardian", "aljazeera")), message
    # A fifth outlet crosses `spread_alert = 5`: one follow-up, naming them all; a sixth sends nothing more.
    desk.clock.now = now + timedelta(minutes=30)
    publish(desk, "reuters", ("r1", "Azerbaijan launches anti-terrorist operation in Nagorno-Karabakh",
                              "Azerbaijan said it launched an anti-terrorist operation against Armenian separatists "
                              "in Nagorno-Karabakh.", now))  # fmt: skip
    report, deliveries = desk.cycle()
    assert (report.alerts, deliveries.sent) == (1, 1)
    assert "now in 5 outlets" in desk.console[1] and "reuters" in desk.console[1]
    publish(desk, "column", ("c1", "Azerbaijan launches anti-terrorist operation in Nagorno-Karabakh",
                             "Azerbaijan said it launched an anti-terrorist operation against Armenian separatists "
                             "in Nagorno-Karabakh.", now))  # fmt: skip
    report, deliveries = desk.cycle()
    assert (report.new_items, report.alerts, deliveries.sent) == (1, 0, 0)
    stories = [json.loads(line) for line in cli("stories", "--json", "--db", desk.db).stdout.splitlines()]
    assert [(s["outlets"], len(s["items"]), s["alerted"]) for s in stories] == [(6, 6, True)]
    assert {i["feed"] for i in stories[0]["items"][:4]} == {"bbc", "wsj", "guardian", "aljazeera"}
    assert [i["feed"] for i in stories[0]["items"][4:]] == ["reuters", "column"]  # in the order they joined


def test_a_later_item_that_fires_an_urgent_rule_sends_one_update(desk: Harness) -> None:
    now = desk.clock.now
    first = offensive(now)
    publish(desk, "bbc", first["bbc"])
    publish(desk, "wsj", first["wsj"])
    report, _ = desk.cycle()
    assert report.alerts == 1 and "[HIGH]" in desk.console[0]
    desk.clock.now = now + timedelta(minutes=20)
    publish(desk, "guardian", ("g2", "Azerbaijan launches offensive in Nagorno-Karabakh, dozens killed",
                               "Azerbaijan launched an anti-terrorist operation against Armenian separatists in "
                               "Nagorno-Karabakh; dozens were killed in the shelling.", now))  # fmt: skip
    report, deliveries = desk.cycle()
    assert (report.alerts, deliveries.sent) == (1, 1)
    assert "update: now urgent" in desk.console[1] and "[URGENT]" in desk.console[1]
    # The same escalation from another outlet is no news.
    publish(desk, "aljazeera", ("a2", "Azerbaijan offensive in Nagorno-Karabakh: dozens killed",
                                "Dozens were killed as Azerbaijan launched an anti-terrorist operation against "
                                "Armenian separatists in Nagorno-Karabakh.", now))  # fmt: skip
    report, _ = desk.cycle()
    assert report.alerts == 0 and len(desk.console) == 2
    alerts = cli("alerts", "--db", desk.db).stdout
    assert "update: now urgent" in alerts


def test_a_guid_reset_of_fifty_items_alerts_nothing_and_warns_once(
    desk: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    now = desk.clock.now
    rng = random.Random(9)
    vocabulary = [f"{a}{b}" for a in ("bar", "cor", "del", "fen", "gal", "hol", "jas", "kem") for b in "aeiouyrs"]
    day = now - timedelta(hours=20)
    items = [
        (f"old-{i}", f"Stepanakert {' '.join(rng.sample(vocabulary, 5))}",
         f"Karabakh {' '.join(rng.sample(vocabulary, 12))}.", day)
        for i in range(50)
    ]  # fmt: skip
    publish(desk, "column", *items)
    report, _ = desk.cycle()
    assert report.alerts == 50
    # A CMS migration: new GUIDs, new links, new dates; the same titles and text.
    desk.clock.now = now + timedelta(hours=1)
    moved = [(f"new-{i}", title, lede, now) for i, (_, title, lede, _) in enumerate(items)]
    desk.farm.routes["/column.xml"] = Route(rss(*moved, link="https://{host}.example/v2/{guid}", host="column"))
    with caplog.at_level(logging.WARNING, logger="monitor"):
        report, deliveries = desk.cycle()
    assert (report.new_items, report.alerts, deliveries.sent) == (50, 0, 0)
    storms = [r for r in caplog.records if "storm" in r.getMessage()]
    assert len(storms) == 1 and "50 of 50" in storms[0].getMessage()
    assert "storm" in cli("feeds", "--db", desk.db).stdout


def test_two_events_in_one_city_on_one_day_are_two_alerts(desk: Harness) -> None:
    now = desk.clock.now
    publish(desk, "bbc", ("b1", "Fuel depot explosion near Stepanakert kills dozens",
                          "A blast at a fuel depot outside Stepanakert killed at least 20 people as residents "
                          "queued for petrol to flee Nagorno-Karabakh.", now - timedelta(hours=3)))  # fmt: skip
    publish(desk, "wsj", ("w1", "Azerbaijan detains former Karabakh leader near Stepanakert",
                          "Azerbaijani border guards detained Ruben Vardanyan, a former leader of Nagorno-Karabakh, "
                          "as he tried to leave Stepanakert for Armenia.", now - timedelta(hours=1)))  # fmt: skip
    report, deliveries = desk.cycle()
    assert (report.alerts, deliveries.sent) == (2, 2)


def test_a_daily_column_repeating_its_title_and_lede_alerts_each_day(desk: Harness) -> None:
    now = desk.clock.now
    column = ("Karabakh briefing: what we know today", "The latest on the Nagorno-Karabakh conflict.")
    publish(desk, "column", ("day1", *column, now - timedelta(hours=1)))
    report, _ = desk.cycle()
    assert report.alerts == 1
    desk.clock.now = now + timedelta(days=1)
    publish(desk, "column", ("day2", *column, now + timedelta(hours=23)), ("day1", *column, now - timedelta(hours=1)))
    report, deliveries = desk.cycle()
    assert (report.new_items, report.alerts, deliveries.sent) == (1, 1, 1)


# --- the pure judgement -------------------------------------------------------------------------------------

T0 = datetime(2023, 9, 19, 9, 0, tzinfo=UTC)
LAUNCH = "Azerbaijan has launched an offensive against Armenian separatists in Nagorno-Karabakh."
WINDOW = timedelta(hours=72)


def member(story: int, feed: int, title: str, lede: str, at: datetime = T0) -> Member:
    return Member(story, feed, at, sketch(title, lede))


def test_a_rewrite_by_another_outlet_joins() -> None:
    stored = member(1, 1, "Azerbaijan launches military offensive in Nagorno-Karabakh", LAUNCH)
    new = sketch("Azerbaijan attacks Nagorno-Karabakh, launching offensive against separatists",
                 "Azerbaijan launched an offensive against Armenian separatists in Nagorno-Karabakh.")  # fmt: skip
    assert choose(new, 2, T0 + timedelta(hours=1), [stored], WINDOW) == 1
    assert choose(new, 2, T0 + timedelta(hours=80), [stored], WINDOW) is None  # outside the window
    # Within one feed only a near-copy joins, and only the same day: a column repeating itself is news again.
    other = sketch(
        "Azerbaijan says its offensive in Nagorno-Karabakh will go on until separatists surrender",
        "Azerbaijan will continue its offensive against Armenian separatists in Nagorno-Karabakh.",
    )
    assert choose(other, 1, T0 + timedelta(hours=1), [stored], WINDOW) is None
    assert choose(stored.sketch, 1, T0 + timedelta(hours=1), [stored], WINDOW) == 1
    assert choose(stored.sketch, 1, T0 + timedelta(hours=24), [stored], WINDOW) is None


def test_the_next_days_development_is_a_new_story() -> None:
    stored = member(1, 1, "Azerbaijan launches military offensive in Nagorno-Karabakh", LAUNCH)
    new = sketch(
        "Azerbaijan halts Karabakh operation as separatists lay down arms",
        "Armenian separatists in Nagorno-Karabakh agreed to disarm under a ceasefire brokered by Russia.",
    )
    assert choose(new, 2, T0 + timedelta(hours=26), [stored], WINDOW) is None


def test_templated_titles_with_other_names_are_other_stories() -> None:
    stored = member(1, 1, "England v Chile, Rugby World Cup: how to watch, kick-off time and team news",
                    "Everything you need to know about the Rugby World Cup match in Lille.")  # fmt: skip
    new = sketch("England v Samoa, Rugby World Cup: how to watch, kick-off time and team news",
                 "Everything you need to know about the Rugby World Cup match in Lille.")  # fmt: skip
    assert choose(new, 2, T0 + timedelta(hours=2), [stored], WINDOW) is None


def test_a_story_joins_only_if_every_outlet_in_it_agrees() -> None:
    """Chaining: an item that resembles only the latest turn of a story is not folded into it."""
    launch = member(1, 1, "Azerbaijan launches military offensive in Nagorno-Karabakh", LAUNCH)
    toll = member(
        1,
        2,
        "Azerbaijan offensive in Nagorno-Karabakh: death toll rises to 200",
        "The death toll from Azerbaijan's offensive against separatists in Nagorno-Karabakh rose to 200.",
        T0 + timedelta(hours=20),
    )
    new = sketch("Nagorno-Karabakh death toll rises to 200, separatists say",
                 "The death toll in Nagorno-Karabakh rose to 200, separatist officials said.")  # fmt: skip
    assert choose(new, 3, T0 + timedelta(hours=21), [toll], WINDOW) == 1
    assert choose(new, 3, T0 + timedelta(hours=21), [launch, toll], WINDOW) is None


# --- the labelled evaluation set ----------------------------------------------------------------------------

BENCH = Path(__file__).resolve().parent.parent / "bench" / "stories"


def test_the_labels_name_corpus_items_and_agree_with_themselves() -> None:
    """Every link in bench/stories/labels.jsonl is a corpus item, no item is in two stories, and each pair's
    label agrees with the stories (so the pair and desk figures of evaluate.py measure the same truth)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("story_corpus", BENCH / "corpus.py")
    assert spec is not None and spec.loader is not None
    corpus = importlib.util.module_from_spec(spec)
    sys.modules["story_corpus"] = corpus  # dataclasses look their module up there
    spec.loader.exec_module(corpus)
    if not corpus.CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    links = {item.link for item in corpus.load()}
    story_of: dict[str, int] = {}
    pairs = hard = 0
    rows = [json.loads(line) for line in (BENCH / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    for number, row in enumerate(rows):
        if "story" in row:
            for link in row["links"]:
                assert link in links and link not in story_of, link
                story_of[link] = number
    for row in rows:
        if "pair" in row:
            a, b = row["pair"]
            assert a in links and b in links
            assert (a in story_of and story_of.get(a) == story_of.get(b)) == row["same"], row["note"]
            pairs += 1
            hard += not row["same"] and row["hard"]
    assert pairs >= 300 and hard >= 100
