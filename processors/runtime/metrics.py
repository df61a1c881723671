"""The metrics every worker exports, labelled by worker, so one Grafana panel
covers them all: events in (per input topic), events out (per output topic),
dead letters (per source topic), consumer lag (per input partition) and
alerts (per rule and level, whichever worker raised them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["ALERTS", "DEAD_LETTERS", "EVENTS_IN", "EVENTS_OUT", "LAG"]

EVENTS_IN = Counter("eunomia_worker_events_in", "Input records read, by worker and topic",
                    ["worker", "topic"])
EVENTS_OUT = Counter("eunomia_worker_events_out", "Records produced, by worker and topic",
                     ["worker", "topic"])
DEAD_LETTERS = Counter("eunomia_worker_dead_letters", "Input records sent to the dead-letter "
                       "topic, by worker and source topic", ["worker", "topic"])
LAG = Gauge("eunomia_worker_consumer_lag", "Records on an assigned input partition not yet "
            "processed (high watermark - next offset)", ["worker", "topic", "partition"])
ALERTS = Counter("eunomia_alerts", "Alerts raised, by worker, rule and level",
                 ["worker", "rule", "level"])
