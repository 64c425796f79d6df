"""Loads and checks the config directory; every problem in every file is reported at once, with file:line.

    keywords.toml ─┐
    feeds.toml ────┼─► read_toml (syntax, lines) ─► pydantic (keys, types) ─► cross-checks ─► Config
    channels.toml ─┘                                                (refs, queries, env, Apprise, cron)

A command asks only for the files it needs (`match` reads keywords.toml alone). Nothing is applied unless
everything is valid.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from monitor import USER_AGENT
from monitor.config.models import ChannelsFile, FeedsFile, KeywordsFile
from monitor.config.toml import Loc, TomlFile, read_toml
from monitor.config.units import format_duration
from monitor.errors import ConfigError, ConfigProblem, QuerySyntaxError
from monitor.pipeline.match import RuleSpec
from monitor.pipeline.query import check_term, parse, refs
from monitor.pipeline.stories import DEFAULT_POLICY, StoryPolicy

MIN_INTERVAL = timedelta(seconds=30)
MIN_RETENTION = timedelta(days=30)
MIN_STORY_WINDOW, MAX_STORY_WINDOW = timedelta(hours=1), timedelta(days=30)
MAX_INTERVAL = timedelta(days=1)
CONSOLE = "console"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FEED_SCHEMES = ("http", "https", "file")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class WatchList:
    """keywords.toml, checked: groups by id, rules parsed, in file order."""

    source_title: str | None
    source_file: Path | None
    entities: Mapping[str, tuple[str, tuple[str, ...]]]
    """Entity id → (kind, names); the first name is the display name."""
    terms: Mapping[str, tuple[str, ...]]
    """Term-group id → words."""
    rules: tuple[RuleSpec, ...]
    notify: Mapping[str, tuple[str, ...] | None]
    """Rule id → channel ids it alerts, or None for every channel."""
    stories: StoryPolicy = DEFAULT_POLICY
    """`[stories]`: the window an item joins a story within, and the spread follow-up."""
    text: str = field(default="", compare=False, repr=False)
    """keywords.toml as it was read: what the service stores of the watch list it loaded."""

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every @-referable id with its names or words."""
        return {**{k: names for k, (_, names) in self.entities.items()}, **self.terms}


@dataclass(frozen=True)
class FeedSpec:
    """One feed to poll."""

    url: str
    """http(s):// or file:// URL, environment references expanded: what is fetched. May hold a secret."""
    name: str | None
    interval: timedelta
    stored: str | None = None
    """The URL as the database keeps it, when it differs from `url`: `${VAR}`s unexpanded, a literal password
    masked, so no secret reaches the database."""

    @property
    def key(self) -> str:
        """The feed's identity in the database (its `config_url`)."""
        return self.stored or self.url


@dataclass(frozen=True)
class FeedsConfig:
    feeds: tuple[FeedSpec, ...]
    backfill: timedelta
    timeout: timedelta
    max_bytes: int
    user_agent: str
    allow_private_addresses: bool
    retention: timedelta = timedelta(days=90)
    """Items' text, their matches and alerts older than this are removed; every item's key stays."""


@dataclass(frozen=True)
class ChannelSpec:
    """One alert channel. `targets` hold secrets: never log them, log `masked`."""

    id: str
    targets: tuple[str, ...] = field(repr=False)
    masked: tuple[str, ...]
    mode: str = "instant"
    schedule: str | None = None
    timezone: str = "UTC"
    max_per_hour: int | None = None
    keys: tuple[str, ...] = ()
    """Each target's stable key (`target_key`), in the order of `targets`."""

    def target(self, key: str) -> int | None:
        """The position of the target with this key now, or None when it left the list. A bare number is a
        position (deliveries stored before keys)."""
        if key in self.keys:
            return self.keys.index(key)
        if key.isdigit() and int(key) < len(self.targets):
            return int(key)
        return None


