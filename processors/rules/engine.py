"""The engine: single-event rules on arrival, stateful rules in event-time order.

Stateful rules see events in (event time, arrival) order through a reorder
buffer released by the watermark (newest event time minus the allowed
lateness), so disorder within the lateness gives the alerts that order gives,
live and in replay alike; docs/sequences.md states the rules. State is deleted
when the watermark passes its deadline and ``max_keys`` bounds each rule's keys,
so memory follows the live keys. Rules are indexed by the ``event.kind`` values
their conditions allow, so an event is tested only against rules that can match it.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from eunomia.processors.rules.alerts import make_alert, ref, snap
from eunomia.processors.rules.compile import Predicate
from eunomia.processors.rules.model import Rule, RuleSet
from eunomia.processors.rules.runner import Runner, Timers
from eunomia.processors.rules.sequence import SequenceRunner
from eunomia.processors.rules.windows import DistinctRunner, TemporalRunner, ThresholdRunner

__all__ = ["DEFAULT_SPAN_NS", "ENGINE_KEY", "Engine", "StateError"]

ENGINE_KEY = "__engine__"
DEFAULT_SPAN_NS = 3600 * 10**9  # a sequence without maxspan (setting rules.default_maxspan_s)


class StateError(ValueError):
    """A saved state that cannot be restored: damaged, or not what the rule keeps.
    Restoring it changes nothing in the engine."""


_RUNNERS: dict[str, type[Runner]] = {
    "sequence": SequenceRunner, "threshold": ThresholdRunner, "distinct": DistinctRunner,
    "temporal": TemporalRunner, "temporal_ordered": TemporalRunner,
}
Alert = dict[str, Any]


@dataclass
class _Probe:
    """What one stateful rule tests on events of one kind."""

    runner: Runner
    steps: list[tuple[int, Predicate]]
    until: Predicate | None


Matches = list[tuple[_Probe, list[int], bool]]  # (probe, steps hit, until hit) per rule


@dataclass
class _KindIndex:
    singles: list[Rule] = field(default_factory=list)
    probes: list[_Probe] = field(default_factory=list)


class Engine:
    """Run a ``RuleSet`` over decoded enriched events (dicts as fastavro returns them).

    ``process(event)`` and ``advance_watermark(ts_ns)`` return alert records
    (schemas/alert.avsc). Feed one engine the events of one input partition in
    the order they were read: events with equal times reach stateful rules in
    that order. With ``track_dirty`` the keys whose state changed are collected
    in ``dirty`` as (rule id, group key) pairs, plus ``(ENGINE_KEY, "")`` for the
    watermark and reorder buffer; ``export_state``/``import_state`` move one such
    key's state as bytes (JSON) so a worker can keep it in a changelog table.
    ``default_span_ns`` bounds a sequence that has no ``maxspan``.
    """

    def __init__(self, ruleset: RuleSet, *, lateness_ns: int = 2_000_000_000, max_events: int = 10,
                 max_keys: int = 1_000_000, default_span_ns: int = DEFAULT_SPAN_NS,
                 track_dirty: bool = False, external_time: bool = False) -> None:
        self.lateness_ns = lateness_ns
        # an engine whose watermark its owner moves (advance_watermark) rather than its events
        self.external_time = external_time
        self.max_events = max_events
        self.max_keys = max_keys
        self.default_span_ns = default_span_ns
        self.timers = Timers(dirty=set() if track_dirty else None)
        self.max_ts: int | None = None
        self.watermark: int | None = None
        self.stats = {"events": 0, "late": 0, "repeated": 0, "alerts": 0}
        self.late_by_rule: Counter[str] = Counter()  # late events per stateful rule they touched
        self.late_rules: list[str] = []  # the rules the last late event touched
        # (ts, arrival number, id, event, matches): equal times keep their arrival order
        self._buffer: list[tuple[int, int, str, dict[str, Any], Matches]] = []
        self._buffered: set[str] = set()  # ids in the buffer
        self._edge: set[str] = set()  # ids applied whose time equals the watermark
        self._arrived = 0
        self.runners: dict[str, Runner] = {}
        self.ruleset = ruleset
        self._install(ruleset, {})

    # -- rules ------------------------------------------------------------------
    def _install(self, ruleset: RuleSet, keep: dict[str, Runner]) -> None:
        self.ruleset = ruleset
        self.rules = [r for r in ruleset.rules if r.enabled]
        runners = {}
        for r in self.rules:
            if not r.stateful:
                continue
            old = keep.get(r.id)
            if old is not None:
                old.rule = r
                runners[r.id] = old
            else:
                runners[r.id] = _RUNNERS[r.form](r, self.timers, self.max_keys, self.max_events,
                                                  self.default_span_ns)
        self.runners = runners
        self._index: dict[str, _KindIndex] = {}

    def replace_ruleset(self, ruleset: RuleSet) -> list[str]:
        """Swap rules, keeping the state of rules whose id and fingerprint are
        unchanged; returns the ids whose state was dropped."""
        old_fp = {r.id: r.fingerprint for r in self.rules}
        keep = {r.id: self.runners[r.id] for r in ruleset.rules
                if r.enabled and r.id in self.runners and old_fp.get(r.id) == r.fingerprint}
        dropped = [rid for rid in self.runners if rid not in keep]
        for rid in dropped:
            for key in self.runners[rid].states:
                if self.timers.dirty is not None:
                    self.timers.dirty.add((rid, key))
        self._install(ruleset, keep)
        # buffered probes point at old rule objects: recompute matches for the new ones
        pending = [(t, n, i, e) for t, n, i, e, _ in self._buffer]
        self._buffer = []
        self._buffered = set()
        for t, n, i, e in pending:
            ms = self._matches(e)
            if ms:
                heapq.heappush(self._buffer, (t, n, i, e, ms))
                self._buffered.add(i)
        return dropped

    def _kind(self, kind: str) -> _KindIndex:
        idx = _KindIndex()
        for r in self.rules:
            if r.kinds is not None and kind not in r.kinds:
                continue
            if not r.stateful:
                idx.singles.append(r)
                continue
            if r.form in ("threshold", "distinct"):
                assert r.predicate is not None
                steps = [(0, r.predicate)]
            else:
                steps = [(i, s.predicate) for i, s in enumerate(r.steps)
                         if s.kinds is None or kind in s.kinds]
            until = r.until if r.until and (r.until_kinds is None or kind in r.until_kinds) else None
            if steps or until:
                idx.probes.append(_Probe(self.runners[r.id], steps, until))
        self._index[kind] = idx
        return idx

    def _matches(self, e: dict[str, Any], idx: _KindIndex | None = None) -> Matches:
        """The stateful rules' steps (and untils) this event hits."""
        if idx is None:
            kind = e["event"]["kind"]
            idx = self._index.get(kind) or self._kind(kind)
        out = []
        for probe in idx.probes:
            hits = [i for i, p in probe.steps if p(e)]
            u = probe.until is not None and probe.until(e)
            if hits or u:
                out.append((probe, hits, u))
        return out

    # -- events ---------------------------------------------------------------------
    def process(self, e: dict[str, Any]) -> list[Alert]:
        ev = e["event"]
        kind = ev["kind"]
        ts = ev["ts_ns"]
        self.stats["events"] += 1
        idx = self._index.get(kind) or self._kind(kind)
        alerts: list[Alert] = []
        for r in idx.singles:
            if r.predicate(e):  # type: ignore[misc]
                alerts.append(make_alert(r, _single_key(e), [ref(e)], 1, snap(r, e), self.max_events))
        if idx.probes:
            ms = self._matches(e, idx)
            if ms:
                if self.watermark is not None and ts < self.watermark:
                    self.stats["late"] += 1
                    self.late_rules = [probe.runner.rule.id for probe, _, _ in ms]
                    self.late_by_rule.update(self.late_rules)
                elif ev["id"] in self._buffered or (ts == self.watermark and ev["id"] in self._edge):
                    self.stats["repeated"] += 1
                else:
                    self._push(ts, ev["id"], e, ms)
        if self.external_time:
            pass
        elif self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
            alerts += self._advance(ts - self.lateness_ns)
        elif self._buffer and self.watermark is not None and self._buffer[0][0] <= self.watermark:
            alerts += self._advance(self.watermark)
        self.stats["alerts"] += len(alerts)
        return alerts

    def tick(self, ts_ns: int) -> list[Alert]:
        """Event time reached ``ts_ns`` without an event to evaluate (a heartbeat
        of the event source): the watermark moves as an event's would."""
        if self.max_ts is not None and ts_ns <= self.max_ts:
            return []
        self.max_ts = ts_ns
        return self.advance_watermark(ts_ns - self.lateness_ns)

    def advance_watermark(self, ts_ns: int) -> list[Alert]:
        """Move event time forward without an event (an idle stream, end of a replay)."""
        alerts = self._advance(ts_ns)
        self.stats["alerts"] += len(alerts)
        return alerts

    def flush(self) -> list[Alert]:
        """Apply every buffered event (end of input); timers still wait for the watermark."""
        if not self._buffer:
            return []
        return self.advance_watermark(max(t for t, *_ in self._buffer))

    def _advance(self, wm: int) -> list[Alert]:
        if self.watermark is not None and wm <= self.watermark and not (
                self._buffer and self._buffer[0][0] <= self.watermark):
            return []
        if self.watermark is None or wm > self.watermark:
            self.watermark = wm
            self._edge = set()
            self._touch_engine()
        wm = self.watermark
        alerts: list[Alert] = []
        buf = self._buffer
        heap = self.timers.heap
        while True:
            # timers due before the next buffered event, then that event
            nxt = buf[0][0] if buf and buf[0][0] <= wm else None
            if heap and heap[0][0] < wm and (nxt is None or heap[0][0] < nxt):
                deadline, rid, key = heapq.heappop(heap)
                runner = self.runners.get(rid)
                if runner is not None:
                    alerts += runner.on_timer(key, deadline, min(wm, nxt if nxt is not None else wm))
                continue
            if nxt is None:
                break
            t, _, i, e, ms = heapq.heappop(buf)
            self._buffered.discard(i)
            if t == wm:
                self._edge.add(i)
            for probe, hits, u in ms:
                alerts += probe.runner.on_event(e, hits, u)
        return alerts

    def _push(self, ts: int, eid: str, e: dict[str, Any], ms: Matches) -> None:
        self._arrived += 1
        heapq.heappush(self._buffer, (ts, self._arrived, eid, e, ms))
        self._buffered.add(eid)
        self._touch_engine()

    # -- state snapshots -----------------------------------------------------------------
    def _touch_engine(self) -> None:
        if self.timers.dirty is not None:
            self.timers.dirty.add((ENGINE_KEY, ""))

    def take_dirty(self) -> set[tuple[str, str]]:
        """The (rule id, key) pairs whose state changed since the last call."""
        d = self.timers.dirty
        if d is None:
            return set()
        self.timers.dirty = set()
        return d

    def export_state(self, rule_id: str, key: str) -> bytes | None:
        """One key's state as bytes, or None when it no longer exists (delete it)."""
        if rule_id == ENGINE_KEY:
            return json.dumps({"wm": self.watermark, "max_ts": self.max_ts, "edge": sorted(self._edge),
                               "buf": [[t, i, e] for t, _, i, e, _ in sorted(self._buffer)]}).encode()
        runner = self.runners.get(rule_id)
        state = runner.export(key) if runner else None
        return None if state is None else json.dumps(state, separators=(",", ":")).encode()

    def fingerprint(self, rule_id: str) -> str | None:
        """The running rule's fingerprint (saved with its state: a state saved for
        another version of the rule is not restored into this one)."""
        runner = self.runners.get(rule_id)
        return runner.rule.fingerprint if runner is not None else None

    def import_state(self, rule_id: str, key: str, blob: bytes) -> None:
        """Restore one key's state; ``StateError`` (and no change) when it cannot be."""
        try:
            data = json.loads(blob)
            if rule_id == ENGINE_KEY:
                wm, max_ts = int(data["wm"]), int(data["max_ts"])
                edge = {str(x) for x in data.get("edge", ())}
                buf = [(int(t), str(i), e) for t, i, e in data["buf"]]
                pushes = [(t, i, e, self._matches(e)) for t, i, e in buf]
            else:
                runner = self.runners.get(rule_id)
                if runner is None:  # state of a rule that no longer exists is dropped
                    return
                runner.restore(key, data)  # checks the state before keeping it
                return
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise StateError(f"state of {rule_id} key {key!r}: {type(exc).__name__}: {exc}") from exc
        self.watermark, self.max_ts, self._edge = wm, max_ts, edge
        for t, i, e, ms in pushes:
            if ms and i not in self._buffered:
                self._push(t, i, e, ms)

    def state_size(self) -> int:
        return sum(len(r.states) for r in self.runners.values()) + len(self._buffer)


def _single_key(e: dict[str, Any]) -> str:
    c = e.get("container") or {}
    return f"{(e.get('host') or {}).get('id', '')}|{c.get('id', '')}"
