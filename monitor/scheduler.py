"""APScheduler wiring, and the only module that imports apscheduler."""

from __future__ import annotations


def cron_problem(expression: str, timezone: str) -> str | None:
    """None when `expression` is a valid five-field crontab line in `timezone`, else why not."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as e:
        return f"schedule {expression!r} is not a valid cron line (minute hour day month weekday): {e}"
    return None
