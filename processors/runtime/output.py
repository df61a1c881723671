"""One idempotent confluent-kafka producer for a worker's outputs.

The seccomp, rules and health workers write alerts, profiles and dead letters
with it rather than with faust's sinks: each agent flushes it (off the event
loop) before it moves on, so an input offset is committed only after what it
produced was acknowledged, and nothing acknowledged upstream is lost.
"""

from __future__ import annotations

import asyncio

from eunomia.config import Settings

__all__ = ["WorkerOutput"]


class WorkerOutput:
    def __init__(self, settings: Settings, *, linger_ms: int = 5) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True,
                                  "acks": "all", "linger.ms": linger_ms})

    def produce(self, topic: str, key: bytes, value: bytes,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.05)

    async def flush(self, timeout: float = 60.0) -> None:
        if not len(self.producer):
            self.producer.poll(0)
            return
        left = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, timeout)
        if left:
            raise RuntimeError(f"{left} worker outputs not acknowledged after {timeout} s")
