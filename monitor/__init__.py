"""monitor: a media-monitoring alert service for a news desk."""

__version__ = "0.1.0"

USER_AGENT = f"monitor/{__version__} (+https://github.com/monitor-news/monitor)"
"""What monitor calls itself to the feeds it polls, unless feeds.toml says otherwise."""
