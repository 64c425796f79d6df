"""Reliability, group H: security (RELIABILITY.md cases 53-58).

Covered elsewhere, against real loopback servers:
- 53 (SSRF in every address form, decimal and octal literals, IPv4-mapped, metadata), 54 (a redirect to a
  blocked address refused on that hop), 55 (DNS rebinding: the connection goes to the checked address), 56
  (`file:`, `ftp:`, `gopher:`, `data:` refused as feed URL and redirect target; links http(s) only):
  tests/test_fetch.py, tests/test_config_errors.py, tests/test_normalize.py, tests/test_render.py.
- 57 for channel secrets at debug level and in the database: tests/test_e2e.py::test_desk_end_to_end;
  for a send error naming its target: tests/reliability/test_delivery.py.
Here: 57 for a feed's password, through a real process (log, database, listings), and 58.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.conftest import cli, cli_process
from tests.harness import Harness, headline, rss
from tests.servers import Route
from tests.test_e2e import database_text

PASSWORD = "Fe3dPassw0rdQ"


def test_57_a_feeds_password_is_used_to_fetch_and_stored_nowhere(harness: Harness) -> None:
    """A feed behind basic auth, its password from the environment: the poll authenticates (the farm answers
    401 without it), and the password appears in no log line at debug level, no database row, no listing."""
    harness.farm.routes["/x.xml"] = Route(rss(("s1", headline(1), harness.clock.now)), auth=f"desk:{PASSWORD}")
    url = harness.farm.url("/x.xml").replace("http://", "http://desk:${FEED_PASS}@")
    harness.feeds(url)
    run = cli_process("run", "--once", "--log-level", "debug", "--config-dir", str(harness.dir), "--db", harness.db,
                      env={"FEED_PASS": PASSWORD})  # fmt: skip
    assert run.code == 0, run.stderr
    assert "1 new items, 1 alerts" in run.stdout, run.stdout + run.stderr
    listed = cli("feeds", "--json", "--db", harness.db).stdout + cli("alerts", "--db", harness.db).stdout
    assert json.loads(listed.splitlines()[0])["status"] == "ok"
    for text in (run.stdout, run.stderr, listed, database_text(harness.db)):
        assert PASSWORD not in text
    raw = b"".join(p.read_bytes() for p in Path(harness.db.removeprefix("sqlite:///")).parent.glob("monitor.db*"))
    assert PASSWORD.encode() not in raw


def test_57_a_literal_password_in_feeds_toml_is_masked_in_the_database(harness: Harness) -> None:
    harness.farm.routes["/x.xml"] = Route(rss(("s1", headline(1), harness.clock.now)), auth=f"desk:{PASSWORD}")
    harness.feeds(harness.farm.url("/x.xml").replace("http://", f"http://desk:{PASSWORD}@"))
    report, _ = harness.cycle()
    assert report.alerts == 1 and report.failed == 0
    assert PASSWORD not in database_text(harness.db)


def test_58_database_and_its_directory_are_owner_only_under_umask_022(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "keywords.toml").write_text('schema = 1\n[[rules]]\nid = "r"\nquery = "\\"x\\""\n')
    (config / "feeds.toml").write_text("")
    database = tmp_path / "data" / "monitor.db"
    old = os.umask(0o022)
    try:
        run = cli_process("run", "--once", "--config-dir", str(config), "--db", f"sqlite:///{database}")
    finally:
        os.umask(old)
    assert run.code == 0, run.stderr
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    for path in database.parent.iterdir():  # the file, its -wal and -shm, the instance lock
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_58_a_readable_config_file_holding_secrets_is_warned_about(harness: Harness) -> None:
    """channels.toml written out with a webhook token and readable by others: `monitor check` and `monitor
    run` warn, naming the file and the fix, without the secret; once it is owner-only, or the token comes from
    the environment, no warning."""
    channels = harness.dir / "channels.toml"
    channels.write_text('[channels.desk]\nurls = ["json://127.0.0.1:9/hooks/T0kenInF1le"]\n')
    channels.chmod(0o644)
    check = cli_process("check", "--config-dir", str(harness.dir))
    assert check.code == 0 and check.stdout.startswith("ok:")
    assert f"warning: {channels}: readable by others (mode 644)" in check.stderr and "chmod 600" in check.stderr
    run = cli_process("run", "--once", "--config-dir", str(harness.dir), "--db", harness.db)
    assert "config warning:" in run.stderr and "readable by others" in run.stderr
    assert "T0kenInF1le" not in check.stderr + run.stderr
    channels.chmod(0o600)
    assert "warning" not in cli_process("check", "--config-dir", str(harness.dir)).stderr
    channels.write_text('[channels.desk]\nurls = ["json://127.0.0.1:9/hooks/${DESK_TOKEN}"]\n')
    channels.chmod(0o644)
    quiet = cli_process("check", "--config-dir", str(harness.dir), env={"DESK_TOKEN": "T0kenInEnv"})
    assert quiet.code == 0 and "warning" not in quiet.stderr
