"""The watch list on its own: check the config, build the matcher, try it on a document.

What `monitor check` and `monitor match` need, and nothing more: no database, no HTTP client, no Apprise,
so those commands start as fast as reading the config and compiling the matcher allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.config import WatchList, load_config
from monitor.pipeline.match import Matcher
from monitor.records import Document, RuleMatch


def build_matcher(watchlist: WatchList) -> Matcher:
    """The compiled matcher for a checked watch list."""
    return Matcher(watchlist.groups, watchlist.rules, entity_ids=watchlist.entities.keys())


@dataclass(frozen=True)
class CheckReport:
    feeds: int
    entities: int
    term_groups: int
    rules: int
    channels: int
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (
            f"ok: {self.feeds} feeds, {self.entities} entities, {self.term_groups} term groups, "
            f"{self.rules} rules, {self.channels} channels"
        )


def check(config_dir: Path) -> CheckReport:
    """Validate every config file; ConfigError lists each problem."""
    config = load_config(config_dir)
    assert config.watchlist is not None and config.feeds is not None and config.channels is not None
    build_matcher(config.watchlist)
    return CheckReport(
        warnings=config.warnings,
        feeds=len(config.feeds.feeds),
        entities=len(config.watchlist.entities),
        term_groups=len(config.watchlist.terms),
        rules=len(config.watchlist.rules),
        channels=len(config.channels),
    )


def load_matcher(config_dir: Path) -> Matcher:
    """The matcher of the config directory, reading keywords.toml alone."""
    config = load_config(config_dir, feeds=False, channels=False)
    assert config.watchlist is not None
    return build_matcher(config.watchlist)


def match_document(matcher: Matcher, document: Document) -> tuple[RuleMatch, ...]:
    """Rules that fire on one document; nothing is stored or sent."""
    return matcher.match(document)
