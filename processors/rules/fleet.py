"""Event time per source for a stream that carries many hosts.

A partition holds the events of many producers, each with its own clock and
its own delivery delay. ``FleetEngine`` keeps one ``Engine`` per source (host
and boot) for the rules whose keys name something of one host (``host.id``,
``container.id``, a process), so a host's windows advance only with its own
events and heartbeats: a host that spooled for a minute is delayed, not late,
and a host whose clock is ahead moves only its own windows. Rules whose keys
join across hosts run in one more engine whose watermark is the minimum over
the sources still alive. Late events are counted per rule and host and raise a
``late-events`` alert; an event far ahead of its source's time is refused with
``EventTimeError`` so the caller can dead-letter it with the reason.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eunomia.processors.alerts import alert_record
from eunomia.processors.rules.engine import ENGINE_KEY, Engine, StateError
from eunomia.processors.rules.model import Rule, RuleSet
from eunomia.processors.rules.runner import encode_key
from eunomia.schemas.kinds import HEARTBEAT

__all__ = ["FLEET_KEY", "HEARTBEAT", "LATE_RULE", "EventTimeError", "FleetEngine", "is_host_local", "rule_of"]

LATE_RULE = "late-events"
FLEET_KEY = "__fleet__"  # the sources' clocks, in exported state
FLEET_LANE = "*"  # the engine of the rules that join across hosts
LANE_SEP = "\x1e"  # lane and rule id in one state id
# key fields that name something of one host: a key holding one of them never joins two hosts
HOST_FIELDS = frozenset({
    "host.id", "host.boot_id", "container.id", "process.exec_id", "process.lineage.exec_id",
    "process.parent.exec_id", "process.pid", "process.ppid", "process.entity_id",
})
Alert = dict[str, Any]


class EventTimeError(ValueError):
    """An event whose time cannot be used (far ahead of its source's clock)."""


def rule_of(state_id: str) -> tuple[str, str]:
    """(rule id, " of source ..." or "") of a state id, for logs and metric labels."""
    lane, sep, rid = state_id.partition(LANE_SEP)
    if not sep:
        return state_id, ""
    return rid, "" if lane == FLEET_LANE else f" of source {lane}"


def is_host_local(rule: Rule) -> bool:
    """True when every key the rule joins on names something of one host."""
    specs = [rule.by] if rule.by is not None else [s.by for s in rule.steps if s.by is not None]
    return bool(specs) and all(HOST_FIELDS & set(s.fields) for s in specs)


@dataclass
class _Clock:
    """What the fleet engine knows of one source's time."""

    host: str
    max_ts: int | None = None
    jumped: bool = False  # the last event was refused as a clock jump
    late_burst: bool = False  # late events since the last on-time one
    gone: bool = False
    beats: bool = False  # has sent heartbeats: its time moves only with its own


class FleetEngine:
    """Per-source engines behind the ``Engine`` interface the worker and replay use.

    State ids are ``lane + LANE_SEP + rule id`` (the lane is the source's key, or
    ``*`` for cross-host rules), plus ``(FLEET_KEY, "")`` for the clocks.
    """

    def __init__(self, ruleset: RuleSet, *, lateness_ns: int = 2_000_000_000, max_events: int = 10,
                 max_keys: int = 1_000_000, default_span_ns: int | None = None, track_dirty: bool = False,
                 max_jump_ns: int = 86400 * 10**9, host_timeout_ns: int = 300 * 10**9) -> None:
        self.opts: dict[str, Any] = {"lateness_ns": lateness_ns, "max_events": max_events,
                                     "max_keys": max_keys, "track_dirty": track_dirty}
        if default_span_ns is not None:
            self.opts["default_span_ns"] = default_span_ns
        self.lateness_ns, self.max_jump_ns, self.host_timeout_ns = lateness_ns, max_jump_ns, host_timeout_ns
        self.track_dirty = track_dirty
        self.lanes: dict[str, Engine] = {}
        self.clocks: dict[str, _Clock] = {}
        self.late: Counter[tuple[str, str]] = Counter()  # (rule id, host) -> late events
        self.notices: list[str] = []  # said once each: hosts gone or back, clock jumps
        self._fleet_dirty = False
        self._next_gone_check = 0
        self.applied_offset: int | None = None  # of the input partition, when the caller says it
        self.stats = {"events": 0, "late": 0, "repeated": 0, "alerts": 0, "refused": 0}
        self._split(ruleset)
        self.fleet = Engine(self.fleet_rules, external_time=True, **self.opts)

    # -- rules ------------------------------------------------------------------------
    def _split(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        local = [r for r in ruleset.rules if not r.stateful or is_host_local(r)]
        self.local_rules = RuleSet(local, ruleset.warnings, ruleset.files)
        self.fleet_rules = RuleSet([r for r in ruleset.rules if r not in local], ruleset.warnings,
                                   ruleset.files)

    def replace_ruleset(self, ruleset: RuleSet) -> list[str]:
        """Swap rules in every engine, keeping the state of unchanged rules."""
        self._split(ruleset)
        dropped = set(self.fleet.replace_ruleset(self.fleet_rules))
        for lane in self.lanes.values():
            dropped |= set(lane.replace_ruleset(self.local_rules))
        return sorted(dropped)

    # -- events -----------------------------------------------------------------------
    def process(self, e: dict[str, Any], offset: int | None = None) -> list[Alert]:
        """Evaluate one event. ``offset`` is its position in the input partition: an
        event at or below the last one applied (a successor reading again what its
        restored state holds) is a repeat, skipped, not a late event."""
        if offset is not None:
            if self.applied_offset is not None and offset <= self.applied_offset:
                self.stats["repeated"] += 1
                return []
            self.applied_offset = offset
            self._fleet_dirty = True
        ev = e["event"]
        host = e.get("host") or {}
        src = encode_key((host.get("id", ""), host.get("boot_id", ""))) or ""
        ts = ev["ts_ns"]
        clock = self.clocks.get(src)
        self._check_time(src, clock, ts, host.get("id", ""))
        if clock is None:
            clock = self.clocks[src] = _Clock(host.get("id", ""))
        lane = self._lane(src)
        alerts: list[Alert] = []
        if ev["kind"] == HEARTBEAT:
            if not clock.beats:
                clock.beats = True
                self._fleet_dirty = True
            alerts += lane.tick(ts)
        else:
            self.stats["events"] += 1
            late: list[str] = []
            for eng in (lane, self.fleet) if self.fleet.rules else (lane,):
                n = eng.stats["late"]
                alerts += eng.process(e)
                if eng.stats["late"] != n:
                    late += eng.late_rules
            alerts += self._account_late(e, clock, late)
        if clock.max_ts is None or ts > clock.max_ts:
            clock.max_ts = ts
            self._fleet_dirty = True
        if ts >= self._next_gone_check:
            self._next_gone_check = ts + 10**9
            alerts += self._close_gone(ts)
        elif clock.gone:
            alerts += self._close_gone(ts)
        alerts += self._advance_fleet()
        self.stats["alerts"] += len(alerts)
        return alerts

    def _check_time(self, src: str, clock: _Clock | None, ts: int, host: str) -> None:
        """Refuse an event far ahead of its source's time (or, for a new source, of the
        fleet's); a second such event in a row is the clock really moving on."""
        ref = clock.max_ts if clock is not None and clock.max_ts is not None else self._fleet_max()
        if ref is None or ts - ref <= self.max_jump_ns:
            if clock is not None:
                clock.jumped = False
            return
        if clock is not None and clock.jumped:
            clock.jumped = False
            self.notices.append(f"host {host}: event time moved {(ts - ref) / 1e9:.0f} s ahead; following it")
            return
        if clock is not None:
            clock.jumped = True
        self.stats["refused"] += 1
        self._fleet_dirty = True
        raise EventTimeError(f"event time {ts} is {(ts - ref) / 1e9:.0f} s ahead of host {host!r}'s "
                             f"event time {ref} (more than {self.max_jump_ns / 1e9:.0f} s)")

    def _lane(self, src: str) -> Engine:
        lane = self.lanes.get(src)
        if lane is None:
            lane = self.lanes[src] = Engine(self.local_rules, **self.opts)
        return lane

    def _account_late(self, e: dict[str, Any], clock: _Clock, late: list[str]) -> list[Alert]:
        """Count a late event per rule and host; the first of a burst raises an alert."""
        if not late:
            if clock.late_burst:
                clock.late_burst = False
                self._fleet_dirty = True
            return []
        self.stats["late"] += 1
        for rule_id in late:
            self.late[(rule_id, clock.host)] += 1
        if clock.late_burst:
            return []
        clock.late_burst = True
        self._fleet_dirty = True
        self.notices.append(f"host {clock.host}: late events from event time {e['event']['ts_ns']} "
                            f"(rules {', '.join(sorted(set(late)))}); counted until events are on time")
        return [late_alert(e, sorted(set(late)))]

    def _fleet_max(self) -> int | None:
        times = [c.max_ts for c in self.clocks.values() if c.max_ts is not None]
        return max(times) if times else None

    def _close_gone(self, now: int) -> list[Alert]:
        """Sources silent for ``host_timeout_ns`` of the fleet's event time stop holding the
        cross-host rules back, and their buffered events are applied."""
        alerts: list[Alert] = []
        for src, clock in self.clocks.items():
            silent = clock.max_ts is not None and now - clock.max_ts > self.host_timeout_ns
            if silent and not clock.gone:
                clock.gone = True
                self._fleet_dirty = True
                self.notices.append(f"host {clock.host}: no event or heartbeat for "
                                    f"{self.host_timeout_ns / 1e9:.0f} s of event time; closed out")
                lane = self.lanes.get(src)
                if lane is not None:
                    alerts += lane.flush()
            elif clock.gone and src in self.clocks and clock.max_ts == now:
                clock.gone = False
                self._fleet_dirty = True
                self.notices.append(f"host {clock.host}: back")
        return alerts

    def _advance_fleet(self) -> list[Alert]:
        if not self.fleet.rules:
            return []
        marks = [self.lanes[s].watermark for s, c in self.clocks.items()
                 if not c.gone and s in self.lanes]
        if not marks or any(m is None for m in marks):
            return []
        return self.fleet.advance_watermark(min(marks))  # type: ignore[type-var]

    def advance_watermark(self, ts_ns: int) -> list[Alert]:
        """Move every source's event time to ``ts_ns`` (the end of a replay)."""
        alerts: list[Alert] = []
        for lane in self.lanes.values():
            alerts += lane.advance_watermark(ts_ns)
        alerts += self.fleet.advance_watermark(ts_ns)
        self.stats["alerts"] += len(alerts)
        return alerts

    def advance_idle(self, ts_ns: int) -> list[Alert]:
        """A live worker's idle timer, for sources that send no heartbeats (a source
        that does moves only with its own time, so its delay is never lateness)."""
        alerts: list[Alert] = []
        for src, lane in self.lanes.items():
            clock = self.clocks.get(src)
            if lane.max_ts is None or (clock is not None and clock.beats):
                continue
            target = max(lane.max_ts, ts_ns)
            if lane.watermark is None or lane.watermark < target:
                alerts += lane.advance_watermark(target)
        alerts += self._advance_fleet()
        self.stats["alerts"] += len(alerts)
        return alerts

    def take_late(self) -> Counter[tuple[str, str]]:
        """Late events per (rule, host) since the last call (for a metric)."""
        out, self.late = self.late, Counter()
        return out

    def take_notices(self) -> list[str]:
        out, self.notices = self.notices, []
        return out

    def flush(self) -> list[Alert]:
        alerts: list[Alert] = []
        for lane in self.lanes.values():
            alerts += lane.flush()
        return alerts + self.fleet.flush()

    @property
    def max_ts(self) -> int | None:
        return self._fleet_max()

    # -- state ------------------------------------------------------------------------
    def _engines(self) -> list[tuple[str, Engine]]:
        return [*self.lanes.items(), (FLEET_LANE, self.fleet)]

    def take_dirty(self) -> set[tuple[str, str]]:
        out = {(f"{name}{LANE_SEP}{rid}", key)
               for name, eng in self._engines() for rid, key in eng.take_dirty()}
        if self._fleet_dirty and self.track_dirty:
            out.add((FLEET_KEY, ""))
        self._fleet_dirty = False
        return out

    def _split_id(self, state_id: str) -> tuple[Engine | None, str, str]:
        name, _, rid = state_id.partition(LANE_SEP)
        eng = self.fleet if name == FLEET_LANE else self.lanes.get(name)
        return eng, name, rid

    def export_state(self, state_id: str, key: str) -> bytes | None:
        if state_id == FLEET_KEY:
            return json.dumps({"offset": self.applied_offset,
                               "clocks": {s: [c.host, c.max_ts, c.jumped, c.late_burst, c.gone, c.beats]
                                          for s, c in self.clocks.items()}}).encode()
        eng, _, rid = self._split_id(state_id)
        return None if eng is None else eng.export_state(rid, key)

    def fingerprint(self, state_id: str) -> str | None:
        if state_id == FLEET_KEY:
            return ""
        eng, name, rid = self._split_id(state_id)
        if eng is None:
            eng = self._lane(name)
        return eng.fingerprint(rid) if rid != ENGINE_KEY else ""

    def import_state(self, state_id: str, key: str, blob: bytes) -> None:
        if state_id == FLEET_KEY:
            try:
                data = json.loads(blob)
                offset = None if data["offset"] is None else int(data["offset"])
                clocks = {str(s): _Clock(str(h), None if t is None else int(t), bool(j), bool(b), bool(g),
                                         bool(hb)) for s, (h, t, j, b, g, hb) in data["clocks"].items()}
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise StateError(f"fleet clocks: {type(exc).__name__}: {exc}") from exc
            self.clocks.update(clocks)
            self.applied_offset = offset
            return
        if LANE_SEP not in state_id:
            raise StateError(f"state id {state_id!r} names no event source")
        eng, name, rid = self._split_id(state_id)
        (eng or self._lane(name)).import_state(rid, key, blob)

    def state_size(self) -> int:
        return sum(eng.state_size() for _, eng in self._engines())


def late_alert(e: dict[str, Any], rules: list[str]) -> Alert:
    """The first late event of a burst from one source: detections that could not be
    evaluated are themselves visible to the SIEM."""
    ev, host = e["event"], e.get("host") or {}
    host_id = host.get("id", "")
    return alert_record(
        rule_id=LATE_RULE, rule_name="Events arrived too late for their rules",
        description="Events of this host arrived after event time had passed them: the stateful "
                    "rules they touch could not evaluate them.",
        level="warning", tags=["pipeline", "integrity"], group_key=f"{host_id}|{host.get('boot_id', '')}",
        first_event_id=ev["id"], first_seen_ns=ev["ts_ns"], last_seen_ns=ev["ts_ns"], event_count=1,
        events=[{"id": ev["id"], "kind": ev["kind"], "ts_ns": ev["ts_ns"], "summary": ""}],
        host_id=host_id,
        message=f"late events from host {host_id}: {ev['kind']} at {ev['ts_ns']} missed "
                f"{', '.join(rules)}",
        fields={"boot_id": host.get("boot_id", ""), "rules": ",".join(rules)})
