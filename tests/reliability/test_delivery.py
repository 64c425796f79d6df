"""Reliability, group D: notification failures (RELIABILITY.md cases 31-38), and the delivery promises of
DESIGN.md §7 a reviewer plants bugs in: the idempotency key across attempts, the number of attempts and the
doubling of their backoff, routing by a rule's `notify`, an alert's priority, scrubbed errors.

Covered elsewhere: the hourly cap (tests/test_service.py), SMTP sends (tests/test_e2e.py).
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from monitor.delivery import MAX_SEND_ATTEMPTS, SEND_TIMEOUT
from tests.conftest import cli, cli_process
from tests.harness import Harness, headline, rss
from tests.servers import DripSink, Route


def _deliveries(harness: Harness) -> list[tuple[str, int, str, datetime]]:
    """(status, attempts, channel, next try) of every delivery, oldest first."""
    with sqlite3.connect(harness.db.removeprefix("sqlite:///")) as db:
        rows = db.execute("SELECT status, attempts, channel, next_try_at FROM delivery ORDER BY id").fetchall()
    return [
        (status, attempts, channel, datetime.fromisoformat(at).replace(tzinfo=UTC))
        for status, attempts, channel, at in rows
    ]


def _one_story(harness: Harness, number: int = 0) -> None:
    harness.farm.routes["/x.xml"] = Route(rss((f"s{number}", headline(number), harness.clock.now)))


def test_31_a_target_failing_three_times_then_accepting_gets_one_message_under_one_key(harness: Harness) -> None:
    """500, 500, 500, then 200: four attempts, each after a backoff twice the last (30 s, 60 s, 120 s, with
    ±20% jitter), every one carrying the same idempotency key, and the sink accepts exactly one."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.fail_next = 3
    _one_story(harness)
    harness.cycle()
    waits = []
    for _ in range(3):
        [(status, _, _, next_try)] = _deliveries(harness)
        assert status == "pending"
        waits.append((next_try - harness.clock.now).total_seconds())
        harness.clock.now = next_try + timedelta(seconds=1)
        harness.cycle(poll=False)
    assert [(status, attempts) for status, attempts, *_ in _deliveries(harness)] == [("sent", 4)]
    for wait, base in zip(waits, (30, 60, 120), strict=True):
        assert 0.8 * base - 1 <= wait <= 1.2 * base + 1, waits
    keys = {key for _, key in harness.sink.refused} | set(harness.sink.keys)
    assert len(harness.sink.refused) == 3 and len(keys) == 1 and list(harness.sink.keys.values()) == [1]