def target_key(written: str) -> str:
    """A target's identity in the outbox: a digest of its URL as written in channels.toml, `${VAR}`s
    unexpanded, so it survives the list's edits around it and a rotated secret, and stores no secret."""
    return "t" + hashlib.sha256(written.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Config:
    directory: Path
    watchlist: WatchList | None
    feeds: FeedsConfig | None
    channels: tuple[ChannelSpec, ...] | None
    warnings: tuple[str, ...] = ()
    """What the operator should fix that does not stop the service (a file others can read holding secrets)."""


def load_config(
    directory: Path,
    *,
    keywords: bool = True,
    feeds: bool = True,
    channels: bool = True,
    env: Mapping[str, str] | None = None,
    sources: bool = True,
) -> Config:
    """Read and check the parts of the config directory asked for; ConfigError lists every problem.
    `sources=False` does not ask for the article `[source] file` names (a stored watch list has none)."""
    import os

    environment = os.environ if env is None else env
    problems: list[ConfigProblem] = []
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(str(directory), None, "config directory not found")])
    literal: dict[str, str] = {}
    watchlist = _load_keywords(directory, problems, sources) if keywords else None
    feeds_config = _load_feeds(directory, environment, problems, literal) if feeds else None
    channel_specs = _load_channels(directory, environment, problems, literal) if channels else None
    if watchlist is not None and channel_specs is not None:
        _check_notify(directory, watchlist, channel_specs, problems)
    if problems:
        raise ConfigError(problems)
    return Config(directory, watchlist, feeds_config, channel_specs, _exposed(directory, literal))


def _exposed(directory: Path, literal: Mapping[str, str]) -> tuple[str, ...]:
    """A warning for each config file that holds a secret written out and that others may read."""
    warnings = []
    for name, what in literal.items():
        path = directory / name
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            warnings.append(
                f"{path}: readable by others (mode {mode:o}) and {what} written out: chmod 600 it, or move the "
                "secrets into the environment (${VAR})"
            )
    return tuple(warnings)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(doc: TomlFile, model: type[M], problems: list[ConfigProblem]) -> M | None:
    try:
        return model.model_validate(doc.data)
    except ValidationError as e:
        for error in e.errors():
            loc = tuple(error["loc"])
            problems.append(doc.problem(loc, _message(loc, error)))
        return None


def _message(loc: Loc, error: Mapping[str, Any]) -> str:
    kind = error["type"]
    where = _dotted(loc)
    if kind == "extra_forbidden":
        return f"unknown key {where!r}: remove it or check its spelling"
    if kind == "missing":
        return f"missing required key {where!r}"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"{where}: {error['input']!r} is not a valid id (allowed: {pattern.strip('^$')})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def _read(path: Path, problems: list[ConfigProblem], required: bool) -> TomlFile | None:
    if not required and not path.exists():
        return None
    doc = read_toml(path)
    if isinstance(doc, ConfigProblem):
        problems.append(doc)
        return None
    return doc


def _load_keywords(directory: Path, problems: list[ConfigProblem], sources: bool = True) -> WatchList | None:
    doc = _read(directory / "keywords.toml", problems, required=True)
    if doc is None:
        return None
    model = _validate(doc, KeywordsFile, problems)
    if model is None:
        return None
    before = len(problems)
    for gid in model.entities.keys() & model.terms.keys():
        problems.append(
            doc.problem(("terms", gid), f"terms.{gid}: id {gid!r} is also an entity id; @{gid} would be ambiguous")
        )
    for kind, groups, key in (("entities", model.entities, "names"), ("terms", model.terms, "words")):
        for gid, group in groups.items():
            for index, name in enumerate(getattr(group, key)):
                try:
                    check_term(name, 1)
                except QuerySyntaxError as e:
                    problems.append(doc.problem((kind, gid, key, index), f"{kind}.{gid}.{key}[{index}]: {e.reason}"))
    known = model.entities.keys() | model.terms.keys()
    seen: set[str] = set()
    specs: list[RuleSpec] = []
    for index, rule in enumerate(model.rules):
        if rule.id in seen:
            problems.append(doc.problem(("rules", index, "id"), f"rules[{index}].id: duplicate rule id {rule.id!r}"))
        seen.add(rule.id)
        try:
            tree = parse(rule.query)
        except QuerySyntaxError as e:
            problems.append(doc.problem(("rules", index, "query"), f"rules[{index}].query ({rule.id}): {e}"))
            continue
        for ref in refs(tree):
            if ref.id not in known:
                problems.append(
                    doc.problem(
                        ("rules", index, "query"),
                        f"rules[{index}].query ({rule.id}): unknown reference @{ref.id}"
                        " (no entity or term group has that id)",
                    )
                )
        specs.append(RuleSpec(rule.id, rule.priority, tree))
    source_file = None
    if model.source is not None and model.source.file is not None:
        source_file = directory / model.source.file
        if sources and not source_file.is_file():
            problems.append(
                doc.problem(("source", "file"), f"source.file: {model.source.file!r} not found next to keywords.toml")
            )
    window = model.stories.window
    if not MIN_STORY_WINDOW <= window <= MAX_STORY_WINDOW:
        problems.append(
            doc.problem(("stories", "window"), f"stories.window: {format_duration(window)} is outside 1h..30d")
        )
    if len(problems) > before:
        return None
    return WatchList(
        source_title=model.source.title if model.source else None,
        source_file=source_file,
        entities={k: (e.kind, tuple(e.names)) for k, e in model.entities.items()},
        terms={k: tuple(t.words) for k, t in model.terms.items()},
        rules=tuple(specs),
        notify={r.id: tuple(r.notify) if r.notify is not None else None for r in model.rules},
        stories=StoryPolicy(window, model.stories.spread_alert),
        text=doc.source,
    )


