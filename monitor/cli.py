"""The `monitor` command line: thin Typer commands over `service`. Exit 0 ok, 1 user error, 2 usage error.

Commands import what they use when they run, so that `monitor --help` and the small commands start fast and
none carries the database, Apprise and aiohttp in memory for nothing."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from monitor import logs
from monitor.errors import ConfigError, InputError, MonitorError

app = typer.Typer(
    name="monitor",
    help="Media-monitoring alerts for a news desk: poll feeds, match a watch list, alert editors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigDir = Annotated[
    Path,
    typer.Option(
        "--config-dir",
        envvar="MONITOR_CONFIG_DIR",
        help="Directory holding keywords.toml, feeds.toml and channels.toml.",
        show_default=True,
    ),
]


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the user's mistakes into one line each on stderr and exit 1; bugs keep their traceback."""
    try:
        yield
    except ConfigError as e:
        for problem in e.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    except MonitorError as e:
        _fail(f"error: {e}")


@app.command()
def check(config_dir: ConfigDir = Path("config")) -> None:
    """Validate all config; print `ok: F feeds, E entities, T term groups, R rules, C channels`."""
    from monitor import watch

    with _user_errors():
        report = watch.check(config_dir)
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(str(report))


@app.command()
def match(
    config_dir: ConfigDir = Path("config"),
    text: Annotated[str | None, typer.Option("--text", help="Try the watch list on this text (as a title).")] = None,
    input_file: Annotated[
        str | None,
        typer.Option("--input", help="JSON Lines of items ({id, title, summary, ...}); - for stdin."),
    ] = None,
) -> None:
    """Try the watch list on items without storing or notifying; JSON Lines out, one line per item."""
    if (text is None) == (input_file is None):
        raise typer.BadParameter("give exactly one of --text or --input")
    from monitor import watch
    from monitor.items import read_item, read_items, result_line

    with _user_errors():
        matcher = watch.load_matcher(config_dir)
        if text is not None:
            item = read_item(_json_text(text), "--text")
            typer.echo(result_line(item.id, watch.match_document(matcher, item.document)))
            return
        assert input_file is not None
        failed = 0
        out = sys.stdout
        with _open_input(input_file) as lines:
            for entry in read_items(lines, "<stdin>" if input_file == "-" else input_file):
                if isinstance(entry, InputError):
                    failed += 1
                    typer.echo(f"error: {entry}", err=True)
                    continue
                out.write(result_line(entry.id, watch.match_document(matcher, entry.document)) + "\n")
        out.flush()
        if failed:
            _fail(f"error: {failed} input line(s) could not be read; the others were matched")


def _json_text(text: str) -> str:
    import json

    return json.dumps({"id": "text", "title": text})


@contextmanager
def _open_input(name: str) -> Iterator[Iterator[str]]:
    if name == "-":
        sys.stdin.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        yield iter(sys.stdin)
        return
    try:
        handle = open(name, encoding="utf-8")  # noqa: SIM115 - closed below, after the generator is drained
    except OSError as e:
        raise InputError(f"{name}: cannot read ({e.strerror})") from e
    try:
        yield _lines(handle, name)
    finally:
        handle.close()


def _lines(handle: object, name: str) -> Iterator[str]:
    try:
        yield from handle  # type: ignore[misc]
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: not UTF-8 text ({e.reason})") from e


DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="MONITOR_DATABASE_URL", help="Database URL (default sqlite:///monitor.db).", show_default=False
    ),
]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


@app.command()
def run(
    config_dir: ConfigDir = Path("config"),
    db: DatabaseUrl = None,
    once: Annotated[
        bool, typer.Option("--once", help="One full cycle over every feed, deliver what is due, exit.")
    ] = False,
    log_level: LogLevel = "INFO",
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", envvar="MONITOR_METRICS_PORT", min=0, max=65535,
                     help="Serve Prometheus metrics (/metrics) and a health probe (/healthz) on this port."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", envvar="MONITOR_METRICS_HOST", help="Address the metrics port binds.")
    ] = "127.0.0.1",
) -> None:  # fmt: skip
    """The service: poll feeds when due, match, store, and notify; stops cleanly on Ctrl-C or SIGTERM."""
    from monitor import runner

    logs.setup(log_level)
    with _user_errors():
        runner.run(config_dir, db, once=once, metrics=None if metrics_port is None else (metrics_host, metrics_port))


