"""The database's clock, for every instance: due times, leases and their expiry are the database's time.

Several instances on one PostgreSQL decide who polls and sends by comparing times they wrote (a feed's next
poll, a lease's expiry). If each used its own clock, an instance ten minutes ahead would take feeds early and
treat live leases as expired. So each instance reads the database's clock (`clock_timestamp()`) when it
starts and once a minute, and tells time as its own monotonic clock plus the difference: no query per
decision, and a skewed or jumping system clock changes nothing. SQLite has no server and one instance: there,
the system clock is the database's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

REFRESH = 60.0
"""Seconds between readings of the database's clock."""


class DatabaseClock:
    """`clock()` is the database's time now, to within the round trip of the last reading."""

    def __init__(self, read: Callable[[], datetime | None], system: Callable[[], datetime] = lambda: datetime.now(UTC)):
        """`read` returns the database's time (None: it has no clock of its own, use `system`)."""
        self._read = read
        self._system = system
        self._anchor: tuple[float, datetime] | None = None
        self._last = -REFRESH

    def __call__(self) -> datetime:
        if self._anchor is None:
            return self._system()
        at, moment = self._anchor
        return moment + timedelta(seconds=time.monotonic() - at)

    def due(self) -> bool:
        return time.monotonic() - self._last >= REFRESH

    def sync(self) -> None:
        """Read the database's clock (blocking: call it from the database thread)."""
        before = time.monotonic()
        moment = self._read()
        after = time.monotonic()
        self._last = after
        if moment is None:
            self._anchor = None
            return
        self._anchor = ((before + after) / 2, moment)  # the reading stands mid-way through its round trip