def test_a_target_that_never_accepts_is_tried_exactly_max_attempts_then_given_up(harness: Harness) -> None:
    """Twelve attempts, then the delivery is dead and no further attempt is made, however long the service
    runs: no endless retries, and the reason stays on the row."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.fail_with = 503
    _one_story(harness)
    harness.cycle()
    for _ in range(MAX_SEND_ATTEMPTS + 3):
        harness.clock.now += timedelta(hours=2)  # past the longest backoff (an hour)
        harness.cycle(poll=False)
    assert MAX_SEND_ATTEMPTS == 12
    assert harness.sink.attempts == MAX_SEND_ATTEMPTS
    [(status, attempts, *_)] = _deliveries(harness)
    assert (status, attempts) == ("dead", MAX_SEND_ATTEMPTS)


def test_32_a_target_that_never_answers_is_given_up_on_within_the_send_timeout(harness: Harness) -> None:
    """A webhook that drips its answer a byte every 2 s (each read within the socket's timeout) ends the send
    at the service's deadline, 15 s at most (RELIABILITY.md case 32), with the delivery left to retry, and
    the other target of the channel gets its message meanwhile."""
    assert SEND_TIMEOUT <= 15
    with DripSink(every=2.0, seconds=60) as drip:
        harness.channels(f'[channels.desk]\nurls = ["{drip.url()}", "{harness.sink.url()}"]\n')
        _one_story(harness)
        started = time.monotonic()
        _, delivered = harness.cycle()
        elapsed = time.monotonic() - started
    assert (delivered.sent, delivered.failed) == (1, 1)
    assert drip.connections == 1 and len(harness.sink.received) == 1
    # A bound the machine's load cannot make fail: the deadline plus a poll, far below 30 s.
    assert elapsed < SEND_TIMEOUT + 10, elapsed
    statuses = sorted((status, attempts) for status, attempts, *_ in _deliveries(harness))
    assert statuses == [("pending", 1), ("sent", 1)]


def test_34_one_target_down_is_retried_alone(harness: Harness) -> None:
    """Three targets, one refusing: the other two receive exactly one message each, now and after the retry
    that reaches the third."""
    urls = [harness.sink.url(p) for p in ("/slack", "/telegram", "/mail")]
    harness.channels("[channels.desk]\nurls = [" + ", ".join(f'"{u}"' for u in urls) + "]\n")
    harness.sink.fail_paths = {"/slack": 503}
    _one_story(harness)
    harness.cycle()
    harness.sink.fail_paths = {}
    harness.clock.now += timedelta(minutes=5)
    harness.cycle(poll=False)
    paths = sorted(r["path"].split("?")[0] for r in harness.sink.received)
    assert paths == ["/mail", "/slack", "/telegram"]
    assert [p for p, _ in harness.sink.refused] == ["/slack"]


def test_a_rules_notify_list_routes_its_alerts_and_only_its(harness: Harness) -> None:
    """`notify = ["night"]` sends a rule's alerts to the night desk only; a rule without `notify` goes to
    every channel."""
    (harness.dir / "keywords.toml").write_text(
        'schema = 1\n[entities.karabakh]\nkind = "place"\nnames = ["Karabakh"]\n'
        '[entities.baku]\nkind = "place"\nnames = ["Baku"]\n'
        '[[rules]]\nid = "karabakh"\nquery = "@karabakh"\npriority = "high"\nnotify = ["night"]\n'
        '[[rules]]\nid = "baku"\nquery = "@baku"\npriority = "low"\n'
    )
    harness.channels(
        f'[channels.desk]\nurls = ["{harness.sink.url("/desk")}"]\n'
        f'[channels.night]\nurls = ["{harness.sink.url("/night")}"]\n'
    )
    harness.farm.routes["/x.xml"] = Route(
        rss(("k", headline(1, "Karabakh"), harness.clock.now), ("b", headline(2, "Baku"), harness.clock.now))
    )
    harness.cycle()
    got = sorted((r["path"].split("?")[0], r["body"]["title"].split()[-1]) for r in harness.sink.received)
    karabakh, baku = headline(1, "Karabakh").split()[-1], headline(2, "Baku").split()[-1]
    assert got == sorted([("/night", karabakh), ("/desk", baku), ("/night", baku)])


def test_an_alert_takes_the_highest_priority_of_its_matches(harness: Harness) -> None:
    """An item matching a low rule and an urgent one alerts as urgent, whatever the rules' order."""
    (harness.dir / "keywords.toml").write_text(
        'schema = 1\n[entities.karabakh]\nkind = "place"\nnames = ["Karabakh"]\n'
        '[entities.shelling]\nkind = "event"\nnames = ["shelling"]\n'
        '[[rules]]\nid = "region"\nquery = "@karabakh"\npriority = "low"\n'
        '[[rules]]\nid = "attack"\nquery = "@karabakh AND @shelling"\npriority = "urgent"\n'
        '[[rules]]\nid = "any"\nquery = "@shelling"\npriority = "normal"\n'
    )
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.farm.routes["/x.xml"] = Route(rss(("s", f"{headline(3)} shelling", harness.clock.now)))
    harness.cycle()
    [message] = harness.sink.received
    assert message["body"]["title"].startswith("[URGENT]"), message["body"]["title"]
    assert "urgent" in message["body"]["message"].lower()


def test_a_delivery_error_with_the_targets_secret_in_it_is_scrubbed(harness: Harness) -> None:
    """A send error that names the target (Apprise names the host it could not reach; here the host itself
    holds the secret, from the environment, as a per-customer webhook host does): `monitor run --once` at
    debug level, a real process, writes the secret nowhere: not its log, not the delivery row, not
    `monitor alerts`. Apprise's own log lines, unscrubbed, never reach the service's log."""
    secret = "hook-T0kenS3cretValue"
    harness.channels('[channels.desk]\nurls = ["json://${DESK_HOST}.invalid/hook"]\n')
    _one_story(harness)
    run = cli_process("run", "--once", "--log-level", "debug", "--config-dir", str(harness.dir), "--db", harness.db,
                      env={"DESK_HOST": secret})  # fmt: skip
    assert run.code == 0, run.stderr
    assert "send failed (will retry): send failed: A Connection error occurred" in run.stderr, run.stderr
    with sqlite3.connect(harness.db.removeprefix("sqlite:///")) as db:
        [(error,)] = db.execute("SELECT last_error FROM delivery").fetchall()
    listed = cli("alerts", "--db", harness.db).stdout
    for text in (run.stderr, run.stdout, error, listed):
        assert "T0kenS3cret" not in text


def test_the_hourly_caps_last_free_slot_carries_a_single_alert(harness: Harness) -> None:
    """`max_per_hour = 3` and exactly three alerts: three messages of one alert each, no summary; a fourth in
    the same hour waits, and goes out when the hour frees a slot."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\nmax_per_hour = 3\n')
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(3))))
    harness.cycle()
    titles = [r["body"]["title"] for r in harness.sink.received]
    assert len(titles) == 3 and not any("more alerts" in t for t in titles), titles
    harness.clock.now += timedelta(minutes=1)
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(4))))
    harness.cycle()
    assert len(harness.sink.received) == 3
    harness.clock.now += timedelta(hours=1, minutes=6)
    harness.cycle(poll=False)
    assert len(harness.sink.received) == 4 and headline(3).split()[-1] in harness.sink.received[-1]["body"]["title"]


@pytest.mark.parametrize(
    ("behaviour", "error", "status"),
    [
        ("raise", "Apprise raised RuntimeError: plugin crashed", "pending"),
        ("false", "send failed: no reason given", "pending"),
        ("none", "Apprise had no service to notify (a config problem, not a success)", "dead"),
    ],
)
def test_36_apprise_raising_failing_or_answering_none_are_three_outcomes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, behaviour: str, error: str, status: str
) -> None:
    """Apprise's notify made to raise, return False and return None (the one place a stand-in is used: no
    real service makes Apprise return None): each is recorded as its own failure; a raise and a False are
    retried, a None is a config problem, dead at once instead of retried for hours, and never a success."""
    import apprise

    def notify(self: object, **kwargs: object) -> object:
        if behaviour == "raise":
            raise RuntimeError("plugin crashed")
        return behaviour == "none" and None

    monkeypatch.setattr(apprise.Apprise, "notify", notify)
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    _one_story(harness)
    _, delivered = harness.cycle()
    assert (delivered.sent, delivered.failed) == (0, 1)
    with sqlite3.connect(harness.db.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT status, last_error FROM delivery").fetchall() == [(status, error)]


def _outage(harness: Harness, stories: int) -> None:
    """The webhook down for two hours while `stories` alerts arrive, one every ten minutes or so."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.fail_with = 503
    items: list[tuple[str, str, datetime]] = []
    step = timedelta(minutes=120 / stories)
    for n in range(stories):
        items.insert(0, (f"s{n}", headline(n), harness.clock.now))
        harness.farm.routes["/x.xml"] = Route(rss(*items))
        harness.cycle()
        harness.clock.now += step
    harness.sink.fail_with = None
    harness.clock.now += timedelta(hours=2)


