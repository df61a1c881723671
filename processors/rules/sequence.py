"""Sequences with the semantics of Elastic EQL sequences (docs/sequences.md has
them, with the EQL and Sigma equivalents): ordered steps joined on a key,
within maxspan, cancelled by until, with repeated and missing-event steps."""

from __future__ import annotations

from typing import Any

from eunomia.processors.rules.alerts import make_alert, ref, snap
from eunomia.processors.rules.model import KeySpec
from eunomia.processors.rules.runner import Runner, encode_key

__all__ = ["SequenceRunner"]


class SequenceRunner(Runner):
    """State per join key: ``{"<j>": pending}``, j the number of steps completed;
    one pending sequence per j (a newer one replaces the older).

    pending = {"t0": first ts, "tl": last ts, "ev": [refs], "n": count, "gk": group key,
               "snap": alert context of the latest event, "dl": missing-step deadline or absent}
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.setup()

    def setup(self) -> None:
        steps = self.rule.steps
        self.n = len(steps)
        self.missing = steps[-1].missing
        self.positive = self.n - 1 if self.missing else self.n
        self.span = self.rule.maxspan_ns or self.default_span_ns

    def _keys(self, own: KeySpec | None, e: dict[str, Any]) -> list[str]:
        """The event's join keys: the sequence's ``by`` values then ``own`` (a step's
        or the until's keys); a key with a missing value is left out."""
        base: list[tuple[Any, ...]] = self.rule.by.keys(e) if self.rule.by else [()]
        tuples = base if own is None else [(*b, *s) for b in base for s in own.keys(e)]
        return [k for k in map(encode_key, tuples) if k is not None]

    def deadline(self, state: dict[str, dict[str, Any]]) -> int | None:
        ds = [p.get("dl", p["t0"] + self.span) for p in state.values()]
        return min(ds) if ds else None

    def on_event(self, e: dict[str, Any], hits: list[int], until: bool) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        ts = e["event"]["ts_ns"]
        if until:
            own = self.rule.until_by if self.rule.until_by is not None else self.rule.steps[0].by
            for k in self._keys(own, e):
                if k in self.states:
                    self.drop(k)
        for i in sorted(hits, reverse=True):
            for k in self._keys(self.rule.steps[i].by, e):
                if i == 0:
                    self._start(k, e, ts)
                    continue
                state = self.states.get(k)
                if state is None:
                    continue
                p = state.get(str(i))
                if p is None:
                    continue
                if ts - p["t0"] > self.span:
                    del state[str(i)]
                    self._store(k, state)
                    continue
                del state[str(i)]
                if self.rule.steps[i].missing:  # the awaited event came: no alert
                    self._store(k, state)
                    continue
                p["tl"] = ts
                p["n"] += 1
                p["ev"].append(ref(e))
                if len(p["ev"]) > self.max_events:
                    del p["ev"][self.max_events - 1]
                p["snap"] = snap(self.rule, e)
                if i + 1 == self.n:
                    self._store(k, state)
                    alerts.append(make_alert(self.rule, p["gk"], p["ev"], p["n"], p["snap"], self.max_events))
                    continue
                self._advance(k, state, i + 1, p)
        return alerts

    def _start(self, k: str, e: dict[str, Any], ts: int) -> None:
        p = {"t0": ts, "tl": ts, "ev": [ref(e)], "n": 1, "gk": k}
        p["snap"] = snap(self.rule, e)
        state = self.states.get(k) or {}
        self._advance(k, state, 1, p)

    def _advance(self, k: str, state: dict[str, Any], j: int, p: dict[str, Any]) -> None:
        if self.missing and j == self.positive:
            within = self.rule.steps[-1].within_ns
            p["dl"] = min(p["tl"] + within, p["t0"] + self.span) if within else p["t0"] + self.span
        state[str(j)] = p  # overwrite: one pending sequence per state per key
        d = p.get("dl", p["t0"] + self.span)
        self.put(k, state, d)

    def _store(self, k: str, state: dict[str, Any]) -> None:
        if state:
            self.states[k] = state
            self.touch(k)
        else:
            self.drop(k)

    def expire(self, key: str, wm: int) -> tuple[list[dict[str, Any]], int | None]:
        state = self.states[key]
        alerts: list[dict[str, Any]] = []
        for j in sorted(state, key=int):
            p = state[j]
            if "dl" in p and wm > p["dl"]:
                alerts.append(make_alert(self.rule, p["gk"], p["ev"], p["n"], p["snap"], self.max_events))
                del state[j]
            elif wm > p["t0"] + self.span:
                del state[j]
        self.touch(key)
        return alerts, self.deadline(state)
