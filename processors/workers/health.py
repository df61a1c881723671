"""``eunomia worker health``: evidence that did not arrive becomes an alert.

Two sources, both keyed by host: the producers' heartbeats on producer.health
(drops by cause, and seq ranges the producer knows it lost, e.g. spool full),
and the seq numbers on raw.events themselves (a gap the producer could not
know about). Either raises a ``producer-gap`` alert naming the host and the seq
range; growing ring-buffer drops raise ``producer-drops``. The alert id is
deterministic over (rule, host, first lost seq), so the same range reported by
both sources is one alert to a SIEM.

A seq lower than the last one seen is a producer restart (seq starts again at
1), not a gap.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from eunomia.config import Settings
from eunomia.kafka.topics import TOPICS
from eunomia.processors.alerts import alert_id
from eunomia.processors.runtime.app import create_app, flush_tables, partitioned_table
from eunomia.processors.runtime.dead_letters import DeadLetters
from eunomia.processors.runtime.offset_guard import OffsetGuard
from eunomia.processors.runtime.output import WorkerOutput
from eunomia.schemas import AvroCodec, CodecError

__all__ = ["GapTracker", "build_app", "drop_alert", "gap_alert"]

log = logging.getLogger(__name__)
GAP_RULE, DROP_RULE = "producer-gap", "producer-drops"
SEVERITY_HIGH, SEVERITY_MEDIUM = 4, 3


def gap_alert(host: str, boot: str, first: int, last: int, ts_ns: int, source: str) -> dict[str, Any]:
    n = last - first + 1
    return {
        "alert_id": alert_id(GAP_RULE, host, f"{boot}:{first}"), "rule_id": GAP_RULE,
        "rule_name": "Producer lost events",
        "description": "Events of this host never reached Kafka: the evidence has a hole.",
        "level": "alert", "severity_id": SEVERITY_HIGH, "tags": ["pipeline", "integrity"],
        "message": f"producer {host} lost raw.events seq {first}-{last} ({n} events, seen by {source})",
        "group_key": host, "first_seen_ns": ts_ns, "last_seen_ns": ts_ns, "event_count": n,
        "events": [], "host_id": host,
        "fields": {"boot_id": boot, "first_seq": str(first), "last_seq": str(last), "source": source},
    }


def drop_alert(host: str, boot: str, cause: str, total: int, delta: int, ts_ns: int) -> dict[str, Any]:
    return {
        "alert_id": alert_id(DROP_RULE, f"{host}|{cause}", f"{boot}:{total}"), "rule_id": DROP_RULE,
        "rule_name": "Producer dropped events",
        "description": "The producer could not capture or keep some events (counted, not silent).",
        "level": "warning", "severity_id": SEVERITY_MEDIUM, "tags": ["pipeline", "integrity"],
        "message": f"producer {host} dropped {delta} events ({cause}; {total} since start)",
        "group_key": f"{host}|{cause}", "first_seen_ns": ts_ns, "last_seen_ns": ts_ns,
        "event_count": delta, "events": [], "host_id": host,
        "fields": {"boot_id": boot, "cause": cause, "total": str(total)},
    }


class GapTracker:
    """Pure state: last seq per (host, boot), ranges and drop totals already reported."""

    def __init__(self, state: Any = None) -> None:
        self.state: Any = state if state is not None else {}

    def on_seq(self, host: str, boot: str, seq: int, ts_ns: int) -> list[dict[str, Any]]:
        key = f"seq|{host}|{boot}"
        last = self.state.get(key)
        self.state[key] = seq
        if last is None or seq <= last or seq == last + 1:
            return []
        return self._report(host, boot, last + 1, seq - 1, ts_ns, "raw.events seq")

    def on_health(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        host, boot, ts = rec["host_id"], rec["boot_id"], rec["ts_ns"]
        out: list[dict[str, Any]] = []
        for r in rec.get("lost_ranges") or []:
            out += self._report(host, boot, r["first"], r["last"], ts, "producer.health")
        for cause, total in (rec.get("drops_by_cause") or {}).items():
            key = f"drops|{host}|{boot}|{cause}"
            before = self.state.get(key) or 0
            if total > before:
                self.state[key] = total
                out.append(drop_alert(host, boot, cause, total, total - before, ts))
        return out

    def _report(self, host: str, boot: str, first: int, last: int, ts: int, source: str
                ) -> list[dict[str, Any]]:
        """Name each lost seq once. A heartbeat's range can grow after it was reported:
        a heartbeat fits in a full spool where the next raw event does not, so it
        carries (a, b) while b+1.. are still being dropped, and the next heartbeat
        merges them into (a, c). Only the part not named yet, (b+1, c), is new."""
        start = first
        while True:
            done = self.state.get(f"gap|{host}|{boot}|{start}")
            if done is None:
                break
            if done >= last:
                return []
            start = done + 1
        self.state[f"gap|{host}|{boot}|{first}"] = last
        self.state[f"gap|{host}|{boot}|{start}"] = last
        return [gap_alert(host, boot, start, last, ts, source)]


def build_app(settings: Settings, *, store: str = "memory://", web_port: int | None = None,
              datadir: Any = None) -> faust.App:
    app = create_app("health", settings, store=store, web_port=web_port, datadir=datadir)
    guard = OffsetGuard.install(app)  # input faust's stream skipped is read again
    codec = AvroCodec()
    # each table is co-partitioned with the topic that feeds it (faust waits
    # forever on a table whose partition count differs from its source's)
    parts = {spec.name: spec.partitions or settings.topics.partitions for spec in TOPICS}
    seq_table = partitioned_table(app, "seq", partitions=parts["raw.events"],
                                  help="last raw.events seq per host/boot, reported gaps")
    health_table = partitioned_table(app, "reported", partitions=parts["producer.health"],
                                     help="reported lost ranges and drop totals")
    out = WorkerOutput(settings)
    dlq_name, alerts_name = settings.topic("dlq"), settings.topic("alerts")
    dlq = DeadLetters("health", lambda k, v, h: out.produce(dlq_name, k, v, h), codec)
    raw = app.topic(settings.topic("raw.events"), key_type=bytes, value_type=bytes,
                    key_serializer="raw", value_serializer="raw")
    beats = app.topic(settings.topic("producer.health"), key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    def emit(alerts: list[dict[str, Any]]) -> None:
        for a in alerts:
            log.warning("%s", a["message"])
            out.produce(alerts_name, a["alert_id"].encode(), codec.encode("alert", a))

    @app.agent(raw, name="health-seq")
    async def seqs(stream: faust.StreamT) -> None:
        tracker = GapTracker(seq_table)
        async for events in stream.take_events(2000, within=0.1):
            for ev in await guard.admit(events):
                msg = ev.message
                try:
                    rec = codec.decode(msg.value, expect="raw_event")
                except CodecError as exc:
                    dlq.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value, exc)
                    continue
                seq_table.write_partition = msg.partition
                emit(tracker.on_seq(rec["host_id"], rec["boot_id"], rec["seq"], rec["ts_ns"]))
            await out.flush()
            await flush_tables(app)  # the seq tracker's state is durable before the batch is acked

    @app.agent(beats, name="health-beats")
    async def heartbeats(stream: faust.StreamT) -> None:
        tracker = GapTracker(health_table)
        async for ev in stream.events():
            if not await guard.admit_one(ev):
                continue
            msg = ev.message
            try:
                rec = codec.decode(msg.value, expect="producer_health")
            except CodecError as exc:
                dlq.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value, exc)
                await out.flush()
                continue
            health_table.write_partition = msg.partition
            emit(tracker.on_health(rec))
            await out.flush()
            await flush_tables(app)

    app.eunomia = {"started": time.time()}
    return app
