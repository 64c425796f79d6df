"""Log output for the entry points: one line per event, fixed keys appended as key=value.

Only entry points (the CLI) call `setup`; modules just use `logging.getLogger("monitor.<module>")` and pass
`extra={"feed": …, "item": …, "story": …, "rule": …, "channel": …, "status": …}`. No secret is ever put in
a log record: feed URLs are masked by `fetch`, channel URLs are logged only in their masked form.
"""

from __future__ import annotations

import logging
import time

KEYS = ("feed", "item", "story", "rule", "channel", "status")


class KeyValueFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)sZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [f"{key}={_quote(getattr(record, key))}" for key in KEYS if getattr(record, key, None) is not None]
        return " ".join([line, *pairs]) if pairs else line


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if " " in text or not text else text


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Apprise's warnings reach each send's result, captured on its own logger (so its level must let them
    # through: at ERROR, every failure read "no reason given"), and are logged once from there, scrubbed;
    # its own lines are kept out of the service's log.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    handler.addFilter(lambda record: not record.name.startswith("apprise"))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
