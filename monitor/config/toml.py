"""Reading a TOML file with the line of every key, so each config error can say `file:line`.

tomllib gives values but no positions, and no maintained TOML library exposes key positions (tomlkit keeps
layout, not line numbers). So after tomllib has accepted a file, a small scanner walks the same text and
records the line where each key, table and array element starts. It only ever sees valid TOML.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from monitor.errors import ConfigProblem

Loc = tuple[str | int, ...]

_TOKEN = re.compile(
    r'''(?P<nl>\n)|(?P<ws>[ \t\r]+)|(?P<comment>\#[^\n]*)
    |(?P<mlstring>"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^']|'(?!''))*\'\'\')
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'[^'\n]*')
    |(?P<punct>\[\[|\]\]|[\[\]{}=,])|(?P<bare>[^\s\[\]{}=,\#"']+)''',
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int


def _lex(source: str) -> Iterator[_Tok]:
    line = 1
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or ""
        text = match.group()
        if kind not in ("ws", "comment"):
            yield _Tok(kind, text, line)
        line += text.count("\n")
    yield _Tok("end", "", line)


def _key_part(tok: _Tok) -> list[str]:
    if tok.kind == "string":
        return [tomllib.loads(f"k = {tok.text}")["k"]]
    return [part for part in tok.text.split(".") if part]


class _Scanner:
    def __init__(self, source: str) -> None:
        self.toks = list(_lex(source))
        self.at = 0
        self.lines: dict[Loc, int] = {}
        self.counts: dict[Loc, int] = {}

    def peek(self) -> _Tok:
        return self.toks[self.at]

    def take(self) -> _Tok:
        tok = self.toks[self.at]
        self.at += 1
        return tok

    def record(self, loc: Loc, line: int) -> None:
        self.lines.setdefault(loc, line)

    def key(self, closer: str) -> tuple[list[str], int]:
        parts: list[str] = []
        line = self.peek().line
        while self.peek().kind in ("bare", "string"):
            parts.extend(_key_part(self.take()))
        if self.peek().text == closer:
            self.take()
        return parts, line

    def scan(self) -> dict[Loc, int]:
        table: Loc = ()
        while self.peek().kind != "end":
            tok = self.peek()
            if tok.kind == "nl":
                self.take()
            elif tok.text == "[[":
                self.take()
                parts, line = self.key("]]")
                path: Loc = tuple(parts)
                index = self.counts.get(path, 0)
                self.counts[path] = index + 1
                table = (*path, index)
                self.record(path, line)
                self.record(table, line)
            elif tok.text == "[":
                self.take()
                parts, line = self.key("]")
                table = tuple(parts)
                self.record(table, line)
            elif tok.kind in ("bare", "string"):
                self.pair(table)
            else:
                self.take()
        return self.lines

    def pair(self, table: Loc) -> None:
        parts, line = self.key("=")
        loc = (*table, *parts)
        self.record(loc, line)
        self.value(loc)

    def value(self, loc: Loc) -> None:
        tok = self.take()
        if tok.text == "[":
            index = 0
            while True:
                while self.peek().kind == "nl":
                    self.take()
                nxt = self.peek()
                if nxt.text == "]" or nxt.kind == "end":
                    self.take()
                    return
                if nxt.text == ",":
                    self.take()
                    continue
                self.record((*loc, index), nxt.line)
                self.value((*loc, index))
                index += 1
        elif tok.text == "{":
            while self.peek().text != "}" and self.peek().kind != "end":
                if self.peek().text == ",":
                    self.take()
                else:
                    self.pair(loc)
            self.take()


@dataclass(frozen=True)
class TomlFile:
    """A parsed TOML file and where each of its keys stands."""

    path: Path
    data: dict[str, Any]
    source: str = field(repr=False)

    @cached_property
    def lines(self) -> dict[Loc, int]:
        """Each key's line, found on the first problem to report: a file without one is never scanned
        (scanning a 2,000-feed feeds.toml took longer than parsing it)."""
        return _Scanner(self.source.replace("\r\n", "\n")).scan()

    def line(self, loc: Loc) -> int:
        """Line of the key at `loc`, else of its nearest enclosing key or table, else 1."""
        for end in range(len(loc), 0, -1):
            found = self.lines.get(loc[:end])
            if found is not None:
                return found
        return 1

    def problem(self, loc: Loc, message: str) -> ConfigProblem:
        return ConfigProblem(str(self.path), self.line(loc), message)


def read_toml(path: Path) -> TomlFile | ConfigProblem:
    """The file parsed, or the one problem that stops it being read (missing, unreadable, bad TOML)."""
    try:
        source = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return ConfigProblem(str(path), None, "file not found")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        return ConfigProblem(str(path), line, "not valid UTF-8: save the file as UTF-8")
    except OSError as e:
        return ConfigProblem(str(path), None, f"cannot read: {e.strerror}")
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        return _syntax_problem(path, str(e))
    return TomlFile(path, data, source)


_AT = re.compile(r"^(?P<msg>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_AT_END = re.compile(r"^(?P<msg>.*?) \(at end of document\)$")


def _syntax_problem(path: Path, error: str) -> ConfigProblem:
    match = _AT.match(error)
    if match:
        line, column = int(match["line"]), int(match["col"])
        return ConfigProblem(str(path), line, f"invalid TOML: {match['msg']}", column)
    end = _AT_END.match(error)
    if end:
        lines = path.read_text(encoding="utf-8", errors="replace").rstrip("\n").count("\n") + 1
        return ConfigProblem(str(path), lines, f"invalid TOML: {end['msg']} at end of file")
    return ConfigProblem(str(path), None, f"invalid TOML: {error}")
