"""`eunomia alerts tail`: alerts from the topic, as a SIEM would read them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, TopicPartition

from eunomia.config import Settings
from eunomia.schemas import CodecError, codec_for

__all__ = ["tail_alerts"]


def tail_alerts(settings: Settings, *, follow: bool, last: int | None = None,
                idle_timeout: float = 3.0) -> Iterator[dict]:
    """Yield decoded alerts from the start of the topic (or its last N per
    partition); without ``follow`` stop once the end is reached."""
    topic = settings.topic("alerts")
    from eunomia.kafka.reach import ClientErrors, metadata

    errors = ClientErrors()
    consumer = Consumer({**errors.config(settings), "group.id": f"eunomia-tail-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    codec = codec_for(settings)
    try:
        md = metadata(consumer, errors, settings, topic, timeout=10)
        parts = list(md.topics[topic].partitions) if topic in md.topics else []
        assignment = []
        for p in parts:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start = max(lo, hi - last) if last else lo
            assignment.append(TopicPartition(topic, p, start))
        consumer.assign(assignment)
        at_end: set[int] = set()
        idle_since = time.monotonic()
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                if not follow and (len(at_end) >= len(parts) or
                                   time.monotonic() - idle_since > idle_timeout):
                    return
                continue
            if msg.error():
                if msg.error().code() == -191:  # _PARTITION_EOF
                    at_end.add(msg.partition())
                continue
            idle_since = time.monotonic()
            try:
                yield codec.decode(msg.value(), "alert")
            except CodecError as exc:
                yield {"undecodable": str(exc), "offset": msg.offset(), "partition": msg.partition()}
    finally:
        consumer.close()


def format_alert(alert: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(alert, default=str, sort_keys=True)
    if "undecodable" in alert:
        return f"UNDECODABLE p{alert['partition']}@{alert['offset']}: {alert['undecodable']}"
    ts = time.strftime("%H:%M:%S", time.gmtime(alert["first_seen_ns"] / 1e9))
    where = alert.get("container_name") or alert.get("container_id") or alert["host_id"]
    return (f"{ts} {alert['level'].upper():<7} {alert['rule_id']:<30} {where:<24} "
            f"{alert['message']}  [{alert['alert_id'][:12]}]")
