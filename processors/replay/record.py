"""``eunomia record``: copy what flows on topics into a recording file.

Partitions are assigned directly (no consumer group, nothing committed), so a
recording never moves the offsets of the pipeline's own workers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from eunomia.config import Settings
from eunomia.errors import BrokerUnavailable
from eunomia.kafka.topics import TOPICS
from eunomia.processors.replay.recording import RecordedMessage, RecordingError, RecordingWriter

__all__ = ["RecordStats", "TopicStats", "record", "resolve_topic"]

_LOGICAL = {spec.name for spec in TOPICS}


def resolve_topic(settings: Settings, name: str) -> str:
    """A logical name (``raw.events``) gets the configured prefix; anything
    else is taken as a full topic name."""
    return settings.topic(name) if name in _LOGICAL else name


def logical_names(settings: Settings, topics: list[str]) -> dict[str, str]:
    """Full name -> logical name for the topics that are the pipeline's own, so
    a replay can find the same topic under another prefix."""
    out = {}
    for full in topics:
        for name in _LOGICAL:
            if full == settings.topic(name):
                out[full] = name
    return out


@dataclass
class TopicStats:
    partitions: set[int] = field(default_factory=set)
    messages: int = 0
    bytes: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None


@dataclass
class RecordStats:
    path: Path
    topics: dict[str, TopicStats]
    elapsed_s: float = 0.0
    stopped_by: str = ""

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.topics.values())


def _consumer(settings: Settings) -> Consumer:
    conf = settings.kafka.librdkafka() | {
        "group.id": f"eunomia-record-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "queued.min.messages": 200000,
    }
    return Consumer(conf)


def _assignment(consumer: Consumer, topics: list[str], from_beginning: bool
                ) -> tuple[list[TopicPartition], dict[tuple[str, int], int]]:
    """Partitions to read and, per partition, the high watermark now (where
    ``--to-end`` stops)."""
    try:
        meta = consumer.list_topics(timeout=15)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no Kafka broker answered: {exc.args[0].str()}") from None
    missing = [t for t in topics if t not in meta.topics or meta.topics[t].error is not None]
    if missing:
        raise RecordingError(f"topic(s) not found: {', '.join(missing)}")
    parts, ends = [], {}
    for t in topics:
        for p in sorted(meta.topics[t].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=15)
            ends[(t, p)] = high
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            parts.append(TopicPartition(t, p, start))
            if from_beginning and high <= low:
                ends[(t, p)] = -1  # empty: nothing to wait for
    return parts, ends


def record(settings: Settings, topics: list[str], out: Path, *, from_beginning: bool = False,
           max_events: int | None = None, duration: float | None = None, to_end: bool = False,
           codec: str = "zstandard", progress: Callable[[int], None] | None = None,
           ready: Callable[[], None] | None = None) -> RecordStats:
    """Record until ``max_events``, ``duration``, the end of every partition as
    it was at start (``to_end``), or Ctrl-C; the file is complete in every case.
    ``ready`` is called once partitions are assigned (tests produce after it)."""
    full = [resolve_topic(settings, t) for t in topics]
    consumer = _consumer(settings)
    stats = RecordStats(out, {t: TopicStats() for t in full})
    try:
        parts, ends = _assignment(consumer, full, from_beginning)
        pending = {tp for tp, high in ends.items() if high > 0} if from_beginning else set()
        if not from_beginning and to_end:
            raise RecordingError("--to-end needs --from-beginning (without it nothing is behind)")
        consumer.assign(parts)
        if ready:
            ready()
        t0 = time.monotonic()
        deadline = t0 + duration if duration else None
        with RecordingWriter(out, full, codec=codec, logical=logical_names(settings, full)) as writer:
            try:
                stats.stopped_by = _loop(consumer, writer, stats, max_events, deadline,
                                         pending if to_end else None, ends, progress)
            except KeyboardInterrupt:
                stats.stopped_by = "interrupted"
        stats.elapsed_s = time.monotonic() - t0
    finally:
        consumer.close()
    return stats


def _loop(consumer: Consumer, writer: RecordingWriter, stats: RecordStats, max_events: int | None,
          deadline: float | None, pending: set[tuple[str, int]] | None,
          ends: dict[tuple[str, int], int], progress: Callable[[int], None] | None) -> str:
    count = 0
    while True:
        if pending is not None and not pending:
            return "end of topics"
        if deadline is not None and time.monotonic() >= deadline:
            return "duration"
        want = 10000 if max_events is None else min(10000, max_events - count)
        batch = consumer.consume(num_messages=want, timeout=0.2)
        for m in batch:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise BrokerUnavailable(f"consumer failed: {err.str()}")
                continue
            topic, part, off = m.topic(), m.partition(), m.offset()
            ts_type, ts = m.timestamp()
            value, key = m.value(), m.key()
            writer.write(RecordedMessage(topic, part, off, ts, value, key,
                                         list(m.headers() or ()), ts_type))
            st = stats.topics[topic]
            st.partitions.add(part)
            st.messages += 1
            st.bytes += len(value or b"") + len(key or b"")
            st.first_ts_ms = ts if st.first_ts_ms is None else min(st.first_ts_ms, ts)
            st.last_ts_ms = ts if st.last_ts_ms is None else max(st.last_ts_ms, ts)
            count += 1
            if pending is not None and off + 1 >= ends[(topic, part)]:
                pending.discard((topic, part))
        if pending and not batch:
            # the last offsets may be transaction markers no message carries
            for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    pending.discard((tp.topic, tp.partition))
        if progress and batch:
            progress(len(batch))
        if max_events is not None and count >= max_events:
            return "max events"