def _expand(value: str, env: Mapping[str, str], doc: TomlFile, loc: Loc, problems: list[ConfigProblem]) -> str | None:
    """`value` with each ${VAR} replaced from the environment; a missing variable is named, never a value."""
    missing = [name for name in _ENV_REF.findall(value) if name not in env]
    for name in dict.fromkeys(missing):
        problems.append(doc.problem(loc, f"{_dotted(loc)}: environment variable {name} is not set"))
    if missing:
        return None
    return _ENV_REF.sub(lambda m: env[m.group(1)], value)


def _load_feeds(
    directory: Path, env: Mapping[str, str], problems: list[ConfigProblem], literal: dict[str, str]
) -> FeedsConfig | None:
    doc = _read(directory / "feeds.toml", problems, required=False)
    if doc is None:
        # No feeds.toml: nothing to poll, every setting at its documented default.
        return None if (directory / "feeds.toml").exists() else _feeds_config(FeedsFile(), ())
    model = _validate(doc, FeedsFile, problems)
    if model is None:
        return None
    before = len(problems)
    default_interval = model.defaults.interval
    for key, value in (("interval", default_interval),):
        if not MIN_INTERVAL <= value <= MAX_INTERVAL:
            problems.append(
                doc.problem(("defaults", key), f"defaults.{key}: {format_duration(value)} is outside 30s..1d")
            )
    if model.defaults.backfill < timedelta(0):
        problems.append(doc.problem(("defaults", "backfill"), "defaults.backfill: must not be negative"))
    if model.defaults.retention < MIN_RETENTION:
        problems.append(
            doc.problem(
                ("defaults", "retention"),
                f"defaults.retention: {format_duration(model.defaults.retention)} is under 30d (stories, backfill and "
                "backtests look back that far)",
            )
        )
    if model.fetch.timeout <= timedelta(0):
        problems.append(doc.problem(("fetch", "timeout"), "fetch.timeout: must be more than 0s"))
    specs: list[FeedSpec] = []
    seen: dict[str, int] = {}
    for index, feed in enumerate(model.feeds):
        loc: Loc = ("feeds", index, "url")
        url = _expand(feed.url, env, doc, loc, problems)
        if url is None:
            continue
        url = _feed_url(url, directory, doc, loc, problems)
        if url is None:
            continue
        if url in seen:
            problems.append(doc.problem(loc, f"feeds[{index}].url: the same feed as feeds[{seen[url]}]"))
        seen.setdefault(url, index)
        interval = feed.interval or default_interval
        if feed.interval is not None and not MIN_INTERVAL <= feed.interval <= MAX_INTERVAL:
            problems.append(
                doc.problem(
                    ("feeds", index, "interval"),
                    f"feeds[{index}].interval: {format_duration(feed.interval)} is outside 30s..1d",
                )
            )
        stored = _stored_url(feed.url, url)
        if stored is not None and "${" not in feed.url:
            literal["feeds.toml"] = "holds a feed password"
        specs.append(FeedSpec(url, feed.name, interval, stored))
    if len(problems) > before:
        return None
    return _feeds_config(model, specs)


def _stored_url(written: str, url: str) -> str | None:
    """What the database keeps of a feed's URL (None: the URL itself): the URL as written when it refers to
    the environment (a token, a password), else the URL with any literal password masked."""
    if "${" in written and url.startswith(("http://", "https://")):
        return written
    parts = urlsplit(url)
    if parts.password is None:
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _feeds_config(model: FeedsFile, specs: Sequence[FeedSpec]) -> FeedsConfig:
    fetch = model.fetch
    return FeedsConfig(
        tuple(specs), model.defaults.backfill, fetch.timeout, fetch.max_bytes,
        fetch.user_agent or USER_AGENT, fetch.allow_private_addresses, model.defaults.retention,
    )  # fmt: skip


