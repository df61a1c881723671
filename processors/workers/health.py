"""``eunomia worker health``: evidence that did not arrive becomes an alert.

Two agents, each with a ``GapTracker`` (``processors/health/gaps.py``) whose
state is a table co-partitioned with its input: ``health-seq`` follows the seq
numbers on raw.events, ``health-beats`` the producers' heartbeats on
producer.health.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from eunomia.config import Settings
from eunomia.kafka.topics import TOPICS
from eunomia.processors.health.gaps import GapTracker
from eunomia.processors.runtime.app import flush_tables, partitioned_table
from eunomia.processors.runtime.worker import Worker

__all__ = ["HealthWorker"]

log = logging.getLogger(__name__)


class HealthWorker(Worker):
    """The ``health-seq`` and ``health-beats`` agents and their tables."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        super().__init__("health", settings, **app_options)
        # each table is co-partitioned with the topic that feeds it (faust waits
        # forever on a table whose partition count differs from its source's)
        parts = {spec.name: spec.partitions or settings.topics.partitions for spec in TOPICS}
        self.seq_table = partitioned_table(self.app, "seq", partitions=parts["raw.events"],
                                           help="last raw.events seq per host/boot, reported gaps")
        self.health_table = partitioned_table(self.app, "reported",
                                              partitions=parts["producer.health"],
                                              help="reported lost ranges and drop totals")
        self.raw = self.topic("raw.events")
        self.beats = self.topic("producer.health")
        self.seq_agent = self.app.agent(self.raw, name="health-seq")(self.seqs)
        self.beats_agent = self.app.agent(self.beats, name="health-beats")(self.heartbeats)

    def emit(self, alerts: list[dict[str, Any]]) -> None:
        for a in alerts:
            log.warning("%s", a["message"])
            self.emit_alert(a)

    async def seqs(self, stream: faust.StreamT) -> None:
        """Agent: seq gaps on raw.events; the tracker's state is durable before
        the batch is acked."""
        tracker = GapTracker(self.seq_table)
        decode = self.decoder("raw_event")
        async for events in stream.take_events(2000, within=0.1):
            for msg, rec in self.dlq.decoded(await self.guard.admit(events), decode):
                self.seq_table.write_partition = msg.partition
                self.emit(tracker.on_seq(rec["host_id"], rec["boot_id"], rec["seq"], rec["ts_ns"]))
            await self.out.flush()
            await flush_tables(self.app)

    async def heartbeats(self, stream: faust.StreamT) -> None:
        """Agent: lost ranges and drops the producers report, one heartbeat at a time."""
        tracker = GapTracker(self.health_table)
        decode = self.decoder("producer_health")
        async for ev in stream.events():
            if not await self.guard.admit_one(ev):
                continue
            for msg, rec in self.dlq.decoded([ev], decode):
                self.health_table.write_partition = msg.partition
                self.emit(tracker.on_health(rec))
            await self.out.flush()
            await flush_tables(self.app)
