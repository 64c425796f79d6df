"""Item links: the canonical form that identifies an article, and the safe form an alert may show. Pure.

`canonical_url` is an identity, not a link to click: two URLs that reach the same article through tracking
parameters, a fragment, a mobile or AMP variant, upper-case host or a default port give the same string, so
the same story from two feeds (or one feed that changes its tracking tags) is one URL (DESIGN.md §6, layer 2).
It is http(s) only; anything else (`javascript:`, `data:`, `file:`, relative, garbage) gives None.

The rules, in order:

- scheme and host lower-case, punycode host decoded, a scheme's default port dropped, user:password dropped
  (never a secret in a stored URL), runs of `/` in the path collapsed, the path percent-quoted one way;
- the fragment dropped, whatever it holds;
- query parameters named in `_TRACKING` (or starting with a prefix in `_TRACKING_PREFIXES`) dropped, case
  ignored; every other parameter kept byte for byte (`?id=123`, `?p=45`, `?story_fbid=`, `?v=`), then sorted.
  Unknown parameters are kept on purpose: wrongly merging two articles loses an alert, while a duplicate
  that slips through here is still caught by the content fingerprint (DESIGN.md §6, layer 3);
- AMP and mobile variants folded: a leading `www.`, `m.`, `mobile.` or `amp.` host label is removed as long
  as a dotted name remains, so `www.bbc.co.uk`, `m.bbc.co.uk` and `bbc.co.uk` are one host (the www-less
  host is the one rule that folds all four; it may not itself resolve, which is fine for an identity);
  a `/amp` path suffix or `/amp/` segment, a `.amp` suffix (`story.amp`, `story.amp.html`), and the query
  markers `amp`, `amp=1`, `amp=true`, `outputType=amp` are removed; Google AMP cache and `google.com/amp/`
  wrappers are unwrapped to the URL they carry;
- an empty path is `/`; a trailing slash is otherwise kept (`/a` and `/a/` may be different pages).

`canonical_url(canonical_url(u)) == canonical_url(u)` for every string (tests/test_normalize.py checks it
with Hypothesis).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from courlan import normalize_url

# Query parameters that only say where a click came from. Exact names, compared lower-case.
_TRACKING = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
        "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "ocid", "cmpid",
        "cmp", "ito", "xtor", "xtref", "icid", "wt.mc_id", "wt_mc", "wt_zmc", "maca", "wprss", "smid",
        "smtyp", "emc", "partner", "traffic_source", "ref_src", "ref_url", "ref", "s_cid", "sc_cid",
        "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "spm", "guccounter", "soc_src", "soc_trk",
        "rss", "feature", "__twitter_impression",
    }
)  # fmt: skip
# Parameter families: Google Analytics `utm_*`, AT Internet `at_*` (BBC, Le Monde), Nielsen/comScore `ns_*`,
# Google's subscription tokens `gaa_*`, Piwik/Matomo `pk_*`/`mtm_*`.
_TRACKING_PREFIXES = ("utm_", "at_", "ns_", "gaa_", "pk_", "mtm_")
_AMP_QUERY = frozenset({"amp", "amp=1", "amp=true", "outputtype=amp"})
_FOLDED_HOST_LABELS = ("www.", "m.", "mobile.", "amp.")
_AMP_PATH = re.compile(r"(?:/amp)+(?=/|$)|\.amp(?=\.html?$|$)", re.IGNORECASE)
# https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a  and  https://www.google.com/amp/s/example.com/a
_AMP_CACHE_PATH = re.compile(r"^/(?:[cv]/)?(?:(s)/)?(?P<rest>[^/].*)$")
_WHITESPACE = re.compile(r"\s")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unwrap_amp(url: str) -> str | None:
    """The URL that an AMP cache or Google AMP viewer URL carries, else None."""
    lowered = url.lower()
    if "ampproject.org" not in lowered and "google.com" not in lowered:
        return None  # neither host can be in it: skip the split, which every link would otherwise pay twice
    parts = urlsplit(url)
    host = _fold_host(parts.hostname or "")
    if parts.scheme not in ("http", "https"):
        return None
    if host.endswith(".cdn.ampproject.org"):
        inner = parts.path
    elif host == "google.com" and parts.path.startswith("/amp/"):
        inner = parts.path[len("/amp") :]
    else:
        return None
    match = _AMP_CACHE_PATH.match(inner)
    if match is None or "." not in match["rest"].split("/", 1)[0]:
        return None
    scheme = "https" if match[1] else "http"
    return f"{scheme}://{match['rest']}" + (f"?{parts.query}" if parts.query else "")


def _fold_host(host: str) -> str:
    # Repeated, so `www.m.example.com` folds too and a second pass finds nothing left to fold (idempotence).
    folded = True
    while folded:
        folded = False
        for label in _FOLDED_HOST_LABELS:
            rest = host[len(label) :]
            if host.startswith(label) and "." in rest:
                host, folded = rest, True
    return host


def _clean_query(query: str) -> str:
    """Tracking and AMP parameters dropped, the rest kept as written and sorted.

    By hand because courlan's `clean_query` also drops parameters that identify articles (`cid`, `uid`,
    `gallery`, `ref*` by substring), drops blank ones (`?flag`), and re-encodes the values it keeps.
    """
    kept: list[str] = []
    for piece in query.split("&"):
        if not piece.strip():
            continue
        name = unquote(piece.split("=", 1)[0]).lower()
        if name in _TRACKING or name.startswith(_TRACKING_PREFIXES) or piece.lower() in _AMP_QUERY:
            continue
        # Whitespace percent-encoded: a trailing space would be trimmed off the canonical URL next time.
        kept.append(_WHITESPACE.sub(lambda space: quote(space[0]), piece))
    return "&".join(sorted(kept))


def canonical_url(url: str | None) -> str | None:
    """The canonical form of an http(s) URL (see the module docstring), or None for anything else."""
    if not url:
        return None
    try:
        current = url.strip()
        # An AMP wrapper may carry another; each unwrapping removes a host and a prefix. The loop ends on a
        # canonical URL that is no wrapper, so a second call finds nothing more to do (idempotence).
        for _ in range(8):
            inner = _unwrap_amp(current)
            if inner is not None:
                current = inner
                continue
            canonical = _canonical(current)
            if canonical is None or _unwrap_amp(canonical) is None:
                return canonical
            current = canonical
        return None  # wrappers nested deeper than any real link
    except (ValueError, UnicodeError):
        return None  # an unparseable netloc, port or IDNA label: not a URL we can identify


def _canonical(url: str) -> str | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    port = parts.port  # raises ValueError on a port that is not a number in range
    netloc = f"[{host}]" if ":" in host else host
    # courlan drops default ports too, but not after an IPv6 literal.
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = parts.path
    # Repeated until nothing changes: removing `/amp` from `/a.amp/amp` leaves a `.amp` suffix to remove.
    # Before courlan, so that its clean-up (a leading `/..` dropped) sees what the AMP rule leaves.
    while (stripped := _AMP_PATH.sub("", path)) != path:
        path = stripped
    # courlan gets the parts it handles well: case, punycode, default ports, slash runs, path quoting. The
    # query and fragment are kept away from it (see _clean_query); it would keep the fragment.
    normal = urlsplit(normalize_url(urlunsplit((scheme, netloc, path, "", "")), trailing_slash=True))
    host = _fold_host(normal.hostname or "")
    if not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if normal.port is not None:
        netloc = f"{netloc}:{normal.port}"
    return urlunsplit((scheme, netloc, normal.path or "/", _clean_query(parts.query), ""))


def safe_link(url: str | None) -> str | None:
    """The link as published, trimmed, when it is an absolute http(s) URL fit to put in a message; else None.

    A link with a control character (tab and newline included) is refused: URL parsers drop tabs and
    newlines, so `java\\nscript:` can pass for something else, and a newline in a message can forge lines of
    the alert. Spaces are left as published; renderers escape links anyway.
    """
    if not url:
        return None
    url = url.strip()
    if _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return url
