"""Sigma correlation forms (event_count, value_count, temporal, temporal_ordered)
over sliding event-time windows per group key; docs/sequences.md gives their
window semantics next to those of sequences."""

from __future__ import annotations

from typing import Any

from eunomia.processors.rules.alerts import make_alert, ref, snap
from eunomia.processors.rules.runner import Runner, encode_key

__all__ = ["DistinctRunner", "TemporalRunner", "ThresholdRunner"]


class _Grouped(Runner):
    def key_of(self, e: dict[str, Any]) -> str | None:
        """The event's group key; None (the event is not counted) when a group-by
        value is missing, so events lacking a field never form a group together."""
        by = self.rule.by
        if by is None:
            return ""
        ks = by.keys(e)
        return encode_key(ks[0]) if ks else None

    @property
    def eager(self) -> bool:
        return self.rule.count_op in ("gt", "gte")


class ThresholdRunner(_Grouped):
    """state: {"ev": [refs in window], "n": count in window, "t0": anchor, "snap": last (lazy ops)}"""

    def deadline(self, state: dict[str, Any]) -> int | None:
        if self.eager:
            return state["ev"][-1][2] + self.rule.timespan_ns if state["ev"] else None
        return state["t0"] + self.rule.timespan_ns

    def on_event(self, e: dict[str, Any], hits: list[int], until: bool) -> list[dict[str, Any]]:
        k = self.key_of(e)
        if k is None:
            return []
        ts = e["event"]["ts_ns"]
        span = self.rule.timespan_ns
        st = self.states.get(k)
        if self.eager:
            if st is None:
                st = {"ev": [], "n": 0}
            evs = st["ev"]
            lo = ts - span
            drop = 0
            while drop < len(evs) and evs[drop][2] < lo:
                drop += 1
            if drop:
                del evs[:drop]
            evs.append(ref(e))
            st["n"] = len(evs)
            if self.rule.count_ok(len(evs)):
                self.drop(k)
                return [make_alert(self.rule, k, evs, len(evs), snap(self.rule, e), self.max_events)]
            self.put(k, st, ts + span)
            return []
        if st is None:
            st = {"t0": ts, "ev": [], "n": 0}
        st["n"] += 1
        if len(st["ev"]) < self.max_events:
            st["ev"].append(ref(e))
        st["snap"] = snap(self.rule, e)
        self.put(k, st, st["t0"] + span)
        return []

    def expire(self, key: str, wm: int) -> tuple[list[dict[str, Any]], int | None]:
        st = self.states[key]
        if self.eager:
            evs = st["ev"]
            lo = wm - self.rule.timespan_ns
            while evs and evs[0][2] < lo:
                evs.pop(0)
            st["n"] = len(evs)
            self.touch(key)
            return [], self.deadline(st) if evs else None
        alerts = []
        if self.rule.count_ok(st["n"]):
            alerts.append(make_alert(self.rule, key, st["ev"], st["n"], st["snap"], self.max_events))
        return alerts, None


class DistinctRunner(_Grouped):
    """state: {"v": {value: ref of its latest event}} ordered by latest time."""

    def deadline(self, state: dict[str, Any]) -> int | None:
        v = state["v"]
        if not v:
            return None
        newest = next(reversed(v.values()))[2]
        return newest + self.rule.timespan_ns

    def on_event(self, e: dict[str, Any], hits: list[int], until: bool) -> list[dict[str, Any]]:
        value = self.rule.distinct_field(e) if self.rule.distinct_field else None
        k = self.key_of(e)
        if value is None or k is None:
            return []
        ts = e["event"]["ts_ns"]
        st = self.states.get(k) or {"v": {}}
        vals = st["v"]
        lo = ts - self.rule.timespan_ns
        while vals:
            first = next(iter(vals))
            if vals[first][2] >= lo:
                break
            del vals[first]
        sv = str(value)
        vals.pop(sv, None)
        vals[sv] = ref(e)
        if self.eager and self.rule.count_ok(len(vals)):
            refs = sorted(vals.values(), key=lambda r: (r[2], r[0]))
            self.drop(k)
            return [make_alert(self.rule, k, refs, len(refs), snap(self.rule, e), self.max_events)]
        if not self.eager:
            st.setdefault("t0", ts)
            st["snap"] = snap(self.rule, e)
        self.put(k, st, self.deadline(st) if self.eager else st["t0"] + self.rule.timespan_ns)
        return []

    def expire(self, key: str, wm: int) -> tuple[list[dict[str, Any]], int | None]:
        st = self.states[key]
        vals = st["v"]
        if not self.eager:
            refs = sorted(vals.values(), key=lambda r: (r[2], r[0]))
            ok = refs and self.rule.count_ok(len(refs))
            return ([make_alert(self.rule, key, refs, len(refs), st["snap"], self.max_events)]
                    if ok else []), None
        lo = wm - self.rule.timespan_ns
        for v in [v for v, r in vals.items() if r[2] < lo]:
            del vals[v]
        self.touch(key)
        return [], self.deadline(st)


class TemporalRunner(_Grouped):
    """temporal: {"s": {step index: ref}}; temporal_ordered: {"c": {step index: [t0, refs]}}."""

    def deadline(self, state: dict[str, Any]) -> int | None:
        span = self.rule.timespan_ns
        if "s" in state:
            return max(r[2] for r in state["s"].values()) + span if state["s"] else None
        return max(c[0] for c in state["c"].values()) + span if state["c"] else None

    def on_event(self, e: dict[str, Any], hits: list[int], until: bool) -> list[dict[str, Any]]:
        k = self.key_of(e)
        if k is None:
            return []
        ts = e["event"]["ts_ns"]
        span = self.rule.timespan_ns
        n = len(self.rule.steps)
        r = ref(e)
        if self.rule.form == "temporal":
            st = self.states.get(k) or {"s": {}}
            seen = {i: x for i, x in st["s"].items() if x[2] >= ts - span}
            for i in hits:
                seen[str(i)] = r
            if len(seen) == n:
                refs = sorted(seen.values(), key=lambda x: (x[2], x[0]))
                self.drop(k)
                return [make_alert(self.rule, k, refs, n, snap(self.rule, e), self.max_events)]
            st["s"] = seen
            self.put(k, st, self.deadline(st))
            return []
        st = self.states.get(k) or {"c": {}}
        chains = st["c"]
        for i in sorted(hits, reverse=True):
            if i == 0:
                chains["0"] = [ts, [r]]
                continue
            prev = chains.get(str(i - 1))
            if prev is None or ts - prev[0] > span:
                continue
            chains[str(i)] = [prev[0], [*prev[1], r]]
            if i == n - 1:
                refs = chains[str(i)][1]
                self.drop(k)
                return [make_alert(self.rule, k, refs, n, snap(self.rule, e), self.max_events)]
        self.put(k, st, self.deadline(st))
        return []

    def expire(self, key: str, wm: int) -> tuple[list[dict[str, Any]], int | None]:
        st = self.states[key]
        lo = wm - self.rule.timespan_ns
        if "s" in st:
            st["s"] = {i: x for i, x in st["s"].items() if x[2] >= lo}
        else:
            st["c"] = {i: c for i, c in st["c"].items() if c[0] >= lo}
        self.touch(key)
        return [], self.deadline(st)
