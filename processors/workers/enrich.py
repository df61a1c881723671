"""``eunomia worker enrich``: raw.events + raw.syscalls x containers + lineage ->
enriched.events, the pure ``Enricher`` wired to faust.

One agent reads both raw topics (both keyed by host_id, so a host's events and
syscall counts meet on one worker) in batches. Lineage and held events live in
changelog-backed tables written to the changelog partition of the event that
changed them; after a rebalance the enricher re-reads its held keys. Containers
come from every worker's own copy of the compacted topic (``ContainerFeed``),
started with the agent so the first events find the directory loaded.

Run: ``eunomia worker enrich`` or ``faust -A eunomia.processors.workers.enrich worker``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from prometheus_client import Counter, Gauge

from eunomia.config import Settings
from eunomia.processors.enrich.enricher import HEARTBEAT, Enricher, Output
from eunomia.processors.enrich.lineage import CachedMapping
from eunomia.processors.enrich.oversize import fit_args
from eunomia.processors.runtime.app import flush_tables, partitioned_table, tables_ready
from eunomia.processors.runtime.container_feed import ContainerFeed
from eunomia.processors.runtime.output import HIGH_VOLUME, OversizedRecord
from eunomia.processors.runtime.worker import Worker
from eunomia.schemas import CodecError

__all__ = ["EnrichWorker"]

log = logging.getLogger(__name__)
BATCH = 2000
EVICTED = Counter("eunomia_enrich_lineage_evicted", "Live processes evicted from the lineage "
                  "past enrich.max_processes (least recently seen first)")
PROCESSES = Gauge("eunomia_enrich_lineage_processes", "Processes in this worker's lineage bound")
TOO_LARGE = Counter("eunomia_enrich_oversized", "Enriched events over the record size limit, by "
                    "outcome (truncated argv, dead-lettered)", ["outcome"])
# bad input, and records the enricher cannot use: dead letters, never a crash
ENRICH_ERRORS = (CodecError, KeyError, TypeError, ValueError)


class EnrichWorker(Worker):
    """The ``enrich`` agent, the ``lineage`` and ``pending`` tables, the release timer."""

    def __init__(self, settings: Settings, *, grace_s: float = 5.0, exit_grace_s: float = 120.0,
                 max_wall_hold_s: float = 30.0, **app_options: Any) -> None:
        super().__init__("enrich", settings, output_conf=HIGH_VOLUME,
                         **app_options)
        self.lineage = partitioned_table(self.app, "lineage", help="live processes by exec_id")
        self.pending = partitioned_table(self.app, "pending", help="events held for a container record")
        self.enricher = Enricher(CachedMapping(self.lineage), CachedMapping(self.pending),
                                 grace_ns=int(grace_s * 1e9), exit_grace_ns=int(exit_grace_s * 1e9),
                                 max_wall_hold_s=max_wall_hold_s,
                                 max_procs=settings.enrich.max_processes)
        self.enricher.set_partition = self.set_partition
        self.feed = ContainerFeed(settings, self.codec)
        self.events_topic = settings.topic("raw.events")
        self.source = self.topic("raw.events", "raw.syscalls")
        self.out_topic = settings.topic("enriched.events")
        self.reload_needed = True  # held keys to re-read once the tables are recovered
        self.evicted_seen = 0
        self.agent = self.app.agent(self.source, name="enrich")(self.enrich)
        self.app.timer(0.5)(self.release_held)
        self.app.on_partitions_assigned.connect(self.on_rebalance)
        self.app.on_partitions_revoked.connect(self.on_rebalance)
        self.app.on_before_shutdown.connect(self.on_shutdown)

    def set_partition(self, p: int) -> None:
        self.lineage.write_partition = p
        self.pending.write_partition = p

    async def enrich(self, stream: faust.StreamT) -> None:
        """The agent: enrich a batch, then wait until its output and the lineage
        and holds it changed are on the broker before the batch is acked."""
        self.feed.start()  # app tasks start only after the first recovery: too late
        for _ in range(600):  # the first events should find the directory loaded
            if self.feed.ready.is_set():
                break
            await asyncio.sleep(0.05)
        async for batch in stream.take_events(BATCH, within=0.1):
            batch = await self.guard.admit(batch)
            if not batch:
                continue
            while not self.maybe_reload():  # events fetched while a rebalance recovers tables
                await asyncio.sleep(0.05)
            batch = self.owned(batch)
            self.drain_feed()
            for msg, outs in self.dlq.decoded(batch, self.enrich_one, ENRICH_ERRORS):
                self.emit(outs, msg)
            self.export_bounds()
            await self.out.flush()
            await flush_tables(self.app)

    def export_bounds(self) -> None:
        lin = self.enricher.lineage
        if lin.evicted > self.evicted_seen:
            EVICTED.inc(lin.evicted - self.evicted_seen)
            self.evicted_seen = lin.evicted
        PROCESSES.set(lin.tracked)

    def enrich_one(self, msg: Any) -> list[Output]:
        p = msg.partition
        self.set_partition(p)
        self.enricher.partition = p
        if msg.topic == self.events_topic:
            return self.enricher.on_raw_event(self.codec.decode(msg.value, expect="raw_event"))
        return self.enricher.on_syscalls(self.codec.decode(msg.value, expect="syscall_counts"))

    def emit(self, outs: list[Output], source: Any = None) -> None:
        """Enriched events to their topic; one over the record limit has its argv
        cut (header ``eunomia-truncated``), or is a dead letter of ``source``
        (the input message) when even that is not enough."""
        limit = self.out.limit(self.out_topic)
        for key, rec in outs:
            try:
                fitted = fit_args(rec, lambda r: self.codec.encode("enriched_event", r),
                                  limit - len(key) - 64)
            except CodecError as exc:  # a bug, not bad input: say so, keep going
                log.error("enriched event %s does not fit the schema: %s", rec["event"]["id"], exc)
                continue
            if fitted is None:
                TOO_LARGE.labels("dead-lettered").inc()
                if source is not None:
                    self.dlq.send(source.topic, source.partition, source.offset, source.key,
                                  source.value, OversizedRecord(
                                      f"enriched event {rec['event']['id']} over the {limit}-byte "
                                      "limit even without argv"))
                else:
                    log.error("enriched event %s over the %d-byte limit even without argv: "
                              "not written", rec["event"]["id"], limit)
                continue
            value, cut = fitted
            headers = None
            if cut:
                TOO_LARGE.labels("truncated").inc()
                headers = [("eunomia-truncated", f"argv: {cut} bytes cut".encode())]
            if rec["event"]["kind"] == HEARTBEAT:  # every partition holds some of the host's events
                for partition in range(self.settings.topics.partitions):
                    self.out.produce(self.out_topic, key.encode(), value, headers, partition=partition)
            else:
                self.out.produce(self.out_topic, key.encode(), value, headers)

    def drain_feed(self) -> None:
        for item in self.feed.drain():
            if item[0] == "ok":
                self.emit(self.enricher.on_container(item[1], item[2]))
            else:
                _, p, off, key, value, exc = item
                self.dlq.send(self.feed.topic, p, off, key, value, exc)

    def maybe_reload(self) -> bool:
        """Re-read held keys once the tables are recovered; False while they are not."""
        if self.reload_needed:
            if not tables_ready(self.app):
                return False
            self.reload_needed = False
            self.enricher.reload_pending()
        return True

    def owned(self, batch: list[Any]) -> list[Any]:
        """Events of partitions still assigned: one fetched before a rebalance that
        moved its partition is the new owner's to enrich (it reads it again from
        the committed offset), and its state changes belong to that owner."""
        assigned = self.app.consumer.assignment()
        keep = []
        for ev in batch:
            if ev.message.tp in assigned:
                keep.append(ev)
            else:
                ev.message.acked = True  # not ours to acknowledge either
        return keep

    async def release_held(self) -> None:
        """Timer: release held events whose container record arrived (after a
        rebalance, held keys are re-read here too, for partitions with no new event)."""
        if not self.maybe_reload():
            return
        self.drain_feed()
        self.emit(self.enricher.tick())
        await self.out.flush()

    async def on_rebalance(self, sender: Any, partitions: Any, **kw: Any) -> None:
        self.reload_needed = True

    async def on_shutdown(self, sender: Any, **kw: Any) -> None:
        self.feed.stop()
        self.out.flush_blocking(30)


def __getattr__(name: str) -> Any:
    """``faust -A eunomia.processors.workers.enrich worker`` finds ``app`` here (built on first use)."""
    if name == "app":
        from eunomia.config import load_settings

        global app
        app = EnrichWorker(load_settings()).app
        return app
    raise AttributeError(name)
