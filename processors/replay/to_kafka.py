"""``eunomia replay --to-kafka``: publish a recording back into Kafka.

Messages go out in recorded order with their original keys and headers. At
``--speed max`` nothing waits (large batches, linger, no per-message flush: only
failed deliveries call back); at ``1x`` or ``Nx`` each message waits until its
recorded gap from the first message, divided by the speed, has passed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from eunomia.config import Settings
from eunomia.errors import BrokerUnavailable, EunomiaError
from eunomia.processors.replay.record import resolve_topic
from eunomia.processors.replay.recording import RecordingReader, SkippedBlock

__all__ = ["ReplayError", "ReplayStats", "parse_speed", "replay_to_kafka"]


class ReplayError(EunomiaError):
    """A replay could not deliver what it read."""


@dataclass
class ReplayStats:
    messages: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    skipped: list[SkippedBlock] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


_SPEED = re.compile(r"^(\d+(?:\.\d+)?)x$")


def parse_speed(text: str) -> float | None:
    """``max`` -> None (no pacing); ``1x``, ``10x``, ``0.5x`` -> the factor."""
    text = text.strip().lower()
    if text == "max":
        return None
    m = _SPEED.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ReplayError(f"--speed {text!r}: use max, 1x or Nx (N > 0, e.g. 10x or 0.5x)")
    return float(m.group(1))


def producer_config(settings: Settings) -> dict[str, Any]:
    """Throughput settings: big batches, a short linger, lz4, idempotence (no
    duplicates or reordering on retry), and delivery reports for failures only."""
    return settings.kafka.librdkafka() | {
        "enable.idempotence": True,
        "linger.ms": 25,
        "batch.size": 4 * 1024 * 1024,
        "batch.num.messages": 100000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2 * 1024 * 1024,
        "message.max.bytes": 8 * 1024 * 1024,
        "delivery.report.only.error": True,
    }


class _Failures:
    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.count += 1
            if self.first is None:
                self.first = f"{msg.topic()}: {err.str()}"


def _targets(settings: Settings, reader: RecordingReader, topic: str | None) -> dict[str, str]:
    """Recorded topic -> topic to publish to. A recorded pipeline topic goes to
    the same logical topic under today's prefix."""
    if topic is not None:
        target = resolve_topic(settings, topic)
        return dict.fromkeys(reader.topics, target)
    logical = reader.logical_topics
    return {t: settings.topic(logical[t]) if t in logical else t for t in reader.topics}


def _check_topics(producer: Producer, names: set[str]) -> None:
    try:
        meta = producer.list_topics(timeout=15)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no Kafka broker answered: {exc.args[0].str()}") from None
    missing = sorted(n for n in names if n not in meta.topics or meta.topics[n].error is not None)
    if missing:
        raise ReplayError(f"target topic(s) do not exist: {', '.join(missing)}"
                          " (create them, e.g. `eunomia topics create`, or pass --topic)")


def replay_to_kafka(settings: Settings, path: Path, *, topic: str | None = None,
                    speed: float | None = None, keep_partitions: bool = False,
                    keep_timestamps: bool = False, skip_corrupt: bool = False,
                    progress: Callable[[int], None] | None = None,
                    on_skip: Callable[[SkippedBlock], None] | None = None) -> ReplayStats:
    """Publish every message of ``path``; raises ``ReplayError`` if any delivery
    failed. Without ``skip_corrupt`` the block framing is checked first, so a
    truncated or mangled file fails before anything is published."""
    reader = RecordingReader(path, skip_corrupt=skip_corrupt, on_skip=on_skip)
    if not skip_corrupt:
        reader.scan()
    targets = _targets(settings, reader, topic)
    failures = _Failures()
    producer = Producer(producer_config(settings) | {"on_delivery": failures})
    _check_topics(producer, set(targets.values()))
    stats = ReplayStats(per_topic=dict.fromkeys(sorted(set(targets.values())), 0))
    t0 = time.monotonic()
    first_ts: int | None = None
    produce, poll = producer.produce, producer.poll
    for batch in reader.raw_blocks():
        for r in batch:
            target = targets[r["topic"]]
            kwargs: dict[str, Any] = {}
            if r["headers"]:
                kwargs["headers"] = [(h["key"], h["value"]) for h in r["headers"]]
            if keep_partitions:
                kwargs["partition"] = r["partition"]
            if keep_timestamps:
                kwargs["timestamp"] = r["timestamp_ms"]
            if speed is not None:
                ts = r["timestamp_ms"]
                if first_ts is None:
                    first_ts = ts
                wait = t0 + (ts - first_ts) / 1000.0 / speed - time.monotonic()
                if wait > 0:
                    producer.flush(wait)  # deliver what is due, then keep the pace
                    rest = t0 + (ts - first_ts) / 1000.0 / speed - time.monotonic()
                    if rest > 0:
                        time.sleep(rest)
            while True:
                try:
                    produce(target, r["value"], r["key"], **kwargs)
                    break
                except BufferError:
                    poll(0.05)
            stats.per_topic[target] += 1
        stats.messages += len(batch)
        poll(0)
        if progress:
            progress(len(batch))
    remaining = producer.flush(60)
    stats.elapsed_s = time.monotonic() - t0
    stats.skipped = reader.skipped
    if remaining:
        raise ReplayError(f"{remaining} message(s) still undelivered after 60 s")
    if failures.count:
        raise ReplayError(f"{failures.count} message(s) failed delivery; first: {failures.first}")
    return stats