def test_37_after_an_outage_the_backlog_drains_in_order_once_each(harness: Harness) -> None:
    """Five alerts held by a dead webhook for two hours arrive, once it answers, in the order they were
    detected, one message each; while it was down, each retry cost one attempt, not one per alert."""
    _outage(harness, 5)
    attempts_while_down = len(harness.sink.refused)
    harness.cycle(poll=False)
    titles = [r["body"]["title"] for r in harness.sink.received]
    order = [next(n for n in range(5) if headline(n).split()[-1] in title) for title in titles]
    assert order == [0, 1, 2, 3, 4], titles
    assert len(set(harness.sink.keys)) == 5 and set(harness.sink.keys.values()) == {1}
    assert attempts_while_down <= 12, attempts_while_down  # one per retry of the target, not one per alert


def test_37_a_large_backlog_arrives_as_one_summary(harness: Harness) -> None:
    """Fifteen alerts held by the outage: one summary message naming all fifteen, not fifteen pings."""
    _outage(harness, 15)
    harness.cycle(poll=False)
    [message] = harness.sink.received
    assert message["body"]["title"] == "monitor: alerts that waited: 15 stories", message["body"]["title"]
    assert all(headline(n).split()[-1] in message["body"]["message"] for n in range(15))


def test_one_message_failing_does_not_hold_the_others(harness: Harness) -> None:
    """A target refuses one message and takes the next: it is not down (that message is the trouble), so the
    others go out now and only the refused one waits for its retry."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.fail_next = 1
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(4))))
    _, delivered = harness.cycle()
    assert (delivered.sent, delivered.failed) == (3, 1) and len(harness.sink.received) == 3


def test_38_each_service_gets_a_message_within_its_limit_with_links_kept() -> None:
    """Apprise's own limits per service (Telegram 4,096 characters with no title field, Discord 2,000): a
    digest of fifty long stories fits whole lines, each with its link, and says how many more; a long alert
    drops its optional lines first and keeps its link."""
    from zoneinfo import ZoneInfo

    from monitor import notify
    from monitor.pipeline.render import render_alert, render_digest
    from monitor.records import AlertView

    telegram = notify.body_limit("tgram://123456789:abcdefg_hijklmnop/123")
    discord = notify.body_limit("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js")
    assert telegram == 4096 - notify.TITLE_ROOM and discord == 2000
    now = datetime(2026, 12, 1, tzinfo=UTC)
    alerts = [
        AlertView(alert_id=n, story_id=n, title=f"{headline(n)} {'word ' * 50}".strip(), summary="summary " * 60,
                  link=f"https://x.example/{n}", outlet="Outlet", published=now, detected=now, rules=("r",),
                  priority="high", hits=(), also=tuple(f"Outlet {m}" for m in range(40)))
        for n in range(50)
    ]  # fmt: skip
    for fmt in ("text", "markdown", "html"):
        digest = render_digest(alerts, fmt, ZoneInfo("UTC"), "monitor digest", telegram)  # type: ignore[arg-type]
        assert len(digest.body) <= telegram
        listed = [line for line in digest.body.splitlines() if "x.example" in line]
        assert listed and all(f"x.example/{alert.alert_id}" in digest.body for alert in alerts[: len(listed)])
        assert f"and {50 - len(listed)} more" in digest.body
        single = render_alert(alerts[0], fmt, ZoneInfo("UTC"), 600)  # type: ignore[arg-type]
        assert len(single.body) <= 600 and "x.example/0" in single.body
        assert "Outlet · " in single.body and "also:" not in single.body  # the optional lines went first


def test_38_the_delivery_renders_within_the_targets_limit(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring: a target whose service takes 1,000 characters (a stand-in for the limit, on the local
    webhook) gets a digest of 1,000 characters at most, with the count of what did not fit."""
    from monitor import notify

    monkeypatch.setattr(notify, "body_limit", lambda url: 1000)
    harness.channels(
        f'[channels.desk]\nurls = ["{harness.sink.url()}"]\nmode = "digest"\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
    )
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(30))))
    harness.cycle()
    harness.clock.now += timedelta(hours=1)
    harness.cycle(poll=False)
    [message] = harness.sink.received
    assert len(message["body"]["message"]) <= 1000 and "more: see `monitor alerts`" in message["body"]["message"]


