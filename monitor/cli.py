"""The `monitor` command line: thin Typer commands over `service`. Exit 0 ok, 1 user error, 2 usage error."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from monitor import service
from monitor.errors import ConfigError, InputError, MonitorError
from monitor.items import read_item, read_items, result_line

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
    with _user_errors():
        typer.echo(str(service.check(config_dir)))


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
    with _user_errors():
        matcher = service.load_matcher(config_dir)
        if text is not None:
            item = read_item(_json_text(text), "--text")
            typer.echo(result_line(item.id, service.match_document(matcher, item.document)))
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
                out.write(result_line(entry.id, service.match_document(matcher, entry.document)) + "\n")
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    app(args=argv)
