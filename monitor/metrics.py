"""What a running service tells Prometheus (`monitor run --metrics-port`), and its health probe.

    GET /metrics   the Prometheus text format (prometheus-client), every metric named `monitor_…`
    GET /healthz   200 "ok" when the database answers and the scheduler has run lately, else 503 and why

Labels are bounded: rule and channel ids, outcomes and statuses; never a feed, a URL or an item. Counters
count what this process did (Prometheus sums instances); `monitor_feeds` is read from the database at each
scrape, so every instance reports the whole farm's feeds. Imported only when a port is given: the service's
start-up never pays for prometheus-client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from monitor.records import AlertView, PollOutcome

log = logging.getLogger("monitor.metrics")

POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
ALERT_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 24 * 3600.0)
"""Publication to alert: a minute is good, an hour is a feed that publishes late, a day a digest."""
STALE_TICKS = 30.0
"""Seconds without a scheduler tick after which the service is not healthy (it ticks every second)."""


class _Feeds(Collector):
    """`monitor_feeds{status}`: active feeds by status, read from the database at each scrape."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "monitor_feeds", "Active feeds by status (new, ok, failing, gone)", labels=["status"]
        )
        try:
            counts = self._counts()
        except Exception as error:  # the scrape still answers; /healthz says what is wrong
            log.warning("metrics: cannot count feeds: %s", type(error).__name__)
            return
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


class Metrics:
    """The service's counters, histograms and gauges in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("monitor_polls", "Feed polls by outcome", ["outcome"], registry=r)
        self.poll_seconds = Histogram(
            "monitor_poll_duration_seconds", "One feed's poll, request to items matched", buckets=POLL_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.items = Counter("monitor_items_stored", "New items stored", registry=r)
        self.gaps = Counter(
            "monitor_feed_gaps", "Polls that found every entry of a feed new (a possible gap)", registry=r
        )
        self.matches = Counter("monitor_matches", "Rule matches of the items stored", ["rule"], registry=r)
        self.alerts = Counter(
            "monitor_alerts", "Alerts made (first, update, spread), under each rule they name", ["rule", "kind"],
            registry=r,
        )  # fmt: skip
        self.deliveries = Counter(
            "monitor_deliveries",
            "Alert deliveries by channel and outcome (sent; failed: will retry; dead: gave up; cancelled; held)",
            ["channel", "outcome"],
            registry=r,
        )
        self.alert_seconds = Histogram(
            "monitor_publication_to_alert_seconds", "From an item's publication to its alert sent", ["channel"],
            buckets=ALERT_BUCKETS, registry=r,
        )  # fmt: skip
        self.lag = Gauge("monitor_scheduler_lag_seconds", "How late the most overdue feed was when claimed", registry=r)
        self.reloads = Counter("monitor_reloads", "Config reloads applied", registry=r)
        self.reload_failures = Counter(
            "monitor_reload_failures", "Config reloads refused (the old one runs on)", registry=r
        )
        self.last_tick = 0.0
        """time.monotonic() of the scheduler's last poll tick (0: none yet)."""

    def watch_feeds(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_Feeds(counts))

    # --- what the service tells ------------------------------------------------------------------------

    def polled(self, outcome: PollOutcome) -> None:
        self.polls.labels(outcome.status).inc()
        if outcome.seconds:
            self.poll_seconds.observe(outcome.seconds)

    def stored(self, new_items: int, matched: Sequence[str], alerted: Sequence[tuple[str, str]]) -> None:
        if new_items:
            self.items.inc(new_items)
        for rule in matched:
            self.matches.labels(rule).inc()
        for kind, rule in alerted:
            self.alerts.labels(rule, kind).inc()

    def delivered(self, channel: str, outcome: str, count: int, sent: Sequence[AlertView] = (),
                  at: datetime | None = None) -> None:  # fmt: skip
        """`count` deliveries to `channel` ended an attempt with `outcome`; `sent` alerts went out `at`."""
        self.deliveries.labels(channel, outcome).inc(count)
        for alert in sent:
            if alert.published is not None and at is not None:
                self.alert_seconds.labels(channel).observe(max(0.0, (at - alert.published).total_seconds()))

    def ticked(self, lag: float | None) -> None:
        """The scheduler looked for due feeds; `lag`: how overdue the first it claimed was (None: none due)."""
        self.last_tick = time.monotonic()
        self.lag.set(max(0.0, lag or 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """/metrics and /healthz over HTTP in a thread of the service's process."""

    def __init__(self, metrics: Metrics, host: str, port: int, database_ok: Callable[[], str | None]) -> None:
        self.metrics = metrics
        self._database_ok = database_ok
        handler = _handler(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="monitor-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def health(self) -> str | None:
        """None when ready; else why not."""
        if self.metrics.last_tick == 0.0:
            return "the scheduler has not run yet"
        idle = time.monotonic() - self.metrics.last_tick
        if idle > STALE_TICKS:
            return f"the scheduler has not run for {idle:.0f}s"
        return self._database_ok()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(HTTPStatus.OK, server.metrics.render(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                why = server.health()
                body = b"ok\n" if why is None else f"not ready: {why}\n".encode()
                self._answer(HTTPStatus.OK if why is None else HTTPStatus.SERVICE_UNAVAILABLE, body)
            else:
                self._answer(HTTPStatus.NOT_FOUND, b"not found: /metrics or /healthz\n")

        def _answer(self, status: HTTPStatus, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every 15 s is not news

    return Handler
