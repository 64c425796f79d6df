"""What a fetch may do, and how a feed URL is shown: the parts of the fetch edge that the service's own
process needs. With pollers, that process never fetches, so it does not load the HTTP client (~9 MB)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta

from monitor import USER_AGENT

_SECRET_PARAM = re.compile(
    r"([?&;][^=&#\s]*(?:token|key|secret|passw|pwd|auth|sig|session|credential)[^=&#\s]*=)[^&#\s]*", re.I
)


READ_ALLOWANCE = timedelta(seconds=60)
"""Reading and matching one body: under a second for a real feed, with the entry cap; a minute means stuck."""


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for every request a Fetcher makes; built from feeds.toml [fetch]."""

    timeout: timedelta = timedelta(seconds=20)
    """Whole request, connect to last byte, across all redirect hops; waiting for a free slot is not counted."""
    connect_timeout: timedelta = timedelta(seconds=10)
    """The DNS lookup, then each TCP (and TLS) connect attempt."""
    max_bytes: int = 15_000_000
    """Cap on the decoded body; a larger one fails the fetch, whatever Content-Length says."""
    user_agent: str = USER_AGENT
    allow_private_addresses: bool = False
    """True lets feeds live on loopback, private, link-local and other non-global addresses."""
    allowed_networks: tuple[str, ...] = ()
    """Networks ("10.1.2.0/24", "127.0.0.2") reachable even when private: one intranet host, not all of them."""
    per_host: int = 2
    """At most this many requests in flight to one host."""
    max_connections: int = 100
    """At most this many requests in flight in all."""
    max_redirects: int = 10

    @property
    def deadline(self) -> float:
        """Seconds a poll may take from the moment its request may start to its outcome: the whole request,
        then `READ_ALLOWANCE` to read and match the body. Past it, the watchdog ends the poll as failed."""
        return (self.timeout + READ_ALLOWANCE).total_seconds()

    def __post_init__(self) -> None:
        if self.timeout <= timedelta(0) or self.connect_timeout <= timedelta(0):
            raise ValueError("fetch timeouts must be more than 0s")
        if min(self.max_bytes, self.per_host, self.max_connections) < 1 or self.max_redirects < 0:
            raise ValueError("fetch limits must be positive")
        for network in self.allowed_networks:
            ipaddress.ip_network(network, strict=False)  # a bad entry fails here, not at the first fetch


def mask_url(text: str) -> str:
    """`text` with the userinfo and secret-looking query values of every URL in it replaced by `***`."""

    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match[1].partition(":")
        return f"//{user}:***@" if colon else "//***@"  # a user part alone is usually a token

    return _SECRET_PARAM.sub(r"\1***", re.sub(r"//([^/?#\s]*)@", userinfo, text))
