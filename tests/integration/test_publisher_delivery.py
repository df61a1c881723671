"""Publisher against the real session broker: ordered gap-free delivery, and a spool
too small for an outage (overflow dropped, counted, lost ranges exact, the rest
delivered by the next process from the same spool directory)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from eunomia.config import KafkaSettings, Settings
from eunomia.kafka.topics import create_topics
from eunomia.producer.publisher import Publisher
from tests.support.kafka_io import consume_seqs, seq_value
from tests.support.ports import free_port_block

pytestmark = pytest.mark.kafka


def test_delivery_in_order_gap_free(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    pub = Publisher(settings, spool_dir=tmp_path / "spool", spool_max_bytes=64 << 20)
    n = 30_000
    for seq in range(n):
        pub.publish("raw.events", b"host-a", seq_value(seq), seq=seq)
        if not seq % 1000:
            pub.poll(0)
    assert pub.flush(30) == 0
    stats = pub.stats()
    pub.close()
    assert stats["delivered"] == n and stats["spool_messages"] == 0
    assert stats["dropped_spool_full"] == 0 and pub.lost_ranges == []
    assert stats["delivery_latency_max_s"] > 0
    assert consume_seqs(settings, "raw.events", n) == list(range(n))


def test_spool_too_small_drops_counted_and_rest_survives_restart(
        settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_topics(settings)
    spool_dir = tmp_path / "spool"
    dead = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port_block()}"),
                    topics=settings.topics)
    caplog.set_level(logging.WARNING, logger="eunomia.producer.publisher")
    pub = Publisher(dead, spool_dir=spool_dir, spool_max_bytes=40_000)
    pub.publish("raw.events", b"host-a", seq_value(0), seq=0)
    deadline = time.monotonic() + 20
    while pub.stats()["reachable"] and time.monotonic() < deadline:
        pub.poll(0.2)
    assert not pub.stats()["reachable"]
    n = 1000  # ~150 bytes each on disk: a few hundred fit
    for seq in range(1, n):
        pub.publish("raw.events", b"host-a", seq_value(seq), seq=seq)
        if not seq % 50:
            pub.poll(0)
    pub.close(timeout=1)
    stats = pub.stats()
    lost = pub.lost_ranges
    outage_lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage_lines) == 1 and outage_lines[0].exc_info is None
    assert stats["dropped_spool_full"] > 0 and lost
    lost_seqs = {s for first, last in lost for s in range(first, last + 1)}
    assert len(lost_seqs) == stats["dropped_spool_full"]

    # the next process drains what the spool kept, in order, then live traffic
    pub2 = Publisher(settings, spool_dir=spool_dir, spool_max_bytes=40_000)
    assert pub2.flush(30) == 0
    pub2.publish("raw.events", b"host-a", seq_value(n), seq=n)
    assert pub2.flush(30) == 0
    assert pub2.lost_ranges == []
    pub2.close()
    kept = [s for s in range(n + 1) if s not in lost_seqs]
    assert consume_seqs(settings, "raw.events", len(kept)) == kept


def test_local_queue_full_spills_to_spool_in_order(settings: Settings, tmp_path: Path) -> None:
    """librdkafka's queue holds 1000 messages; 20000 published without polling
    overflow into the spool and still arrive once each, in order."""
    create_topics(settings)
    pub = Publisher(settings, spool_dir=tmp_path / "spool", spool_max_bytes=64 << 20,
                    queue_messages=1000)
    n = 20_000
    for seq in range(n):
        pub.publish("raw.events", b"host-a", seq_value(seq), seq=seq)
    assert pub.stats()["spooled"] >= n - 1000
    assert pub.flush(60) == 0
    stats = pub.stats()
    pub.close()
    assert stats["delivered"] == n and stats["dropped_spool_full"] == 0
    assert consume_seqs(settings, "raw.events", n) == list(range(n))