def test_35_a_rate_limited_target_gets_a_burst_of_thirty_all_once(harness: Harness) -> None:
    """A target that takes five posts a second and answers 429 to the rest: of a burst of thirty alerts,
    every story arrives, none twice, as the refused ones wait (the target held after two refusals in a row)
    and then go out as one summary of what waited. Pacing the sends to the service's rate beforehand is still
    open."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.sink.per_second = 5
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(30))))
    harness.cycle()
    words = [headline(n).split()[-1] for n in range(30)]

    def told() -> Counter[str]:
        texts = [r["body"]["title"] + " " + r["body"]["message"] for r in harness.sink.received]
        return Counter(word for text in texts for word in words if word in text)

    for _ in range(20):
        if len(told()) == 30:
            break
        time.sleep(1.0)  # the target's second passes
        harness.clock.now += timedelta(minutes=2)
        harness.cycle(poll=False)
    assert len(told()) == 30 and set(told().values()) == {1}, told()
    assert harness.sink.refused and set(harness.sink.keys.values()) == {1}


def test_35_sends_to_a_chat_are_paced_to_its_rate(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each service's pace (Telegram and Slack one message a second; here a stand-in of 0.3 s on the local
    webhook): a burst of five arrives spaced at least that far apart. The services' own figures are checked
    against Apprise's plugins."""
    from monitor import notify

    assert notify.min_gap("tgram://123456789:abcdefg_hijklmnop/123") >= 1.0
    assert notify.min_gap("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#c") >= 1.0
    assert notify.min_gap(harness.sink.url()) == 0.0
    monkeypatch.setattr(notify, "min_gap", lambda url: 0.3)
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(5))))
    harness.cycle()
    times = [r["at"] for r in harness.sink.received]
    assert len(times) == 5 and all(b - a >= 0.28 for a, b in itertools.pairwise(times)), times


def test_40_a_summary_interrupted_before_its_record_is_resent_whole_under_its_key(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary of a backlog reaches the target, then the service dies before recording it (the record
    made to fail: the database is left as a SIGKILL leaves it). The next run sends those same alerts as one
    message under the same key, and a story that arrived meanwhile in a message of its own: an idempotent
    target keeps one of each, nothing twice under two keys."""
    from monitor.delivery import Deliverer

    _outage(harness, 12)

    async def killed(self: Deliverer, sends: object) -> list[None]:
        raise RuntimeError("killed before the record")

    monkeypatch.setattr(Deliverer, "_mark_sent", killed)
    with pytest.raises(RuntimeError):
        harness.cycle(poll=False)
    monkeypatch.undo()
    [summary] = harness.sink.received
    items = [(f"s{n}", headline(n), harness.clock.now) for n in range(12)]
    harness.farm.routes["/x.xml"] = Route(rss(("late", headline(99), harness.clock.now), *items))
    harness.clock.now += timedelta(minutes=3)  # the claim's lease has expired
    harness.cycle()
    keys = [r["headers"]["x-idempotency-key"] for r in harness.sink.received]
    assert len(keys) == 3 and keys[1] == keys[0] == summary["headers"]["x-idempotency-key"] != keys[2], keys
    assert headline(99).split()[-1] in harness.sink.received[2]["body"]["title"]
