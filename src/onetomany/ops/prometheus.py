"""Prometheus metrics of a program's store (the ``onetomany[prometheus]`` extra).

:class:`StoreCollector` reads :func:`~onetomany.ops.status.read_status` on every scrape, so
the figures are the store's, whichever worker wrote them, and no process has to stay up to
count. Mount :func:`metrics_app` (WSGI) in a host's web app, or run ``onetomany status PATH
--serve PORT``. All are gauges: a counter would go down when retention removes rows.

============================================  ===========================================
``onetomany_queue_depth{channel}``            rows pending or claimed
``onetomany_outbox_rows{channel,status}``     rows per status (``dead``: the dead letters)
``onetomany_dead_letters{channel}``           rows in the dead letters
``onetomany_oldest_due_seconds{channel}``     how long the oldest row due now has waited
``onetomany_attempts{channel,status}``        delivery attempts in the window, by outcome
``onetomany_error_rate{channel}``             failed attempts / attempts in the window
``onetomany_last_tick_seconds``               how long the last tick took
``onetomany_last_tick_age_seconds``           how long ago it ended
``onetomany_source_staleness_seconds{source}``  time since the source's last good sync
``onetomany_source_failing{source}``          1 when its last sync failed
============================================  ===========================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from onetomany.ops.status import DEFAULT_WINDOW, Status, read_status
from onetomany.program import Program
from onetomany.store import Store

try:
    from prometheus_client import CollectorRegistry, make_wsgi_app, start_http_server
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
    raise ImportError(
        "Prometheus metrics need prometheus-client: pip install 'onetomany[prometheus]'"
    ) from exc

__all__ = ["StoreCollector", "metrics_app", "registry_for", "serve"]


class StoreCollector(Collector):
    """Reads the store's status on each scrape and yields it as gauges."""

    def __init__(
        self,
        program: Program,
        store: Store,
        *,
        now: Callable[[], datetime],
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        self.program = program
        self.store = store
        self.now = now
        self.window = window

    def collect(self) -> Iterator[Metric]:
        return iter(
            metrics(read_status(self.program, self.store, now=self.now(), window=self.window))
        )


def metrics(status: Status) -> list[Metric]:
    """The gauges of one status reading."""
    prefix = "onetomany_"

    def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(prefix + name, doc, labels=["program", *labels])

    depth = gauge("queue_depth", "Outbox rows pending or claimed.", ["channel"])
    rows = gauge("outbox_rows", "Outbox rows per status.", ["channel", "status"])
    dead = gauge("dead_letters", "Outbox rows in the dead letters.", ["channel"])
    oldest = gauge("oldest_due_seconds", "Seconds the oldest row due now has waited.", ["channel"])
    attempts = gauge(
        "attempts", "Delivery attempts in the window, by outcome.", ["channel", "status"]
    )
    errors = gauge("error_rate", "Failed attempts over attempts in the window.", ["channel"])
    p = status.program
    for c in status.channels:
        depth.add_metric([p, c.name], c.queued)
        dead.add_metric([p, c.name], c.dead)
        oldest.add_metric([p, c.name], c.oldest_due_seconds)
        errors.add_metric([p, c.name], c.error_rate)
        for s, n in c.rows.items():
            rows.add_metric([p, c.name, s], n)
        for s, n in c.attempts.items():
            attempts.add_metric([p, c.name, s], n)
    found: list[Metric] = [depth, rows, dead, oldest, attempts, errors]
    window = gauge("window_seconds", "How far back attempts and the error rate look.", [])
    window.add_metric([p], status.window_seconds)
    found.append(window)
    tick = status.last_tick
    if tick is not None:
        took = gauge("last_tick_seconds", "Seconds the last tick took.", [])
        took.add_metric([p], float(tick["seconds"]))
        age = gauge("last_tick_age_seconds", "Seconds since the last tick ended.", [])
        ended = datetime.fromisoformat(str(tick["at"]))
        age.add_metric([p], max(0.0, (status.at - ended).total_seconds()))
        found += [took, age]
    stale = gauge(
        "source_staleness_seconds", "Seconds since the source's last good sync.", ["source"]
    )
    failing = gauge("source_failing", "1 when the source's last sync failed.", ["source"])
    for source in status.sources:
        if source.staleness_seconds is not None:
            stale.add_metric([p, source.name], source.staleness_seconds)
        failing.add_metric([p, source.name], 1.0 if source.failing else 0.0)
    found += [stale, failing]
    return found


def registry_for(collector: StoreCollector) -> CollectorRegistry:
    """A registry holding only the store's metrics (no process metrics of the scraper)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def metrics_app(collector: StoreCollector) -> Any:
    """A WSGI app serving the store's metrics (mount it at ``/metrics``)."""
    return make_wsgi_app(registry_for(collector))


def serve(collector: StoreCollector, port: int, *, addr: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a background thread; returns the server."""
    server, _thread = start_http_server(port, addr=addr, registry=registry_for(collector))
    return server
