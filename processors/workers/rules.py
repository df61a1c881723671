"""``eunomia worker rules``: the rule engine over ``enriched.events`` -> ``alerts``
(Avro) and ``alerts.ocsf`` (OCSF JSON), keyed by alert_id.

One per-source engine per input partition, its state saved key by key to a
changelog-backed table after each batch so a successor rebuilds it. Late events
are counted per rule and host, an event far ahead of its host is dead-lettered,
and SIGHUP reloads the rule files (a broken file keeps the old rules).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
from prometheus_client import Counter

from eunomia.config import Settings
from eunomia.processors.rules import RuleLoadError, RuleSet, load_files, pack_files
from eunomia.processors.rules.fleet import EventTimeError, FleetEngine, rule_of
from eunomia.processors.rules.state_codec import (
    STATE_MAX_BYTES,
    dirty_states,
    restore_engine,
    saved_states,
    state_key,
)
from eunomia.processors.runtime.app import flush_tables, partitioned_table, tables_ready
from eunomia.processors.runtime.worker import Worker

__all__ = ["EVALUATED", "RulesWorker", "load_rules"]

log = logging.getLogger(__name__)

EVALUATED = Counter("eunomia_rules_events_evaluated", "Enriched events evaluated by the rule engine")
RELOADS = Counter("eunomia_rules_reloads", "Rule reloads, by result", ["result"])
DROPPED = Counter("eunomia_rules_state_dropped", "Saved engine states not restored, by rule and "
                  "reason (rule changed, damaged)", ["rule", "reason"])
LATE = Counter("eunomia_rules_late_events", "Events that arrived after their host's event time had "
               "passed them, so stateful rules could not evaluate them, by rule and host", ["rule", "host"])
REFUSED = Counter("eunomia_rules_events_refused", "Events dead-lettered because their time is far "
                  "ahead of their host's event time")
UNSAVED = Counter("eunomia_rules_state_unsaved", "Engine state saves skipped because one key's "
                  "state is larger than a changelog message may be, by rule", ["rule"])


def load_rules(paths: Sequence[Path], *, default_pack: bool = True) -> RuleSet:
    """The default pack plus site rule files or folders (``*.yaml``)."""
    files: list[Path] = list(pack_files()) if default_pack else []
    for p in paths:
        files += sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p]
    return load_files(files)


class RulesWorker(Worker):
    """The ``rules`` agent, the ``engine-state`` table, the idle timer and SIGHUP reload."""

    def __init__(self, settings: Settings, *, rule_paths: Sequence[Path] = (),
                 default_pack: bool = True, lateness_s: float = 2.0, batch: int = 500,
                 idle_s: float = 3.0, idle_lag_s: float = 10.0, **app_options: Any) -> None:
        super().__init__("rules", settings, **app_options)
        self.rule_paths, self.default_pack = list(rule_paths), default_pack
        self.ruleset = load_rules(self.rule_paths, default_pack=default_pack)
        self.lateness_ns, self.batch = int(lateness_s * 1e9), batch
        self.idle_s, self.idle_lag_s = idle_s, idle_lag_s
        self.state = partitioned_table(self.app, "engine-state",
                                       help="rule engine state per input partition")
        self.source = self.topic("enriched.events")
        self.engines: dict[int, FleetEngine] = {}
        self.last_event: dict[int, float] = {}  # partition -> wall time of its last event
        self.warned: set[str] = set()  # rules whose oversized state was logged
        self.agent = self.app.agent(self.source, name="rules")(self.evaluate)
        self.app.timer(1.0)(self.idle)
        self.app.on_partitions_revoked.connect(self.on_revoked)
        self.app.task(self.install_sighup)

    async def evaluate(self, stream: faust.StreamT) -> None:
        """The agent: decode, evaluate and emit a batch; acknowledge its alerts,
        then save and acknowledge the state that no longer expects them (a kill
        in between repeats them on replay instead of losing them)."""
        async for events in stream.take_events(self.batch, within=0.05):
            events = await self.guard.admit(events)
            touched: set[int] = set()
            for msg, record in self.dlq.decoded(events, self.decoder("enriched_event")):
                engine = self.engine_for(msg.partition)
                touched.add(msg.partition)
                try:
                    self.emit(engine.process(record, offset=msg.offset))
                except EventTimeError as exc:
                    REFUSED.inc()
                    self.dlq.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value, exc)
            for p in touched:
                self.report(self.engines[p])
            now = time.monotonic()
            for p in touched:
                self.last_event[p] = now
            EVALUATED.inc(len(events))
            batch_engines = {p: self.engines[p] for p in touched}
            await self.out.flush()
            for p, engine in batch_engines.items():
                if self.engines.get(p) is engine:  # not revoked while flushing
                    self.save(p, engine)
            await flush_tables(self.app)  # the saved state is durable before the batch is acked

    def emit(self, alerts: list[dict[str, Any]]) -> None:
        for a in alerts:
            self.emit_alert(a)

    def report(self, engine: FleetEngine) -> None:
        """Late counts to the metric, the engine's notices to the log (once each)."""
        for (rule_id, host), n in engine.take_late().items():
            LATE.labels(rule_id, host).inc(n)
        for notice in engine.take_notices():
            log.warning("%s", notice)

    def engine_for(self, partition: int) -> FleetEngine:
        """The partition's engine, built from its saved state on first use."""
        engine = self.engines.get(partition)
        if engine is None:
            rs = self.settings.rules
            engine = FleetEngine(self.ruleset, lateness_ns=self.lateness_ns, track_dirty=True,
                                 default_span_ns=rs.default_maxspan_ns, max_jump_ns=rs.max_clock_jump_ns,
                                 host_timeout_ns=rs.host_timeout_ns)
            restored, dropped = restore_engine(engine, saved_states(list(self.state.items()), partition))
            engine.take_dirty()
            if restored:
                log.info("partition %d: engine state restored (%d keys)", partition, restored)
            for state_id, key, reason in dropped:
                rule_id, host = rule_of(state_id)
                DROPPED.labels(rule_id, "rule changed" if reason == "rule changed" else "damaged").inc()
                log.warning("partition %d: saved state of %s key %r%s not restored (%s); its "
                            "windows start again", partition, rule_id, key, host, reason)
                self.state.write_partition = partition
                del self.state[state_key(partition, state_id, key)]
            self.engines[partition] = engine
        return engine

    def save(self, partition: int, engine: FleetEngine) -> None:
        """Write the keys the engine changed to the changelog partition of ``partition``."""
        self.state.write_partition = partition
        for state_id, key, value in dirty_states(engine):
            tk = state_key(partition, state_id, key)
            if value is not None and len(value) > STATE_MAX_BYTES:
                self._unsaved(rule_of(state_id)[0], key, len(value))
                value = None  # a stale saved state would be wrong after a takeover
            if value is None:
                if tk in self.state:
                    del self.state[tk]
            else:
                self.state[tk] = value

    def _unsaved(self, rule_id: str, key: str, size: int) -> None:
        UNSAVED.labels(rule_id).inc()
        if rule_id not in self.warned:
            self.warned.add(rule_id)
            log.warning("rule %s: state of key %s is %d bytes compressed, over the %d a "
                        "changelog message may hold; kept in memory only (a takeover "
                        "restarts its windows)", rule_id, key, size, STATE_MAX_BYTES)

    def adopt_assigned(self, now: float) -> None:
        """Build the engines of assigned partitions that get no new events: a
        partition taken over after its stream was read to the end still holds
        buffered matches and deadlines, and only a built engine can idle them out."""
        if not tables_ready(self.app):
            return
        topic = self.source.get_topic_name()
        for tp in self.app.consumer.assignment():
            if tp.topic == topic and tp.partition not in self.engines:
                self.engine_for(tp.partition)
                self.last_event.setdefault(tp.partition, now)

    async def idle(self) -> None:
        """Timer: advance the watermark of partitions idle for ``idle_s``."""
        now = time.monotonic()
        self.adopt_assigned(now)
        for p, engine in list(self.engines.items()):
            if now - self.last_event.get(p, now) < self.idle_s or engine.max_ts is None:
                continue
            alerts = engine.advance_idle(time.time_ns() - int(self.idle_lag_s * 1e9))
            self.report(engine)
            self.emit(alerts)
            await self.out.flush()
            if self.engines.get(p) is engine:
                self.save(p, engine)

    async def on_revoked(self, app: faust.App, revoked: set, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == self.source.get_topic_name():
                self.engines.pop(tp.partition, None)  # rebuilt from the table if it comes back
                self.last_event.pop(tp.partition, None)

    def reload(self) -> None:
        """Load the rule files again; unchanged rules keep their state."""
        try:
            new = load_rules(self.rule_paths, default_pack=self.default_pack)
        except RuleLoadError as exc:
            RELOADS.labels("rejected").inc()
            log.error("rule reload rejected, old rules keep running: %s", exc)
            return
        self.ruleset = new
        for engine in self.engines.values():
            engine.replace_ruleset(new)
        RELOADS.labels("ok").inc()
        log.warning("rules reloaded: %d rules", len(new.rules))

    async def install_sighup(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
