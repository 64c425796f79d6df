"""Durations (`30s`, `10m`, `1h30m`, `1d`) and sizes (`15MB`, `10MiB`) as operators write them. Pure."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_duration(text: str) -> timedelta:
    """`"1h30m"` → 90 minutes; ValueError with an example of the format otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f'{text!r} is not a duration: write e.g. "30s", "10m", "1h30m", "1d"')
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_size(text: str) -> int:
    """`"15MB"` → 15,000,000 bytes; ValueError otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'{text!r} is not a size: write e.g. "15MB", "512KiB"')
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def format_duration(value: timedelta) -> str:
    """The shortest `1d2h3m4s` spelling of `value`."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