def _feed_url(url: str, directory: Path, doc: TomlFile, loc: Loc, problems: list[ConfigProblem]) -> str | None:
    """An http(s) or file URL; a plain path is taken relative to the config directory."""
    if "://" not in url:
        if ":" in url.split("/")[0] and not Path(url).is_absolute():
            problems.append(
                doc.problem(loc, f"{_dotted(loc)}: {url.split(':')[0]}: URLs are not feeds; use http(s):// or file://")
            )
            return None
        return (directory / url).resolve().as_uri()
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _FEED_SCHEMES:
        problems.append(
            doc.problem(loc, f"{_dotted(loc)}: {scheme}:// is not a feed URL scheme; use http(s):// or file://")
        )
        return None
    return url


def _load_channels(
    directory: Path, env: Mapping[str, str], problems: list[ConfigProblem], literal: dict[str, str]
) -> tuple[ChannelSpec, ...] | None:
    from monitor.notify import check_url, mask_url
    from monitor.scheduler import cron_problem

    doc = _read(directory / "channels.toml", problems, required=False)
    if doc is None:
        if (directory / "channels.toml").exists():
            return None
        return (ChannelSpec(CONSOLE, (), ("console",)),)
    model = _validate(doc, ChannelsFile, problems)
    if model is None:
        return None
    before = len(problems)
    specs: list[ChannelSpec] = []
    for cid, channel in model.channels.items():
        targets: list[str] = []
        keys: list[str] = []
        for index, raw in enumerate(channel.urls):
            loc: Loc = ("channels", cid, "urls", index)
            if raw in channel.urls[:index]:
                first = channel.urls.index(raw)
                problems.append(doc.problem(loc, f"{_dotted(loc)}: the same target as urls[{first}]; list it once"))
                continue
            url = _expand(raw, env, doc, loc, problems)
            if url is None:
                continue
            reason = check_url(url)
            if reason is not None:
                problems.append(doc.problem(loc, f"{_dotted(loc)}: {reason}"))
                continue
            targets.append(url)
            keys.append(target_key(raw))
            if "${" not in raw and (urlsplit(url).password or urlsplit(url).path.strip("/") or urlsplit(url).query):
                literal["channels.toml"] = "holds target URLs (tokens, webhook paths, passwords)"
        timezone_ok = True
        try:
            ZoneInfo(channel.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            timezone_ok = False
            problems.append(
                doc.problem(
                    ("channels", cid, "timezone"),
                    f'channels.{cid}.timezone: unknown time zone {channel.timezone!r} (e.g. "Asia/Baku", "UTC")',
                )
            )
        if channel.mode == "digest" and channel.schedule is None:
            problems.append(
                doc.problem(
                    ("channels", cid, "mode"),
                    f'channels.{cid}: a digest channel needs a schedule (cron, e.g. "0 8,13,18 * * *")',
                )
            )
        if channel.mode == "instant" and channel.schedule is not None:
            problems.append(
                doc.problem(
                    ("channels", cid, "schedule"),
                    f'channels.{cid}.schedule: only a digest channel has a schedule; set mode = "digest" or remove it',
                )
            )
        if channel.schedule is not None and timezone_ok:
            reason = cron_problem(channel.schedule, channel.timezone)
            if reason is not None:
                problems.append(doc.problem(("channels", cid, "schedule"), f"channels.{cid}.schedule: {reason}"))
        specs.append(
            ChannelSpec(
                cid,
                tuple(targets),
                tuple(mask_url(t) for t in targets),
                channel.mode,
                channel.schedule,
                channel.timezone,
                channel.max_per_hour,
                tuple(keys),
            )
        )
    if not specs:
        problems.append(
            doc.problem(
                ("channels",),
                "no channels defined: add a [channels.<id>] table, or delete the file to print alerts to the console",
            )
        )
    if len(problems) > before:
        return None
    return tuple(specs)


def _check_notify(
    directory: Path, watchlist: WatchList, channels: Iterable[ChannelSpec], problems: list[ConfigProblem]
) -> None:
    known = {c.id for c in channels}
    doc = read_toml(directory / "keywords.toml")
    assert isinstance(doc, TomlFile)
    for index, (rule_id, notify) in enumerate(watchlist.notify.items()):
        for position, cid in enumerate(notify or ()):
            if cid not in known:
                problems.append(
                    doc.problem(
                        ("rules", index, "notify", position),
                        f"rules[{index}].notify ({rule_id}): unknown channel {cid!r}"
                        f" (channels: {', '.join(sorted(known))})",
                    )
                )
