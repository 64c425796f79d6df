"""One exception tree for everything monitor raises on purpose.

    MonitorError                 a problem the user can act on; the CLI prints it on one line
    ├── ConfigError              config files are wrong; carries every problem found, each with file:line
    ├── QuerySyntaxError         a rule's query does not parse; carries the column
    └── InputError               an item given to `monitor match` is not what the format says

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """A problem the user can fix; its message is one line that says what and where."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in one config file."""

    path: str
    """The file, as the user named it (relative to where they ran the command when possible)."""
    line: int | None
    """1-based line of the offending key, or None when the file as a whole is at fault."""
    message: str
    """What is wrong, naming the key or reference, and what to do."""
    column: int | None = None
    """1-based column, when the TOML parser gave one."""

    def __str__(self) -> str:
        place = self.path
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        return f"{place}: {self.message}"


class ConfigError(MonitorError):
    """The config cannot be used; every problem found is listed, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class QuerySyntaxError(MonitorError):
    """A query does not parse; `column` is 1-based within the query text."""

    def __init__(self, message: str, column: int) -> None:
        self.column = column
        self.reason = message
        super().__init__(f"column {column}: {message}")


class InputError(MonitorError):
    """An item handed to `monitor match` is malformed; the message names the line."""
