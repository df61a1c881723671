"""The one Kafka output of a worker: an idempotent confluent-kafka producer
(acks=all) for its output topics and dead letters.

faust's own producer costs ~100 us per message, so workers write with this one.
An agent awaits ``flush()`` (off the event loop) before its batch is acknowledged:
an input offset is committed only after what it produced is on the broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from eunomia.config import Settings
from eunomia.processors.runtime.metrics import EVENTS_OUT

__all__ = ["HIGH_VOLUME", "KafkaOutput", "OversizedRecord"]

log = logging.getLogger(__name__)
RECORD_OVERHEAD = 512  # a record batch's framing around one record

# for a worker whose every input event is an output (enrich): larger batches, lz4,
# and room for a large batch of input in librdkafka's queue
HIGH_VOLUME: dict[str, Any] = {"linger.ms": 10, "batch.size": 512 * 1024, "compression.type": "lz4",
                               "queue.buffering.max.messages": 500_000}


class OversizedRecord(ValueError):
    """A record over its topic's size limit: the caller cuts it or dead-letters it."""


class KafkaOutput:
    """produce (waiting for room when librdkafka's queue is full), flush, len;
    ``limit(topic)``: the largest record the topic takes."""

    def __init__(self, settings: Settings, *, name: str = "", **conf: Any) -> None:
        from confluent_kafka import Producer

        self.name = name  # the worker, for the events-out counter
        self.settings = settings
        self.max_bytes = settings.kafka.max_message_bytes
        self._limits: dict[str, int] = {}
        self._producer = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True,
                                   "acks": "all", "linger.ms": 5,
                                   "message.max.bytes": self.max_bytes + RECORD_OVERHEAD, **conf})

    def limit(self, topic: str) -> int:
        """``kafka.max_message_bytes``, or the topic's lower ``max.message.bytes``
        once ``learn_limits`` has read it."""
        return self._limits.get(topic, self.max_bytes)

    def learn_limits(self, topics: list[str]) -> None:
        """Read the topics' ``max.message.bytes`` (blocking: run it off the event
        loop); a topic that takes less than the setting lowers its limit."""
        for topic in topics:
            topic_max = topic_max_bytes(self.settings, topic)
            if topic_max is not None and topic_max - RECORD_OVERHEAD < self.max_bytes:
                log.warning("topic %s takes records up to %d bytes, under kafka.max_message_bytes "
                            "%d: using the topic's", topic, topic_max, self.max_bytes)
                self._limits[topic] = topic_max - RECORD_OVERHEAD

    def __len__(self) -> int:
        """Messages produced and not yet acknowledged."""
        return len(self._producer)

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
        """Queue one record (to ``partition``, or the key's); ``OversizedRecord`` when it
        is over ``limit(topic)``; wait while the buffer is full."""
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or ())
        if size > self.limit(topic):
            raise OversizedRecord(f"{size}-byte record over the {self.limit(topic)}-byte limit of {topic}")
        extra = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, **extra)
                EVENTS_OUT.labels(self.name, topic).inc()
                return
            except BufferError:
                self._producer.poll(0.05)

    async def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything produced is acknowledged, without blocking the loop."""
        if not len(self._producer):
            self._producer.poll(0)
            return
        left = await asyncio.get_running_loop().run_in_executor(None, self._producer.flush, timeout)
        if left:
            raise RuntimeError(f"{left} output messages not acknowledged after {timeout} s")

    def flush_blocking(self, timeout: float) -> int:
        """At shutdown: wait up to ``timeout`` seconds; the number still unacknowledged."""
        return self._producer.flush(timeout)


def topic_max_bytes(settings: Settings, topic: str) -> int | None:
    """The topic's ``max.message.bytes``; None when it cannot be read (no such
    topic yet, or no right to describe it): the setting stands."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({k: v for k, v in settings.kafka.librdkafka().items() if k != "logger"})
    try:
        futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        configs = next(iter(futures.values())).result(timeout=10)
        return int(configs["max.message.bytes"].value)
    except Exception as exc:  # the limit check must not stop a worker
        log.info("max.message.bytes of %s not read (%s): kafka.max_message_bytes stands", topic, exc)
        return None
