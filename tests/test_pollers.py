"""Poller processes on a real loopback farm: outcomes equal the in-process path's, a poller that dies fails
only its own feeds (and the next poll starts another), retiring lets polls in flight finish and reaps the
process, and a poller whose service is killed stops by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.fetch import Fetcher, FetchPolicy
from monitor.pipeline.match import Matcher, RuleSpec
from monitor.pipeline.query import parse
from monitor.poller import Job, poll_feed, read_and_match
from monitor.pollers import Pollers
from monitor.records import FeedTask, FetchResult, PollOutcome
from tests.conftest import REPO
from tests.servers import FeedFarm, Route, running

POLICY = FetchPolicy(allow_private_addresses=True, timeout=timedelta(seconds=10))
NOW = datetime.now(UTC)


def matcher() -> Matcher:
    return Matcher({"karabakh": ("Karabakh", "Stepanakert")}, [RuleSpec("karabakh", "high", parse("@karabakh"))])


def rss(*items: tuple[str, str]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://x.example/{guid}</link>"
        f"<pubDate>{format_datetime(NOW)}</pubDate></item>"
        for guid, title in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>X</title>{body}</channel></rss>'.encode()


def task(url: str, feed_id: int = 1, first_poll: bool = False) -> FeedTask:
    return FeedTask(
        feed_id=feed_id, config_url=url, url=url, name=None, etag=None, last_modified=None, body_hash=None,
        first_poll=first_poll, error_count=0, permanent_url=None, permanent_hits=0,
    )  # fmt: skip


@pytest.fixture
def farm() -> Iterator[FeedFarm]:
    farm = FeedFarm()
    with running(farm):
        yield farm


def alive(pid: int) -> bool:
    """Running, not a zombie: an orphan's exit is reaped by whoever adopts it, maybe late."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_poller_reads_as_this_process_does(farm: FeedFarm) -> None:
    farm.routes["/a.xml"] = Route(rss(("1", "Shelling near Stepanakert"), ("2", "Oslo weather"), ("3", "Markets")))
    job = Job(task(farm.url("/a.xml")), frozenset({"guid:3"}), timedelta(hours=24))

    async def in_process() -> PollOutcome:
        async def read(t: FeedTask, r: FetchResult, now: datetime, known: object) -> object:
            return read_and_match(matcher(), t, r, now, job.known)

        async with Fetcher(POLICY) as fetcher:
            return await poll_feed(fetcher, job, read, lambda: NOW)  # type: ignore[arg-type]

    started: list[int] = []

    async def in_poller() -> PollOutcome:
        pollers = Pollers(2, matcher(), POLICY)
        try:
            outcome = await pollers.poll(job)
            started.extend(pollers.pids())
            return outcome
        finally:
            pollers.close()

    here, there = asyncio.run(in_process()), asyncio.run(in_poller())
    assert there.status == here.status == "ok"
    assert [n.item.key for n in there.new_items] == [n.item.key for n in here.new_items] == ["guid:1", "guid:2"]
    assert [[m.rule for m in n.matches] for n in there.new_items] == [["karabakh"], []]
    assert len(started) == 1  # the job's shard only: a poller starts with its first job
    assert not os.path.exists(f"/proc/{started[0]}")  # closed and reaped


