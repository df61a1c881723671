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
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from eunomia.processors.runtime.metrics import DEAD_LETTERS, EVENTS_IN
from eunomia.processors.runtime.output import KafkaOutput
from eunomia.schemas import AvroCodec, CodecError

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)
MAX_ERROR = 2000
T = TypeVar("T")


class DeadLetters:
    """Builds dead letters for one processor and sends them to ``topic``."""

    def __init__(self, processor: str, output: KafkaOutput, topic: str,
                 codec: AvroCodec | None = None) -> None:
        self.processor = processor
        self.output = output
        self.topic = topic
        self.codec = codec or AvroCodec()
        self.count = 0
        self.next_offset: dict[tuple[str, int], int] = {}  # input position, for the lag gauge

    def decoded(self, events: Iterable[Any], decode: Callable[[Any], T],
                errors: tuple[type[Exception], ...] = (CodecError,)) -> Iterator[tuple[Any, T]]:
        """(message, ``decode(message)``) of each faust event; a message whose
        decode raises one of ``errors`` becomes a dead letter instead. Counts
        the events in and notes the input position."""
        for ev in events:
            msg = ev.message
            EVENTS_IN.labels(self.processor, msg.topic).inc()
            self.next_offset[(msg.topic, msg.partition)] = msg.offset + 1
            try:
                value = decode(msg)
            except errors as exc:
                self.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value, exc)
                continue
            yield msg, value

    def record(self, topic: str, partition: int, offset: int, key: bytes | None,
               value: bytes | None, exc: BaseException) -> dict[str, Any]:
        return {"processor": self.processor, "topic": topic, "partition": partition,
                "offset": offset, "ts_ns": time.time_ns(), "error_type": type(exc).__name__,
                "error": str(exc)[:MAX_ERROR] or repr(exc)[:MAX_ERROR],
                "key": bytes(key) if key is not None else None,
                "value": bytes(value) if value is not None else None}

    def send(self, topic: str, partition: int, offset: int, key: bytes | None,
             value: bytes | None, exc: BaseException) -> None:
        """One dead letter; one over the dlq topic's limit carries its source's
        reference (topic/partition/offset, also the key) without the original
        bytes, flagged in the error and the ``eunomia-omitted`` header."""
        rec = self.record(topic, partition, offset, key, value, exc)
        ref = f"{topic}/{partition}/{offset}"
        headers = [("eunomia-error-type", rec["error_type"].encode()),
                   ("eunomia-processor", self.processor.encode()),
                   ("eunomia-source", ref.encode())]
        encoded = self.codec.encode("dead_letter", rec)
        limit = self.output.limit(self.topic)
        if len(encoded) + len(ref) + len(rec["error"]) + 256 > limit:
            omitted = len(rec["value"] or b"") + len(rec["key"] or b"")
            rec["error"] = (f"{rec['error'][:MAX_ERROR]} [original key and value ({omitted} bytes) "
                            f"omitted: over the {limit}-byte dead-letter limit; they stay at {ref}]")
            rec["key"] = rec["value"] = None
            headers.append(("eunomia-omitted", str(omitted).encode()))
            encoded = self.codec.encode("dead_letter", rec)
        headers.insert(1, ("eunomia-error", rec["error"].encode()))
        self.output.produce(self.topic, ref.encode(), encoded, headers)
        self.count += 1
        DEAD_LETTERS.labels(self.processor, topic).inc()
        if self.count <= 10 or self.count % 1000 == 0:
            log.warning("dead letter #%d from %s/%d@%d: %s: %s", self.count, topic, partition,
                        offset, rec["error_type"], rec["error"][:200])
