"""Publishing to and reading from a test's topics with confluent-kafka, as a real
client of the real broker would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from eunomia.config import Settings
from eunomia.schemas import AvroCodec

__all__ = ["CODEC", "consume", "consume_seqs", "producer", "publish", "raw_items", "read_topic",
           "seq_value"]

CODEC = AvroCodec()


def producer(settings: Settings) -> Producer:
    return Producer({**settings.kafka.librdkafka(), "linger.ms": 5, "enable.idempotence": True})


def publish(settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Produce every (key, value) to the logical ``topic`` and flush; the count sent."""
    p = producer(settings)
    n = 0
    for key, value in items:
        while True:
            try:
                p.produce(settings.topic(topic), key=key, value=value)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if n % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    return n


def raw_items(events: Iterable[dict[str, Any]], schema: str = "raw_event"
              ) -> Iterator[tuple[bytes, bytes]]:
    """Raw records keyed by host id, encoded as the producer publishes them."""
    for ev in events:
        yield ev["host_id"].encode(), CODEC.encode(schema, ev)


def consume(settings: Settings, topic: str, *, until: Callable[[list[Any]], bool],
            timeout: float = 90.0, decode: str | None = "enriched_event") -> list[Any]:
    """All messages of a topic from the beginning until ``until(messages)`` or timeout.

    Items are (key, value, headers, partition); the value is decoded when ``decode``
    names a schema, None for a tombstone."""
    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"test-{uuid.uuid4().hex[:12]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    name = settings.topic(topic)
    md = c.list_topics(name, timeout=10).topics[name]
    c.assign([TopicPartition(name, p, 0) for p in md.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                v = m.value()
                if decode and v is not None:
                    v = CODEC.decode(v, expect=decode)
                out.append((m.key(), v, m.headers() or [], m.partition()))
    finally:
        c.close()
    return out


def read_topic(settings: Settings, topic: str, schema: str, *,
               until: Callable[[list[dict[str, Any]]], bool], timeout: float = 90.0
               ) -> list[dict[str, Any]]:
    """The decoded values of a topic from the beginning, a tombstone as
    ``{"tombstone": key}``, until ``until(values)`` or timeout."""
    values: list[dict[str, Any]] = []

    def more(got: list[Any]) -> None:
        values.extend(v if v is not None else {"tombstone": k.decode()}
                      for k, v, _, _ in got[len(values):])

    def done(got: list[Any]) -> bool:
        more(got)
        return until(values)

    more(consume(settings, topic, until=done, timeout=timeout, decode=schema))
    return values


def seq_value(seq: int, size: int = 120) -> bytes:
    """A message value that carries ``seq`` in its first 8 bytes (big endian)."""
    return seq.to_bytes(8, "big") + b"x" * (size - 8)


def consume_seqs(settings: Settings, logical_topic: str, expect: int, timeout: float = 60.0
                 ) -> list[int]:
    """Seqs of every ``seq_value`` message on the topic, in offset order per partition;
    stops at ``expect`` messages plus a short quiet period (to see any extra)."""
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
