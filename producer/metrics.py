"""Prometheus metrics of the producer, on a registry of their own: events by kind,
drops by cause, spool size and delivery latency.

``update`` turns the agent's cumulative counts (also sent on producer.health)
into counter increments so both views agree; the caller makes the registry, not
the import, so tests and several agents in one process share no state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["MetricsServer", "ProducerMetrics", "get_metrics", "start_metrics_server"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("eunomia_producer_events", "Events captured, by kind", ["kind"],
                              registry=r)
        self.drops = Counter("eunomia_producer_drops", "Events dropped, by cause "
                             "(ringbuf:<probe>, spool_full, too_large, ...)", ["cause"], registry=r)
        self.delivered = Counter("eunomia_producer_delivered", "Messages acknowledged by Kafka",
                                 registry=r)
        self.spool_bytes = Gauge("eunomia_producer_spool_bytes", "Bytes in the disk spool",
                                 registry=r)
        self.spool_messages = Gauge("eunomia_producer_spool_messages",
                                    "Messages waiting in the disk spool", registry=r)
        self.broker_reachable = Gauge("eunomia_producer_broker_reachable",
                                      "1 while the Kafka broker answers", registry=r)
        self.throttled = Counter("eunomia_producer_throttled_seconds",
                                 "Time the brokers asked this producer to wait: its principal "
                                 "was over its client quota", registry=r)
        self.latency = Histogram("eunomia_producer_delivery_latency_seconds",
                                 "Produce-to-acknowledgement latency (sampled)",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        # the names a user of Eunomia's exporter looks for, as real counters
        self.process_start = Counter("eunomia_observed_process_start",
                                     "Successful execs observed", registry=r)
        self.process_end = Counter("eunomia_observed_process_end", "Process exits observed",
                                   registry=r)
        self.syscalls = Counter("eunomia_observed_syscall_count",
                                "System calls counted in the kernel", registry=r)
        self.files_read = Counter("eunomia_observed_files_read_count", "read calls on files",
                                  registry=r)
        self.files_write = Counter("eunomia_observed_files_write_count", "write calls on files",
                                   registry=r)
        self.files_read_bytes = Counter("eunomia_observed_files_read_bytes", "Bytes read",
                                        registry=r)
        self.files_write_bytes = Counter("eunomia_observed_files_write_bytes", "Bytes written",
                                         registry=r)
        self.tcp_connect = Counter("eunomia_observed_tcp_connect", "TCP connects observed, "
                                   "by address family (v4, v6)", ["family"], registry=r)
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def observe_event(self, rec: dict[str, Any]) -> None:
        """Count one raw event toward the Eunomia-named counters."""
        kind, pl = rec["kind"], rec.get("payload") or {}
        if kind in ("exec", "execveat") and pl.get("retval", 0) == 0:
            self.process_start.inc()
        elif kind == "exit":
            self.process_end.inc()
        elif kind == "connect" and pl.get("protocol") == 6:
            fam = {2: "v4", 10: "v6"}.get(pl.get("family", 0))
            if fam is not None:
                self.tcp_connect.labels(fam).inc()

    def observe_syscalls(self, rec: dict[str, Any]) -> None:
        """Count one raw.syscalls record (syscall counts and file I/O)."""
        n = sum(c["count"] for c in rec.get("counts") or ())
        if n:
            self.syscalls.inc(n)
        for f in rec.get("fileio") or ():
            self.files_read.inc(f["reads"])
            self.files_write.inc(f["writes"])
            self.files_read_bytes.inc(f["read_bytes"])
            self.files_write_bytes.inc(f["write_bytes"])

    def update(self, events_by_kind: dict[str, int], drops_by_cause: dict[str, int],
               publisher_stats: dict[str, Any] | None = None) -> None:
        """Bring counters up to the agent's cumulative counts (called each interval)."""
        with self._lock:
            for kind, n in events_by_kind.items():
                self._advance(self.events.labels(kind), ("events", kind), n)
            for cause, n in drops_by_cause.items():
                self._advance(self.drops.labels(cause), ("drops", cause), n)
            if publisher_stats:
                s = publisher_stats
                self._advance(self.delivered, ("delivered", ""), s.get("delivered", 0))
                self._advance(self.drops.labels("spool_full"), ("drops", "spool_full"),
                              s.get("dropped_spool_full", 0))
                self._advance(self.drops.labels("too_large"), ("drops", "too_large"),
                              s.get("dropped_too_large", 0))
                self._advance(self.throttled, ("throttled", ""), s.get("throttled_s", 0.0))
                self.spool_bytes.set(s.get("spool_bytes", 0))
                self.spool_messages.set(s.get("spool_messages", 0))
                self.broker_reachable.set(1 if s.get("reachable", True) else 0)

    def _advance(self, counter: Any, key: tuple[str, str], total: float) -> None:
        delta = total - self._last.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self._last[key] = total


_default: ProducerMetrics | None = None


def get_metrics() -> ProducerMetrics:
    """The process's metrics, created on first use."""
    global _default
    if _default is None:
        _default = ProducerMetrics()
    return _default


@dataclass
class MetricsServer:
    metrics: ProducerMetrics
    port: int
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(port: int, addr: str = "127.0.0.1",
                         metrics: ProducerMetrics | None = None) -> MetricsServer:
    """Serve /metrics on addr:port (port 0: any free port, see ``.port``)."""
    m = metrics or get_metrics()
    server, thread = start_http_server(port, addr, registry=m.registry)
    return MetricsServer(m, server.server_address[1], server, thread)
