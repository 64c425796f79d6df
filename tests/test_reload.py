"""Config edits while running: only a complete, valid config is applied; a bad one leaves the running one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from monitor.runner import ConfigWatcher
from tests.conftest import MINIMAL_KEYWORDS, WriteConfig


def settle(path: Path) -> None:
    """Date the file two seconds back, as if the editor finished writing it then."""
    past = time.time() - 2
    os.utime(path, (past, past))


def test_edits_are_debounced_validated_and_applied(write_config: WriteConfig) -> None:
    directory = write_config()
    settle(directory / "keywords.toml")
    watcher = ConfigWatcher(directory)
    assert watcher.changed() is None  # nothing edited

    keywords = directory / "keywords.toml"
    # Half-written: the file was just touched, so it is not read yet.
    keywords.write_text(MINIMAL_KEYWORDS.replace('priority = "urgent"', 'priority = "urg'))
    assert watcher.changed() is None and watcher.failures == 0

    # Settled but invalid: rejected, counted, and the running config stays.
    settle(keywords)
    assert watcher.changed() is None and watcher.failures == 1

    # Fixed: applied, with the new rule.
    keywords.write_text(MINIMAL_KEYWORDS + '\n[[rules]]\nid = "new-rule"\nquery = "Lachin"\n')
    settle(keywords)
    config = watcher.changed()
    assert config is not None and config.watchlist is not None
    assert [r.id for r in config.watchlist.rules] == ["karabakh-escalation", "new-rule"]
    assert watcher.changed() is None  # applied once


def test_a_new_file_counts_as_an_edit(write_config: WriteConfig) -> None:
    directory = write_config()
    settle(directory / "keywords.toml")
    watcher = ConfigWatcher(directory)
    channels = directory / "channels.toml"
    channels.write_text('[channels.desk]\nurls = ["json://127.0.0.1:9/hook"]\n')
    settle(channels)
    config = watcher.changed()
    assert config is not None and config.channels is not None
    assert [c.id for c in config.channels] == ["desk"]
