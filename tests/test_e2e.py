"""End to end against real local parts: a loopback feed farm playing several outlets, real SQLite files and
the local PostgreSQL, real Apprise sends to a loopback json:// sink and to a local SMTP server.

Each `cycle` builds a fresh service on the same database, so every cycle after the first is also a
restart: nothing may re-alert, whatever survives only in memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from monitor.config import Config, load_config
from monitor.fetch import Fetcher
from monitor.metrics import Metrics
from monitor.service import CycleReport, DeliveryReport, Service, fetch_policy
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from tests.conftest import REPO
from tests.servers import FeedFarm, Route, SmtpSink, WebhookSink, running

TOKEN = "s3cr3tT0kenXYZ"
SMTP_PASS = "hunter2pwQQ"


def rss(items: list[tuple[str, str, str, str]], title: str = "Outlet A", encoding: str = "utf-8") -> bytes:
    """An RSS 2.0 feed of (guid, title, link, description) items."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{t}</title><link>{link}</link>"
        f"<pubDate>{datetime.now(UTC):%a, %d %b %Y %H:%M:%S} GMT</pubDate><description>{d}</description></item>"
        for guid, t, link, d in items
    )
    head = f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0">'
    return f"{head}<channel><title>{title}</title>{body}</channel></rss>".encode(encoding)


def atom(entries: list[tuple[str, str, str, str]]) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = "".join(
        f'<entry><id>{i}</id><title>{t}</title><link href="{link}"/>'
        f"<updated>{now}</updated><summary>{s}</summary></entry>"
        for i, t, link, s in entries
    )
    head = '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    return f"{head}<title>Outlet B</title><id>urn:b</id><updated>{now}</updated>{body}</feed>".encode()


STORY_1 = ("a-1", "Azerbaijani artillery shells Stepanakert as offensive begins",
           "https://a.example/news/1?utm_source=rss", "Heavy shelling was reported in Khankendi.")  # fmt: skip
STORY_1_B = ("urn:b:1", "Artillery fire reported around Stepanakert",
             "https://a.example/news/1?utm_medium=social#top", "Shelling in Khankendi, residents say.")  # fmt: skip
STORY_2 = ("urn:b:2", "Red Cross convoy reaches Karabakh through the Lachin corridor",
           "https://b.example/2", "The ICRC delivered humanitarian aid after months of blockade.")  # fmt: skip
QUIET = ("a-2", "Weather in Oslo stays mild", "https://a.example/news/2", "Sunny spells.")
STORY_3_RU = ("c-1", "Обстрел Степанакерта: есть погибшие", "https://c.example/1", "Артиллерия обстреляла Степанакерт.")
STORY_4 = ("urn:b:4", "Karabakh refugees cross into Armenia at Kornidzor",
           "https://b.example/4", "Thousands of ethnic Armenians fled Nagorno-Karabakh on Sunday.")  # fmt: skip


@dataclass
class Desk:
    farm: FeedFarm
    webhook: WebhookSink
    smtp: SmtpSink
    config_dir: Path
    database: str

    def config(self) -> Config:
        return load_config(self.config_dir)


