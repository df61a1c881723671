"""A broker outage under steady load: the publisher spools while its own broker is
down for 30 s at 5,000 events/s, drains when it is back, and every seq reaches
the topic exactly once and in order (issue 9 item 1)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.config import KafkaSettings, LocalKafkaSettings, Settings, TopicSettings
from eunomia.errors import LocalKafkaError
from eunomia.kafka.local_broker import LocalKafka
from eunomia.kafka.topics import create_topics
from eunomia.producer.publisher import Publisher
from tests.requirements import require
from tests.support.kafka_io import consume_seqs, seq_value
from tests.support.ports import free_port_block

pytestmark = pytest.mark.kafka

# Issue 9's figures; the variables shorten a local run
OUTAGE_S = float(os.environ.get("EUNOMIA_OUTAGE_S", "30"))
RATE = int(os.environ.get("EUNOMIA_OUTAGE_RATE", "5000"))  # messages/s


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    require(shutil.which("java") is not None, "needs Java 17 for the local Kafka broker")
    s = LocalKafkaSettings()
    for attempt in range(2):  # a free port can be taken by a parallel test before Kafka binds it
        kafka = LocalKafka(tmp_path / f"kafka{attempt}", s.cache_dir, port=free_port_block(),
                           heap="256m")
        try:
            kafka.start()
            break
        except LocalKafkaError:
            kafka.stop()
            if attempt:
                raise
    try:
        yield kafka
    finally:
        kafka.stop()


def test_outage_every_seq_once_in_order(own_broker: LocalKafka, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=own_broker.bootstrap),
                        topics=TopicSettings(prefix="outage.", partitions=1))
    create_topics(settings)
    caplog.set_level(logging.WARNING, logger="eunomia.producer.publisher")
    pub = Publisher(settings, spool_dir=tmp_path / "spool", spool_max_bytes=256 << 20,
                    stall_seconds=3)
    done = threading.Event()
    errors: list[BaseException] = []

    def outage() -> None:
        try:
            time.sleep(3)
            own_broker.stop()
            time.sleep(OUTAGE_S)
            own_broker.start(timeout=60)
            time.sleep(3)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=outage, daemon=True).start()
    seq = 0
    max_spooled = 0
    t0 = time.monotonic()
    while not done.is_set() and time.monotonic() - t0 < OUTAGE_S + 90:
        for _ in range(RATE // 100):
            pub.publish("raw.events", b"host-a", seq_value(seq), seq=seq)
            seq += 1
        pub.poll(0)
        max_spooled = max(max_spooled, pub.stats()["spool_messages"])
        time.sleep(max(0.0, t0 + seq / RATE - time.monotonic()))
    assert not errors, errors
    assert pub.flush(60) == 0
    stats = pub.stats()
    pub.close()
    assert max_spooled > RATE  # the spool carried the outage
    assert stats["dropped_spool_full"] == 0 and pub.lost_ranges == []
    assert stats["delivered"] == seq
    lines = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in ln for ln in lines) == 1, lines
    assert sum("reachable again" in ln for ln in lines) == 1, lines
    assert consume_seqs(settings, "raw.events", seq) == list(range(seq))
