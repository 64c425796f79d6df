"""monitor: a media-monitoring alert service for a news desk."""

__version__ = "0.1.0"