def test_a_dead_poller_fails_its_feeds_and_the_next_poll_starts_another(farm: FeedFarm) -> None:
    farm.routes["/slow.xml"] = Route(rss(("1", "Karabakh")), delay=5.0)
    farm.routes["/fast.xml"] = Route(rss(("2", "Stepanakert")))

    async def scenario() -> tuple[PollOutcome, PollOutcome]:
        pollers = Pollers(1, matcher(), POLICY)
        try:
            waiting = asyncio.ensure_future(pollers.poll(Job(task(farm.url("/slow.xml")), None, timedelta(1))))
            deadline = time.monotonic() + 10
            while not (running := pollers.pids()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the request is in flight
            for pid in running:
                os.kill(pid, signal.SIGKILL)
            lost = await asyncio.wait_for(waiting, 10)
            again = await asyncio.wait_for(pollers.poll(Job(task(farm.url("/fast.xml"), 2), None, timedelta(1))), 10)
            return lost, again
        finally:
            pollers.close()

    lost, again = asyncio.run(scenario())
    assert (lost.feed_id, lost.status) == (1, "failed")
    assert lost.error is not None and "poller process stopped" in lost.error
    assert (again.feed_id, again.status, len(again.new_items)) == (2, "ok", 1)


def test_a_retired_pool_finishes_the_polls_in_flight(farm: FeedFarm) -> None:
    farm.routes["/slow.xml"] = Route(rss(("1", "Karabakh")), delay=1.0)

    async def scenario() -> tuple[PollOutcome, list[int]]:
        pollers = Pollers(1, matcher(), POLICY)
        try:
            waiting = asyncio.ensure_future(pollers.poll(Job(task(farm.url("/slow.xml")), None, timedelta(1))))
            await asyncio.sleep(0.3)
            running = pollers.pids()
            pollers.retire()
            outcome = await asyncio.wait_for(waiting, 10)
            deadline = time.monotonic() + 10
            while any(os.path.exists(f"/proc/{pid}") for pid in running) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # it exits, and its answer thread reaps it
            return outcome, running
        finally:
            pollers.close()

    outcome, running = asyncio.run(scenario())
    assert (outcome.status, [n.item.key for n in outcome.new_items]) == ("ok", ["guid:1"])
    assert len(running) == 1 and not os.path.exists(f"/proc/{running[0]}")


def test_every_poller_takes_work_from_one_host_and_the_host_never_sees_more_than_two_requests(
    farm: FeedFarm,
) -> None:
    """Feeds all on one host (an outlet's section feeds, an aggregator) still go to every poller, while the
    per-host limit of 2 requests holds across them: a poller's own fetcher would allow 2 each."""
    paths = [f"/s{n}.xml" for n in range(24)]
    for n, path in enumerate(paths):
        farm.routes[path] = Route(rss((str(n), "Karabakh")), delay=0.05)

    async def scenario() -> tuple[list[PollOutcome], list[int]]:
        pollers = Pollers(2, matcher(), POLICY)
        try:
            jobs = [Job(task(farm.url(path), feed_id=n), None, timedelta(1)) for n, path in enumerate(paths)]
            return list(await asyncio.gather(*(pollers.poll(job) for job in jobs))), pollers.spread()
        finally:
            pollers.close()

    outcomes, spread = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["ok"] * 24
    assert farm.peak == 2  # never more, and the limit was used
    assert len(spread) == 2 and min(spread) >= 6, spread


def test_a_poller_stops_when_its_service_dies(farm: FeedFarm) -> None:
    farm.routes["/slow.xml"] = Route(rss(("1", "Karabakh")), delay=30.0)
    script = textwrap.dedent(f"""
            import asyncio, sys, time
            from datetime import timedelta
            from tests.test_pollers import POLICY, Job, Pollers, matcher, task

            async def main() -> None:
                pollers = Pollers(1, matcher(), POLICY)
                asyncio.ensure_future(pollers.poll(Job(task({farm.url("/slow.xml")!r}), None, timedelta(1))))
                while not pollers.pids():
                    await asyncio.sleep(0.05)
                print(pollers.pids()[0], flush=True)
                await asyncio.sleep(60)

            asyncio.run(main())
        """)
    assert poller_outlives_its_killed_service(script, lambda: None) is False


def poller_outlives_its_killed_service(script: str, before_kill: Callable[[], None]) -> bool:
    """Run `script` (a service that prints its poller's pid), kill it without a goodbye once `before_kill`
    returns, and say whether the poller is still running 20 s later."""
    service = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert service.stdout is not None
        poller = int(service.stdout.readline())
        before_kill()
        service.kill()  # the poller's end of the pipe just closes
        service.wait()
        deadline = time.monotonic() + 20
        while alive(poller) and time.monotonic() < deadline:
            time.sleep(0.1)
        return alive(poller)
    finally:
        service.kill()


def test_a_retired_poller_waiting_for_keys_stops_when_its_service_dies(farm: FeedFarm) -> None:
    """A changed body makes the poller ask for the feed's keys; the service retires it (a reload) and dies
    before answering: the poller must not wait for the keys for ever."""
    farm.routes["/changed.xml"] = Route(rss(("1", "Karabakh")))
    script = textwrap.dedent(f"""
            import asyncio
            from datetime import timedelta
            from tests.test_pollers import POLICY, Job, Pollers, matcher, task

            async def never(feed_id: int) -> frozenset[str]:
                await asyncio.sleep(3600)
                return frozenset()

            async def main() -> None:
                pollers = Pollers(1, matcher(), POLICY, never)
                asyncio.ensure_future(pollers.poll(Job(task({farm.url("/changed.xml")!r}), None, timedelta(1))))
                await asyncio.sleep(0.2)
                pollers.retire()
                print(pollers.pids()[0], flush=True)
                await asyncio.sleep(60)

            asyncio.run(main())
        """)

    def until_the_body_is_in() -> None:
        deadline = time.monotonic() + 20
        while not farm.requests_to("/changed.xml") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the poller has the body and waits for the keys

    assert poller_outlives_its_killed_service(script, until_the_body_is_in) is False
