"""The enrich processor: raw.events + raw.syscalls x containers + lineage -> enriched.events.

One agent reads both raw topics (both keyed by host_id, so a host's events and
syscall counts arrive on the same partition number and the same worker) in
batches (``take_events``: faust's per-event overhead is paid per batch). The
pure ``Enricher`` does the work; this module only wires it to faust:

- lineage and held events live in changelog-backed tables (``lineage``,
  ``pending``), written only when they change, each change sent to the
  changelog partition of the input event that caused it (``PartitionedTable``);
  a rebalance or restart rebuilds them and the engine re-reads its indexes;
- containers come from every worker's own copy of the compacted topic
  (``ContainerFeed``), read from the moment the agent starts (not after the
  first assignment: a successor would otherwise hold its first events as if
  their records were late); a timer releases held events whose record arrived;
- ``OffsetGuard`` has input that faust's stream skipped read again;
- undecodable or schema-invalid input, and records that cannot be enriched,
  go to the DLQ; the worker keeps running;
- output goes through a confluent-kafka producer flushed before each batch is
  acked (faust's producer was the bottleneck).

Run: ``eunomia worker enrich`` or ``faust -A eunomia.processors.workers.enrich worker``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from eunomia.config import Settings
from eunomia.processors.enrich.enricher import Enricher, Output
from eunomia.processors.enrich.lineage import CachedMapping
from eunomia.processors.runtime.app import (
    create_app,
    fast_producer,
    flush_async,
    flush_tables,
    partitioned_table,
    produce,
    tables_ready,
)
from eunomia.processors.runtime.container_feed import ContainerFeed
from eunomia.processors.runtime.dead_letters import DeadLetters
from eunomia.processors.runtime.offset_guard import OffsetGuard
from eunomia.schemas import AvroCodec, CodecError

__all__ = ["build_app", "make_codec"]

log = logging.getLogger(__name__)
BATCH = 2000


def make_codec(settings: Settings) -> AvroCodec:
    if settings.kafka.schema_registry_url:
        from eunomia.schemas import default_store
        from eunomia.schemas.registry import RegistryResolver

        store = default_store()
        return AvroCodec(store, RegistryResolver(settings.kafka.schema_registry_url, store))
    return AvroCodec()


def build_app(settings: Settings, *, store: str = "memory://", web_port: int | None = None,
              datadir: Any = None, grace_s: float = 5.0, exit_grace_s: float = 120.0,
              max_wall_hold_s: float = 30.0) -> faust.App:
    """The enrich app with its agent, tables and timer."""
    app = create_app("enrich", settings, store=store, web_port=web_port, datadir=datadir)
    codec = make_codec(settings)
    lineage_t = partitioned_table(app, "lineage", help="live processes by exec_id")
    pending_t = partitioned_table(app, "pending", help="events held for a container record")
    enricher = Enricher(CachedMapping(lineage_t), CachedMapping(pending_t),
                        grace_ns=int(grace_s * 1e9), exit_grace_ns=int(exit_grace_s * 1e9),
                        max_wall_hold_s=max_wall_hold_s)

    def set_partition(p: int) -> None:
        lineage_t.write_partition = p
        pending_t.write_partition = p

    enricher.set_partition = set_partition
    feed = ContainerFeed(settings, codec)
    out = fast_producer(settings)
    dlq = DeadLetters.for_producer(out, settings, "enrich", codec)
    events_name, syscalls_name = settings.topic("raw.events"), settings.topic("raw.syscalls")
    source = app.topic(events_name, syscalls_name, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    out_name = settings.topic("enriched.events")
    state = {"reload": True}
    encode = codec.encode
    guard = OffsetGuard.install(app)

    def emit(outs: list[Output]) -> None:
        for key, rec in outs:
            try:
                value = encode("enriched_event", rec)
            except CodecError as exc:  # a bug, not bad input: say so, keep going
                log.error("enriched event %s does not fit the schema: %s", rec["event"]["id"], exc)
                continue
            produce(out, out_name, key.encode(), value)

    def drain_feed() -> None:
        for item in feed.drain():
            if item[0] == "ok":
                emit(enricher.on_container(item[1], item[2]))
            else:
                _, p, off, key, value, exc = item
                dlq.send(feed.topic, p, off, key, value, exc)

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, assigned: Any, **kw: Any) -> None:
        state["reload"] = True

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, revoked: Any, **kw: Any) -> None:
        state["reload"] = True

    def maybe_reload() -> bool:
        """Re-read held keys once the tables are recovered; False while they are not."""
        if state["reload"]:
            if not tables_ready(app):
                return False
            state["reload"] = False
            enricher.reload_pending()
        return True

    def owned(batch: list[Any]) -> list[Any]:
        """Events of partitions still assigned: one fetched before a rebalance that
        moved its partition is the new owner's to enrich (it reads it again from
        the committed offset), and its state changes belong to that owner."""
        assigned = app.consumer.assignment()
        keep = []
        for ev in batch:
            if ev.message.tp in assigned:
                keep.append(ev)
            else:
                ev.message.acked = True  # not ours to acknowledge either
        return keep

    @app.agent(source, name="enrich")
    async def enrich(stream: faust.StreamT) -> None:
        feed.start()  # app tasks start only after the first recovery: too late
        for _ in range(600):  # the first events should find the directory loaded
            if feed.ready.is_set():
                break
            await asyncio.sleep(0.05)
        async for batch in stream.take_events(BATCH, within=0.1):
            batch = await guard.admit(batch)
            if not batch:
                continue
            while not maybe_reload():  # events fetched while a rebalance recovers tables
                await asyncio.sleep(0.05)
            batch = owned(batch)
            drain_feed()
            for ev in batch:
                msg = ev.message
                p = msg.partition
                set_partition(p)
                enricher.partition = p
                try:
                    if msg.topic == events_name:
                        outs = enricher.on_raw_event(codec.decode(msg.value, expect="raw_event"))
                    else:
                        outs = enricher.on_syscalls(codec.decode(msg.value, expect="syscall_counts"))
                    emit(outs)
                except (CodecError, KeyError, TypeError, ValueError) as exc:
                    dlq.send(msg.topic, p, msg.offset, msg.key, msg.value, exc)
            await flush_async(out)  # durable before take_events acks the batch,
            await flush_tables(app)  # and so are the lineage and holds it changed

    @app.timer(0.5)
    async def release_held() -> None:
        # after a rebalance held keys are re-read here too, so a partition that
        # gets no new event still releases what it holds
        if not maybe_reload():
            return
        drain_feed()
        emit(enricher.tick())
        await flush_async(out)

    @app.on_before_shutdown.connect
    async def _stop_feed(sender: Any, **kw: Any) -> None:
        feed.stop()
        out.flush(30)

    app.eunomia = {"enricher": enricher, "feed": feed, "dlq": dlq}  # type: ignore[attr-defined]
    return app


def __getattr__(name: str) -> Any:
    """``faust -A eunomia.processors.workers.enrich worker`` finds ``app`` here (built on first use)."""
    if name == "app":
        from eunomia.config import load_settings

        global app
        app = build_app(load_settings())
        return app
    raise AttributeError(name)
