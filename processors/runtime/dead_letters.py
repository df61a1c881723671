"""Dead letters: input a processor cannot use goes to the ``dlq`` topic, never lost
and never fatal.

Each dead letter is a ``dead_letter`` Avro record (processor, source topic,
partition, offset, error type and message, the original key and value bytes);
the reason is repeated in Kafka headers (``eunomia-error-type``,
``eunomia-error``, ``eunomia-processor``, ``eunomia-source``) so a consumer can
triage without decoding. Key: the source ``topic/partition/offset``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from eunomia.config import Settings
from eunomia.schemas import AvroCodec

__all__ = ["DeadLetters", "Sink"]

log = logging.getLogger(__name__)
MAX_ERROR = 2000
# (key, value, headers) -> None; must not block (faust: topic.send_soon)
Sink = Callable[[bytes, bytes, list[tuple[str, bytes]]], None]


class DeadLetters:
    """Builds and sends dead letters for one processor."""

    def __init__(self, processor: str, sink: Sink, codec: AvroCodec | None = None) -> None:
        self.processor = processor
        self.sink = sink
        self.codec = codec or AvroCodec()
        self.count = 0

    @classmethod
    def for_producer(cls, producer: Any, settings: Settings, processor: str,
                     codec: AvroCodec | None = None) -> DeadLetters:
        """Dead letters sent through a confluent-kafka producer (see ``app.fast_producer``)."""
        from eunomia.processors.runtime.app import produce

        name = settings.topic("dlq")

        def sink(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
            produce(producer, name, key, value, headers)

        return cls(processor, sink, codec)

    @classmethod
    def for_app(cls, app: Any, settings: Settings, processor: str,
                codec: AvroCodec | None = None) -> DeadLetters:
        """Dead letters sent through a faust app's producer (ordered with its other output)."""
        topic = app.topic(settings.topic("dlq"), key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")

        def sink(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
            topic.send_soon(key=key, value=value, headers=headers)

        return cls(processor, sink, codec)

    def record(self, topic: str, partition: int, offset: int, key: bytes | None,
               value: bytes | None, exc: BaseException) -> dict[str, Any]:
        return {"processor": self.processor, "topic": topic, "partition": partition,
                "offset": offset, "ts_ns": time.time_ns(), "error_type": type(exc).__name__,
                "error": str(exc)[:MAX_ERROR] or repr(exc)[:MAX_ERROR],
                "key": bytes(key) if key is not None else None,
                "value": bytes(value) if value is not None else None}

    def send(self, topic: str, partition: int, offset: int, key: bytes | None,
             value: bytes | None, exc: BaseException) -> None:
        rec = self.record(topic, partition, offset, key, value, exc)
        headers = [("eunomia-error-type", rec["error_type"].encode()),
                   ("eunomia-error", rec["error"].encode()),
                   ("eunomia-processor", self.processor.encode()),
                   ("eunomia-source", f"{topic}/{partition}/{offset}".encode())]
        self.sink(f"{topic}/{partition}/{offset}".encode(),
                  self.codec.encode("dead_letter", rec), headers)
        self.count += 1
        if self.count <= 10 or self.count % 1000 == 0:
            log.warning("dead letter #%d from %s/%d@%d: %s: %s", self.count, topic, partition,
                        offset, rec["error_type"], rec["error"][:200])
