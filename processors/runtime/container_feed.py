"""Every worker's copy of the compacted ``containers`` topic.

The topic is keyed ``host_id/cgroup_id`` while raw events are keyed by host, so
it cannot be co-partitioned with them: each worker reads all of it (it is small:
one record per live container) with a group-less consumer in a thread, from the
beginning, and hands records to the event loop through a queue. ``ready`` is set
once the end offsets seen at start are reached, so the first events are not held
merely because the directory was still loading.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from eunomia.config import Settings
from eunomia.schemas import AvroCodec, CodecError

__all__ = ["ContainerFeed"]

log = logging.getLogger(__name__)


class ContainerFeed:
    """Thread reading the containers topic; ``drain()`` from the event loop."""

    def __init__(self, settings: Settings, codec: AvroCodec) -> None:
        self.topic = settings.topic("containers")
        self.codec = codec
        self.conf = {**settings.kafka.librdkafka(), "group.id": f"eunomia-containers-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "auto.offset.reset": "earliest"}
        # ("ok", key, record | None) or ("bad", partition, offset, key, value, exc)
        self.queue: deque[tuple[Any, ...]] = deque()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading (once; later calls do nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="container-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def drain(self) -> list[tuple[Any, ...]]:
        out = []
        q = self.queue
        while q:
            out.append(q.popleft())
        return out

    def _run(self) -> None:
        consumer = Consumer(self.conf)
        try:
            md = None
            while md is None and not self._stop.is_set():
                md = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
                if md is None or md.error is not None or not md.partitions:
                    md = None
                    self._stop.wait(1)
            if md is None:
                return
            parts = sorted(md.partitions)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            at_end: set[int] = set()
            for p in parts:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
                if hi <= lo:
                    at_end.add(p)
            if len(at_end) == len(parts):
                self.ready.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        if len(at_end) == len(parts):
                            self.ready.set()
                    else:
                        log.warning("containers feed: %s", err)
                    continue
                self._handle(msg)
        finally:
            consumer.close()

    def _handle(self, msg: Any) -> None:
        raw_key = msg.key()
        value = msg.value()
        try:
            if raw_key is None:
                raise CodecError("container record without a key (want host_id/cgroup_id)")
            key = raw_key.decode()
            record = None if value is None else self.codec.decode(value, expect="container")
            self.queue.append(("ok", key, record))
        except (CodecError, UnicodeDecodeError) as exc:
            self.queue.append(("bad", msg.partition(), msg.offset(), raw_key, value, exc))
