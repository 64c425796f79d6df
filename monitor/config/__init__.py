"""Config: the three TOML files, validated once, into plain records. See `loader.load_config`."""

from monitor.config.loader import ChannelSpec, Config, FeedsConfig, FeedSpec, WatchList, load_config

__all__ = ["ChannelSpec", "Config", "FeedSpec", "FeedsConfig", "WatchList", "load_config"]
