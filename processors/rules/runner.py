"""What every stateful form shares: per-key state in a plain dict (JSON-able, so
the worker can snapshot one key into a faust Table), deadlines on the engine's
timer heap, dirty-key tracking, a bound on the number of keys, and the one
encoding of a join key as a state key."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from eunomia.processors.rules.model import Rule

__all__ = ["Runner", "Timers", "encode_key"]


def encode_key(values: tuple[Any, ...]) -> str | None:
    """A join key as one string, or None when a value is missing (a null never joins).

    Values are joined with ``|`` after escaping ``\\`` and ``|``, so two different
    tuples never give the same string while keys without those characters read
    as before (alert ids hash this string)."""
    if any(v is None for v in values):
        return None
    return "|".join(str(v).replace("\\", "\\\\").replace("|", "\\|") for v in values)


@dataclass
class Timers:
    """The engine's shared deadline heap: (deadline_ns, rule id, key); stale
    entries are skipped when popped (the runner's ``sched`` holds the live one)."""

    heap: list[tuple[int, str, str]] = field(default_factory=list)
    dirty: set[tuple[str, str]] | None = None
    evicted: int = 0

    def push(self, deadline: int, rule_id: str, key: str) -> None:
        heapq.heappush(self.heap, (deadline, rule_id, key))


class Runner:
    """Base of the form engines; subclasses implement ``on_event`` and ``expire``."""

    def __init__(self, rule: Rule, timers: Timers, max_keys: int, max_events: int, default_span_ns: int):
        self.rule = rule
        self.timers = timers
        self.max_keys = max_keys
        self.max_events = max_events
        self.default_span_ns = default_span_ns
        self.states: dict[str, Any] = {}
        self.sched: dict[str, int] = {}

    # -- bookkeeping ------------------------------------------------------------
    def touch(self, key: str) -> None:
        if self.timers.dirty is not None:
            self.timers.dirty.add((self.rule.id, key))

    def put(self, key: str, state: Any, deadline: int | None) -> None:
        """Store a key's state and make sure a timer fires by ``deadline``."""
        states = self.states
        if key not in states and len(states) >= self.max_keys:
            old = next(iter(states))
            del states[old]
            self.sched.pop(old, None)
            self.touch(old)
            self.timers.evicted += 1
        states[key] = state
        self.touch(key)
        if deadline is not None:
            cur = self.sched.get(key)
            if cur is None or deadline < cur:
                self.sched[key] = deadline
                self.timers.push(deadline, self.rule.id, key)

    def drop(self, key: str) -> None:
        if self.states.pop(key, None) is not None:
            self.touch(key)
        self.sched.pop(key, None)

    def on_timer(self, key: str, deadline: int, wm: int) -> list[dict[str, Any]]:
        """Called for a popped heap entry once ``wm`` is past ``deadline``."""
        if self.sched.get(key) != deadline or key not in self.states:
            return []  # stale entry
        del self.sched[key]
        alerts, nxt = self.expire(key, wm)
        if key in self.states:
            if nxt is None:
                self.drop(key)
            else:
                self.sched[key] = nxt
                self.timers.push(nxt, self.rule.id, key)
        return alerts

    # -- snapshots ------------------------------------------------------------------
    def export(self, key: str) -> Any:
        return self.states.get(key)

    def restore(self, key: str, state: Any) -> None:
        d = self.deadline(state)  # first: a state it cannot read is not kept
        self.states[key] = state
        if d is not None:
            self.sched[key] = d
            self.timers.push(d, self.rule.id, key)

    # -- per form -----------------------------------------------------------------------
    def on_event(self, e: dict[str, Any], hits: list[int], until: bool) -> list[dict[str, Any]]:
        raise NotImplementedError

    def expire(self, key: str, wm: int) -> tuple[list[dict[str, Any]], int | None]:
        raise NotImplementedError

    def deadline(self, state: Any) -> int | None:
        raise NotImplementedError
