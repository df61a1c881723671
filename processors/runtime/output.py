"""The one Kafka output of a worker: an idempotent confluent-kafka producer
(acks=all) for its output topics and dead letters.

faust's own producer costs ~100 us per message, so workers write with this one.
An agent awaits ``flush()`` (off the event loop) before its batch is acknowledged:
an input offset is committed only after what it produced is on the broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eunomia.config import Settings
from eunomia.processors.runtime.metrics import EVENTS_OUT

__all__ = ["HIGH_VOLUME", "KafkaOutput"]

# for a worker whose every input event is an output (enrich): larger batches, lz4,
# and room for a large batch of input in librdkafka's queue
HIGH_VOLUME: dict[str, Any] = {"linger.ms": 10, "batch.size": 512 * 1024, "compression.type": "lz4",
                               "queue.buffering.max.messages": 500_000}


class KafkaOutput:
    """produce (waiting for room when librdkafka's queue is full), flush, len."""

    def __init__(self, settings: Settings, *, name: str = "", **conf: Any) -> None:
        from confluent_kafka import Producer

        self.name = name  # the worker, for the events-out counter

        self._producer = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True,
                                   "acks": "all", "linger.ms": 5, **conf})

    def __len__(self) -> int:
        """Messages produced and not yet acknowledged."""
        return len(self._producer)

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
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