Limit = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="At most this many rows (default: a screenful on a terminal, else all)."),
]
Json = Annotated[bool, typer.Option("--json", help="JSON Lines, one object per row.")]


@app.command()
def feeds(config_dir: ConfigDir = Path("config"), db: DatabaseUrl = None, limit: Limit = None,
          as_json: Json = False) -> None:  # fmt: skip
    """Feed health, failing first: status, last success, last error, items, next poll."""
    from monitor import listings

    with _user_errors():
        listings.show_feeds(db, limit, as_json)


@app.command()
def alerts(config_dir: ConfigDir = Path("config"), db: DatabaseUrl = None, limit: Limit = None,
           as_json: Json = False) -> None:  # fmt: skip
    """Recent alerts, newest first, the rules they fired, and their delivery to each channel."""
    from monitor import listings

    with _user_errors():
        listings.show_alerts(db, limit, as_json)


@app.command()
def stories(
    config_dir: ConfigDir = Path("config"),
    db: DatabaseUrl = None,
    since: Annotated[str, typer.Option("--since", help="Stories first seen within this long (30m, 24h, 7d).")] = "24h",
    limit: Limit = None,
    as_json: Json = False,
) -> None:
    """Recent stories with their items and outlets, newest first."""
    from monitor import listings
    from monitor.config.units import parse_duration

    with _user_errors():
        try:
            window = parse_duration(since)
        except ValueError as e:
            raise MonitorError(f"--since: {e}") from e
        listings.show_stories(db, window, limit, as_json)


@app.command()
def stats(
    config_dir: ConfigDir = Path("config"),
    db: DatabaseUrl = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3660, help="Today and the days before it (UTC).")] = 7,
    limit: Limit = None,
    as_json: Json = False,
) -> None:
    """Per day: items per feed, alerts per rule, deliveries sent, failed and dead per channel; feeds failing now."""
    from monitor import listings

    with _user_errors():
        listings.show_stats(db, days, limit, as_json)


@app.command()
def backtest(
    config_dir: ConfigDir = Path("config"),
    db: DatabaseUrl = None,
    since: Annotated[str, typer.Option("--since", help="Replay the items stored within this long (24h, 7d).")] = "7d",
    against: Annotated[
        Path | None,
        typer.Option("--against", help="The reference config dir (default: the watch list the service last loaded)."),
    ] = None,
    limit: Limit = None,
    as_json: Json = False,
) -> None:
    """Replay stored items through --config-dir's watch list and the reference; show gained, lost and changed
    stories. Nothing is stored or sent."""
    from monitor import backtest as replay
    from monitor.config.units import parse_duration

    with _user_errors():
        try:
            window = parse_duration(since)
        except ValueError as e:
            raise MonitorError(f"--since: {e}") from e
        replay.run(config_dir, db, window, against, limit, as_json)


@app.command()
def draw(
    article: Annotated[str, typer.Argument(help="The article: a text or HTML file, or an http(s) URL.")],
    config_dir: ConfigDir = Path("config"),
    name: Annotated[
        str | None, typer.Option("--name", help="Prefix of the rule ids (default: the first entity's id).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The proposal as one JSON object.")] = False,
) -> None:
    """Draw entities, key phrases and starter rules from an article; print a keywords.toml."""
    if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise typer.BadParameter("--name: lowercase letters, digits, - and _ only")
    from monitor.draw import run as draw_run

    with _user_errors():
        typer.echo(draw_run(article, config_dir, name, as_json), nl=False)


@app.command("notify-test")
def notify_test(
    channel: Annotated[str | None, typer.Argument(help="Only this channel id.")] = None,
    config_dir: ConfigDir = Path("config"),
) -> None:
    """Send a test message through each channel (or one); exit 1 if any send fails."""
    from monitor import runner

    with _user_errors():
        if not runner.notify_test(config_dir, channel):
            raise typer.Exit(1)


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(config_dir: ConfigDir = Path("config"), db: DatabaseUrl = None) -> None:
    """Apply database migrations (`monitor run` also does this when it starts)."""
    from monitor import runner

    with _user_errors():
        typer.echo(runner.upgrade_database(db))


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    app(args=argv)
