"""Shared by the publisher integration tests: read a topic back from the real broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer

from eunomia.config import Settings


def consume_seqs(settings: Settings, logical_topic: str, expect: int, timeout: float = 60.0
                 ) -> list[int]:
    """Seqs (first 8 value bytes, big endian) of every message on the topic, in offset
    order per partition; stops at ``expect`` messages plus a short quiet period."""
    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"t-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([settings.topic(logical_topic)])
    out: list[int] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(10_000, 0.5)
            for m in msgs:
                assert m.error() is None, m.error()
                out.append(int.from_bytes(m.value()[:8], "big"))
            if len(out) >= expect:
                quiet_until = quiet_until or time.monotonic() + 2.0
                if time.monotonic() >= quiet_until:
                    break
    finally:
        c.close()
    return out


def value(seq: int, size: int = 120) -> bytes:
    return seq.to_bytes(8, "big") + b"x" * (size - 8)
