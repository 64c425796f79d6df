"""The schema of the three config files: strict pydantic models (unknown keys are errors).

These check what can be checked key by key. Checks that need the whole config (references between rules,
groups and channels; query syntax; environment variables; Apprise URLs) are in `loader`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from monitor.config.units import parse_duration, parse_size
from monitor.pipeline.stories import DEFAULT_POLICY
from monitor.records import Priority


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


def _size(value: object) -> object:
    return parse_size(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size), Field(gt=0)]
GroupId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$")]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
ChannelId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# keywords.toml


class Source(Strict):
    title: str | None = None
    file: str | None = None


class Entity(Strict):
    kind: Literal["place", "person", "org", "group", "event", "other"]
    names: Annotated[list[NonEmpty], Field(min_length=1)]


class TermGroup(Strict):
    words: Annotated[list[NonEmpty], Field(min_length=1)]


class Rule(Strict):
    id: RuleId
    query: NonEmpty
    priority: Priority = "normal"
    notify: list[str] | None = None


class Stories(Strict):
    window: Duration = DEFAULT_POLICY.window
    spread_alert: Annotated[int, Field(ge=2)] | None = None


class KeywordsFile(Strict):
    schema_: Literal[1] = Field(1, alias="schema")
    source: Source | None = None
    stories: Stories = Stories()
    entities: dict[GroupId, Entity] = {}
    terms: dict[GroupId, TermGroup] = {}
    rules: list[Rule] = []


# feeds.toml


class FeedDefaults(Strict):
    interval: Duration = timedelta(minutes=10)
    backfill: Duration = timedelta(hours=24)
    retention: Duration = timedelta(days=90)


class FetchSettings(Strict):
    timeout: Duration = timedelta(seconds=20)
    max_bytes: Size = 15_000_000
    user_agent: NonEmpty | None = None
    allow_private_addresses: bool = False


class Feed(Strict):
    url: NonEmpty
    name: NonEmpty | None = None
    interval: Duration | None = None


class FeedsFile(Strict):
    defaults: FeedDefaults = FeedDefaults()
    fetch: FetchSettings = FetchSettings()
    feeds: list[Feed] = []


# channels.toml


class Channel(Strict):
    urls: Annotated[list[NonEmpty], Field(min_length=1)]
    mode: Literal["instant", "digest"] = "instant"
    schedule: NonEmpty | None = None
    timezone: NonEmpty = "UTC"
    max_per_hour: Annotated[int, Field(gt=0)] | None = None


class ChannelsFile(Strict):
    channels: dict[ChannelId, Channel] = {}
