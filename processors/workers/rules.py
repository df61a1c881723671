"""``eunomia worker rules``: the rule engine over ``enriched.events`` -> ``alerts``
(Avro) and ``alerts.ocsf`` (OCSF JSON), keyed by alert_id.

One engine per input partition: enriched.events is keyed by host/container, so a
container's events arrive in order on one partition and every per-container or
per-process-tree rule sees all of its events there. Engine state is saved, key by
key as it changes, in a changelog-backed table whose changes go to the changelog
partition of the input partition (``PartitionedTable``): a worker that takes over
a partition after a crash or a rebalance rebuilds that partition's engine from
the table and resumes where the old one stopped. State is saved after every
batch but the input offset is committed later, so a successor reads again events
its restored state already holds: the engine recognises them (older than the
watermark, already buffered, or applied at the watermark) and does not count them
twice. Alert ids are deterministic, so a repeated alert is the same alert.

Idle partitions: multi-event matches wait in the engine's reorder buffer until
the watermark (newest event time minus the allowed lateness) passes them, and
the watermark moves only with events. A partition that got nothing for
``idle_s`` of wall time would hold the end of an attack forever, so a timer then
advances that engine's watermark to ``now - idle_lag_s`` (at least to its newest
event): the buffered matches are judged and window deadlines in the past fire.
Offline replay does the same at the end of a file (``Engine.flush``). A worker
builds the engines of all its assigned partitions once recovery is done, so a
partition taken over with nothing left to read is idled out too.

SIGHUP reloads the rule files: a file with an error is rejected (logged with
file:line:column) and the old rules keep running; unchanged rules keep state.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faust
from prometheus_client import Counter

from eunomia.config import Settings
from eunomia.processors.rules import (
    ENGINE_KEY,
    Engine,
    RuleLoadError,
    RuleSet,
    StateError,
    load_files,
    ocsf_json,
    pack_files,
)
from eunomia.processors.runtime.app import create_app, flush_tables, partitioned_table, tables_ready
from eunomia.processors.runtime.dead_letters import DeadLetters
from eunomia.processors.runtime.offset_guard import OffsetGuard
from eunomia.processors.runtime.output import WorkerOutput
from eunomia.schemas import AvroCodec, CodecError

__all__ = ["build_app", "load_rules"]

log = logging.getLogger(__name__)
SEP = "\x1f"

EVALUATED = Counter("eunomia_rules_events_evaluated", "Enriched events evaluated by the rule engine")
ALERTS = Counter("eunomia_alerts", "Alerts raised, by rule and level", ["rule", "level"])
RELOADS = Counter("eunomia_rules_reloads", "Rule reloads, by result", ["result"])
DROPPED = Counter("eunomia_rules_state_dropped", "Saved engine states not restored, by rule and "
                  "reason (rule changed, damaged)", ["rule", "reason"])
UNSAVED = Counter("eunomia_rules_state_unsaved", "Engine state saves skipped because one key's "
                  "state is larger than a changelog message may be, by rule", ["rule"])

# One key's state goes to the changelog as one message: above this (after zlib)
# it would exceed the broker's and the producer's 1 MiB default and crash the
# worker's producer, so it is kept in memory only and counted instead.
STATE_MAX_BYTES = 900 * 1024
_ZF = "zf:"  # stored value prefix: "zf:<rule fingerprint>:" + base64 of zlib
_Z = "z:"  # older values: zlib without a fingerprint; older still: plain base64


def encode_state(blob: bytes, fingerprint: str = "") -> str:
    """The table value of one key's engine state (windows of similar events
    compress ~10x, which keeps large per-host windows under the message limit),
    marked with the fingerprint of the rule that kept it."""
    return f"{_ZF}{fingerprint}:" + base64.b64encode(zlib.compress(blob, 1)).decode()


def decode_state(value: Any) -> tuple[str | None, bytes]:
    """(fingerprint of the rule it was saved for, None for older values; the state).
    A changelog is input too: anything else raises ``StateError``."""
    try:
        if value.startswith(_ZF):
            fp, sep, data = value[len(_ZF):].partition(":")
            if not sep:
                raise ValueError("no ':' after the fingerprint")
            return fp, zlib.decompress(base64.b64decode(data, validate=True))
        if value.startswith(_Z):
            return None, zlib.decompress(base64.b64decode(value[len(_Z):], validate=True))
        return None, base64.b64decode(value, validate=True)
    except (ValueError, TypeError, AttributeError, zlib.error) as exc:
        raise StateError(f"undecodable state value: {type(exc).__name__}: {exc}") from exc


def restore_engine(engine: Engine, saved: Iterable[tuple[str, str, Any]]
                   ) -> tuple[int, list[tuple[str, str, str]]]:
    """Restore (rule id, key, table value) triples into ``engine``.

    Returns the number restored and the (rule id, key, reason) of those dropped:
    a state saved for another version of its rule (its rule file changed while
    no worker ran; its windows start again, as a SIGHUP reload would do), or one
    that cannot be read (damaged). Dropping one never stops the worker."""
    restored, dropped = 0, []
    for rule_id, key, value in saved:
        try:
            fp, blob = decode_state(value)
            if rule_id != ENGINE_KEY and fp is not None and fp != engine.fingerprint(rule_id):
                dropped.append((rule_id, key, "rule changed"))
                continue
            engine.import_state(rule_id, key, blob)
            restored += 1
        except StateError as exc:
            dropped.append((rule_id, key, str(exc)))
    return restored, dropped


def load_rules(paths: Sequence[Path], *, default_pack: bool = True) -> RuleSet:
    """The default pack plus site rule files or folders (``*.yaml``)."""
    files: list[Path] = list(pack_files()) if default_pack else []
    for p in paths:
        files += sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p]
    return load_files(files)


def _state_key(partition: int, rule_id: str, key: str) -> str:
    return f"{partition}{SEP}{rule_id}{SEP}{key}"


def build_app(settings: Settings, *, rule_paths: Sequence[Path] = (), default_pack: bool = True,
              store: str = "memory://", web_port: int | None = None, datadir: Any = None,
              lateness_s: float = 2.0, batch: int = 500, idle_s: float = 3.0,
              idle_lag_s: float = 10.0) -> faust.App:
    app = create_app("rules", settings, store=store, web_port=web_port, datadir=datadir)
    guard = OffsetGuard.install(app)  # input faust's stream skipped is read again
    codec = AvroCodec()
    ruleset = {"current": load_rules(rule_paths, default_pack=default_pack)}
    state = partitioned_table(app, "engine-state", help="rule engine state per input partition")
    source = app.topic(settings.topic("enriched.events"), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    out = WorkerOutput(settings)
    dlq_name = settings.topic("dlq")
    dlq = DeadLetters("rules", lambda k, v, h: out.produce(dlq_name, k, v, h), codec)
    alerts_name, ocsf_name = settings.topic("alerts"), settings.topic("alerts.ocsf")
    engines: dict[int, Engine] = {}
    last_event: dict[int, float] = {}  # partition -> wall time of its last event
    lateness_ns = int(lateness_s * 1e9)

    def engine_for(partition: int) -> Engine:
        engine = engines.get(partition)
        if engine is None:
            engine = Engine(ruleset["current"], lateness_ns=lateness_ns, track_dirty=True,
                            default_span_ns=settings.rules.default_maxspan_ns)
            prefix = f"{partition}{SEP}"
            saved = []
            for k, value in list(state.items()):
                if isinstance(k, str) and k.startswith(prefix) and value is not None:
                    _p, rule_id, key = k.split(SEP, 2)
                    saved.append((rule_id, key, value))
            restored, dropped = restore_engine(engine, saved)
            engine.take_dirty()
            if restored:
                log.info("partition %d: engine state restored (%d keys)", partition, restored)
            for rule_id, key, reason in dropped:
                DROPPED.labels(rule_id, "rule changed" if reason == "rule changed" else "damaged").inc()
                log.warning("partition %d: saved state of %s key %r not restored (%s); its "
                            "windows start again", partition, rule_id, key, reason)
                state.write_partition = partition
                del state[_state_key(partition, rule_id, key)]
            engines[partition] = engine
        return engine

    def emit(alerts: list[dict[str, Any]]) -> None:
        for a in alerts:
            key = a["alert_id"].encode()
            out.produce(alerts_name, key, codec.encode("alert", a))
            out.produce(ocsf_name, key, ocsf_json(a))
            ALERTS.labels(a["rule_id"], a["level"]).inc()

    warned: set[str] = set()

    def save(partition: int, engine: Engine) -> None:
        # the engine key (watermark, reorder buffer) goes last: a kill between the
        # writes then leaves rule state ahead of it, which replay can only repeat
        # (at-least-once), never lose
        state.write_partition = partition
        for rule_id, key in sorted(engine.take_dirty(), key=lambda rk: rk[0] == ENGINE_KEY):
            tk = _state_key(partition, rule_id, key)
            blob = engine.export_state(rule_id, key)
            value = encode_state(blob, engine.fingerprint(rule_id) or "") if blob is not None else None
            if value is not None and len(value) > STATE_MAX_BYTES:
                UNSAVED.labels(rule_id).inc()
                if rule_id not in warned:
                    warned.add(rule_id)
                    log.warning("rule %s: state of key %s is %d bytes compressed, over the %d a "
                                "changelog message may hold; kept in memory only (a takeover "
                                "restarts its windows)", rule_id, key, len(value), STATE_MAX_BYTES)
                value = None  # a stale saved state would be wrong after a takeover
            if value is None:
                if tk in state:
                    del state[tk]
            else:
                state[tk] = value

    @app.agent(source, name="rules")
    async def evaluate(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch, within=0.05):
            events = await guard.admit(events)
            touched: set[int] = set()
            for ev in events:
                msg = ev.message
                try:
                    record = codec.decode(msg.value, expect="enriched_event")
                except CodecError as exc:
                    dlq.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value, exc)
                    continue
                engine = engine_for(msg.partition)
                emit(engine.process(record))
                touched.add(msg.partition)
            now = time.monotonic()
            for p in touched:
                last_event[p] = now
            EVALUATED.inc(len(events))
            # alerts are acknowledged before the state that no longer expects them
            # is saved: a kill in between repeats them on replay instead of losing them
            batch_engines = {p: engines[p] for p in touched}
            await out.flush()
            for p, engine in batch_engines.items():
                if engines.get(p) is engine:  # not revoked while flushing
                    save(p, engine)
            await flush_tables(app)  # the saved state is durable before the batch is acked

    def adopt_assigned(now: float) -> None:
        """Build the engines of assigned partitions that get no new events: a
        partition taken over after its stream was read to the end still holds
        buffered matches and deadlines, and only a built engine can idle them out."""
        if not tables_ready(app):
            return
        topic = source.get_topic_name()
        for tp in app.consumer.assignment():
            if tp.topic == topic and tp.partition not in engines:
                engine_for(tp.partition)
                last_event.setdefault(tp.partition, now)

    @app.timer(1.0)
    async def _idle() -> None:
        now = time.monotonic()
        adopt_assigned(now)
        for p, engine in list(engines.items()):
            if now - last_event.get(p, now) < idle_s or engine.max_ts is None:
                continue
            target = max(engine.max_ts, time.time_ns() - int(idle_lag_s * 1e9))
            if engine.watermark is not None and engine.watermark >= target:
                continue
            emit(engine.advance_watermark(target))
            await out.flush()
            if engines.get(p) is engine:
                save(p, engine)

    @app.on_partitions_revoked.connect
    async def _revoked(app_: faust.App, revoked: set, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == source.get_topic_name():
                engines.pop(tp.partition, None)  # rebuilt from the table if it comes back
                last_event.pop(tp.partition, None)

    def reload() -> None:
        try:
            new = load_rules(rule_paths, default_pack=default_pack)
        except RuleLoadError as exc:
            RELOADS.labels("rejected").inc()
            log.error("rule reload rejected, old rules keep running: %s", exc)
            return
        ruleset["current"] = new
        for engine in engines.values():
            engine.replace_ruleset(new)
        RELOADS.labels("ok").inc()
        log.warning("rules reloaded: %d rules", len(new.rules))

    @app.task
    async def _install_sighup() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)

    app.eunomia = {"engines": engines, "reload": reload}  # for tests and benchmarks
    return app
