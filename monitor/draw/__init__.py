"""`monitor draw ARTICLE`: a first watch list from any article (DESIGN.md §4).

article (file or URL) ─► main text ─► entities (entities.py) ─► names in other languages (places.py)
─► key phrases and starter rules (propose.py) ─► keywords.toml or JSON
"""

from __future__ import annotations

import json
from pathlib import Path


def run(article: str, config_dir: Path, name: str | None, as_json: bool) -> str:
    """What `monitor draw` prints: the proposal as keywords.toml, or as JSON. A URL is fetched with the
    limits of `config_dir`'s feeds.toml [fetch] when there is one (the service's own), else the defaults."""
    from monitor.draw.article import read_article
    from monitor.draw.propose import propose, to_toml
    from monitor.policy import FetchPolicy

    policy = FetchPolicy()
    if (config_dir / "feeds.toml").is_file():
        from monitor.config import load_config
        from monitor.service import fetch_policy

        feeds = load_config(config_dir, keywords=False, channels=False).feeds
        assert feeds is not None
        policy = fetch_policy(feeds)
    proposal = propose(read_article(article, policy), name)
    if as_json:
        return json.dumps(proposal.to_json(), ensure_ascii=False, indent=2) + "\n"
    return to_toml(proposal)