@pytest.fixture
def desk(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    farm, webhook = FeedFarm(), WebhookSink()
    farm.routes["/a.xml"] = Route(rss([STORY_1, QUIET]))
    farm.routes["/b.atom"] = Route(atom([STORY_1_B, STORY_2]), content_type="application/atom+xml")
    farm.routes["/c.xml"] = Route(rss([STORY_3_RU], "Outlet C", "windows-1251"),
                                  content_type="application/rss+xml; charset=windows-1251")  # fmt: skip
    farm.routes["/login.xml"] = Route(
        b"<!DOCTYPE html><html><body>Please log in</body></html>", content_type="text/html"
    )
    farm.routes["/broken.xml"] = Route(b"<rss>oops</rss>", status=500)
    farm.routes["/slow.xml"] = Route(rss([]), delay=4.0)
    with running(farm, webhook), SmtpSink() as smtp:
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        (config_dir / "keywords.toml").write_text(
            (REPO / "config" / "keywords.toml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        (config_dir / "sources").mkdir()
        (config_dir / "sources" / "karabakh-2023-09.txt").write_text("source", encoding="utf-8")
        feeds = "".join(f'[[feeds]]\nurl = "{farm.url(p)}"\nname = "{n}"\n\n' for p, n in
                        [("/a.xml", "Outlet A"), ("/b.atom", "Outlet B"), ("/c.xml", "Outlet C"),
                         ("/login.xml", "Login wall"), ("/broken.xml", "Broken"), ("/slow.xml", "Slow")])  # fmt: skip
        (config_dir / "feeds.toml").write_text('[fetch]\ntimeout = "2s"\nallow_private_addresses = true\n\n' + feeds)
        mailto = (f"mailto://desk:${{SMTP_PASS}}@example.com?smtp=127.0.0.1&port={smtp.port}&mode=insecure"
                  "&from=monitor@example.com&to=desk@example.com")  # fmt: skip
        (config_dir / "channels.toml").write_text(
            f'[channels.desk]\nurls = ["{webhook.url("/hook/" + TOKEN)}", "{mailto}"]\n'
        )
        monkeypatch.setenv("SMTP_PASS", SMTP_PASS)
        yield Desk(farm, webhook, smtp, config_dir, database)


async def run_cycle(config_dir: Path, database: str, now: datetime | None, every: bool = True,
                    metrics: Metrics | None = None) -> tuple[CycleReport, DeliveryReport]:  # fmt: skip
    """One cycle of a new service on the database: poll (every feed, or the due ones), then deliver."""
    config = load_config(config_dir)
    engine = open_engine(database)
    upgrade(engine)
    assert config.feeds is not None
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    async with Fetcher(fetch_policy(config.feeds)) as fetcher:
        service = Service(config, Store(engine), fetcher, now=clock, console=lambda text: None, metrics=metrics)
        try:
            report = await service.poll(every=every)
            delivered = await service.deliver()
        finally:
            service.close()
    engine.dispose()
    return report, delivered


def cycle(desk: Desk, now: datetime | None = None) -> tuple[CycleReport, DeliveryReport]:
    return asyncio.run(run_cycle(desk.config_dir, desk.database, now))


def emails(desk: Desk) -> list[str]:
    return [str(m["Subject"]) for m in desk.smtp.messages]


def test_desk_end_to_end(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    report, delivered = cycle(desk)

    # Three relevant stories (one of them run by two outlets), each delivered once to each target.
    assert report.polled == 6
    assert report.alerts == 3, report
    assert sorted(desk.webhook.keys.values()) == [1, 1, 1]
    assert len(desk.smtp.messages) == 3
    titles = " ".join(r["body"]["title"] for r in desk.webhook.received)
    assert "Stepanakert" in titles and "Lachin" in titles and "Степанакерт" in titles
    assert "Oslo" not in titles
    assert delivered.sent == 6 and delivered.failed == 0
    failures = dict(report.failures)
    assert failures["Login wall"] == "not a feed (HTML)"
    assert failures["Broken"].startswith("HTTP 500")
    assert "timed out" in failures["Slow"]

    # Next cycle: conditional GETs answered 304, nothing new, nothing re-sent.
    report, delivered = cycle(desk)
    assert report.new_items == 0 and report.alerts == 0 and delivered.sent == 0
    assert desk.farm.requests_to("/a.xml")[-1].get("if-none-match")
    assert report.not_modified >= 3

    # The publisher regenerates every GUID, content unchanged: no alert.
    desk.farm.routes["/a.xml"] = Route(
        rss([("regenerated-" + STORY_1[0], *STORY_1[1:]), ("regenerated-a-2", *QUIET[1:])])
    )
    report, delivered = cycle(desk)
    assert report.new_items == 2 and report.alerts == 0 and delivered.sent == 0
    assert sorted(desk.webhook.keys.values()) == [1, 1, 1]

    # The webhook is down when a new story comes: email gets it at once, the webhook once it is back.
    desk.webhook.fail_with = 503
    desk.farm.routes["/b.atom"] = Route(atom([STORY_1_B, STORY_2, STORY_4]), content_type="application/atom+xml")
    report, delivered = cycle(desk)
    assert report.alerts == 1 and delivered.sent == 1 and delivered.failed == 1
    assert len(desk.smtp.messages) == 4 and "Kornidzor" in emails(desk)[-1]
    assert len(desk.webhook.keys) == 3
    desk.webhook.fail_with = None
    cycle(desk)  # the retry is not due yet
    assert len(desk.webhook.keys) == 3
    report, delivered = cycle(desk, now=datetime.now(UTC) + timedelta(minutes=10))
    assert delivered.sent == 1
    assert sorted(desk.webhook.keys.values()) == [1, 1, 1, 1]
    assert len(desk.smtp.messages) == 4

    # No secret in any log line or anywhere in the database.
    assert TOKEN not in caplog.text and SMTP_PASS not in caplog.text
    dump = database_text(desk.database)
    assert TOKEN not in dump and SMTP_PASS not in dump
    assert "Stepanakert" in dump  # the dump did read the tables
    if desk.database.startswith("sqlite"):
        path = Path(desk.database.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):
            raw = file.read_bytes()
            assert TOKEN.encode() not in raw and SMTP_PASS.encode() not in raw


def database_text(url: str) -> str:
    engine = open_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as connection:
        text = "\n".join(str(row) for table in meta.sorted_tables for row in connection.execute(select(table)))
    engine.dispose()
    return text


KILL_AFTER_COMMIT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from monitor.config import load_config
    from monitor.fetch import Fetcher
    from monitor.service import Service, fetch_policy
    from monitor.store.engine import open_engine, upgrade
    from monitor.store.repo import Store

    async def main():
        config = load_config(Path(sys.argv[1]))
        engine = open_engine(sys.argv[2])
        upgrade(engine)
        async with Fetcher(fetch_policy(config.feeds)) as fetcher:
            service = Service(config, Store(engine), fetcher, console=lambda text: None)
            report = await service.poll(every=True)
            print(report, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # committed, not yet sent

    asyncio.run(main())
    """
)


def test_crash_between_commit_and_send_loses_nothing(desk: Desk) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_COMMIT, str(desk.config_dir), desk.database],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "SMTP_PASS": SMTP_PASS},
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "3 alerts" in proc.stdout
    assert desk.webhook.attempts == 0 and not desk.smtp.messages

    report, delivered = cycle(desk)
    assert report.alerts == 0 and delivered.sent == 6
    assert sorted(desk.webhook.keys.values()) == [1, 1, 1]
    assert len(desk.smtp.messages) == 3


def test_newcomer_runs_the_shipped_config(tmp_path: Path) -> None:
    """`monitor run` on the shipped config, as the README says: it polls, reports each feed's error (no
    internet here), and stops on Ctrl-C with exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config-dir", str(REPO / "config")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        lines: list[str] = []
        assert proc.stderr is not None
        while datetime.now(UTC) < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if sum("poll failed" in x for x in lines) >= 5:
                break
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + err
    assert proc.returncode == 0, log
    assert "Traceback" not in log
    assert "monitor stopped" in log
    assert (tmp_path / "monitor.db").exists()
    assert oct((tmp_path / "monitor.db").stat().st_mode & 0o777) == "0o600"


def _one_feed(tmp_path: Path, url: str) -> Path:
    """A config directory: one rule (Stepanakert), one feed at `url`."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "keywords.toml").write_text('schema = 1\n[[rules]]\nid = "s"\nquery = "Stepanakert"\n')
    (config / "feeds.toml").write_text(f'[fetch]\nallow_private_addresses = true\n[[feeds]]\nurl = "{url}"\n')
    return config


def test_ctrl_c_to_the_process_group_stops_cleanly(tmp_path: Path) -> None:
    """A terminal's Ctrl-C: the service stops its poller processes and exits, and nobody prints a traceback."""
    farm = FeedFarm()
    farm.routes["/a.xml"] = Route(rss([STORY_1, QUIET]))
    with running(farm):
        config = _one_feed(tmp_path, farm.url("/a.xml"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config-dir", str(config)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the console alert: a worker has parsed the feed
            assert "Stepanakert" in first
            pollers = _children(proc.pid)
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "monitor stopped" in err
    assert pollers and not any(os.path.exists(f"/proc/{pid}") for pid in pollers)  # stopped and reaped


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_pollers_log_like_the_service_and_mask_secrets(tmp_path: Path) -> None:
    """Fetching happens in poller processes; at debug level their lines reach the service's log, in its
    format, with a token in a feed URL masked."""
    farm = FeedFarm()
    farm.routes["/a.xml"] = Route(rss([STORY_1, QUIET]))
    with running(farm):
        config = _one_feed(tmp_path, farm.url("/a.xml") + "?token=hunter22")
        proc = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--once", "--log-level", "debug", "--config-dir", str(config)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        listed = subprocess.run([sys.executable, "-m", "monitor", "feeds"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fetched = [line for line in proc.stderr.splitlines() if " monitor.fetch " in line]
    assert fetched and "token=***" in fetched[0] and " DEBUG " in fetched[0], proc.stderr
    # The feed answers 404: the failure is logged, summed up and listed, its URL masked each time.
    assert "poll failed" in proc.stderr and "failed:" in proc.stderr and "token=***" in listed.stdout
    assert "hunter22" not in proc.stderr + proc.stdout + listed.stdout + listed.stderr
