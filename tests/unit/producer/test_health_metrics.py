"""producer.health records fit the schema and carry merged lost ranges and all drop
causes; the metrics endpoint serves counters that follow the cumulative counts."""

from __future__ import annotations

import urllib.request

from eunomia.producer.health import HealthReporter, merge_ranges
from eunomia.producer.metrics import ProducerMetrics, start_metrics_server
from eunomia.schemas import AvroCodec


def test_merge_ranges() -> None:
    assert merge_ranges([(10, 12), (1, 3), (4, 5), (11, 20), (30, 30)]) == [(1, 5), (10, 20), (30, 30)]
    assert merge_ranges([]) == []


def test_health_record_fits_schema() -> None:
    rep = HealthReporter("host-1", "boot-1", 123)
    rec = rep.record(41, {"exec": 5, "open": 30}, {"ringbuf:file": 2},
                     {"dropped_spool_full": 7, "spool_bytes": 900, "spool_messages": 3},
                     [(20, 22), (23, 26), (30, 30)], ["process", "file"], config_change="probes")
    assert rec["drops_by_cause"] == {"ringbuf:file": 2, "spool_full": 7}
    assert rec["lost_ranges"] == [{"first": 20, "last": 26}, {"first": 30, "last": 30}]
    codec = AvroCodec()
    assert codec.decode(codec.encode("producer_health", rec), expect="producer_health") == rec


def test_metrics_endpoint() -> None:
    m = ProducerMetrics()
    server = start_metrics_server(0, metrics=m)
    try:
        m.update({"exec": 3}, {"ringbuf:process": 1}, {"delivered": 10, "spool_bytes": 512,
                                                       "dropped_spool_full": 4, "reachable": False})
        m.update({"exec": 5}, {"ringbuf:process": 1}, {"delivered": 12, "spool_bytes": 0,
                                                       "throttled_s": 1.5})
        m.observe_latency(0.003)
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read()
        text = body.decode()
    finally:
        server.close()
    assert 'eunomia_producer_events_total{kind="exec"} 5.0' in text
    assert 'eunomia_producer_drops_total{cause="ringbuf:process"} 1.0' in text
    assert 'eunomia_producer_drops_total{cause="spool_full"} 4.0' in text
    assert "eunomia_producer_delivered_total 12.0" in text
    assert "eunomia_producer_throttled_seconds_total 1.5" in text
    assert "eunomia_producer_spool_bytes 0.0" in text
    assert "eunomia_producer_delivery_latency_seconds_count 1.0" in text
