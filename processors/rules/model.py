"""Compiled rules: what the loader produces and the engine runs, kept apart from
the state machines that run them so a reload swaps definitions while the engine
keeps the state of rules whose fingerprint did not change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eunomia.processors.alerts import LEVEL_SEVERITY
from eunomia.processors.rules.compile import Predicate
from eunomia.processors.rules.errors import Diagnostic

__all__ = ["LEVEL_SEVERITY", "KeySpec", "Rule", "RuleSet", "Step"]

# Falco priorities -> (level, OCSF severity_id)
PRIORITY = {
    "EMERGENCY": ("alert", 6), "ALERT": ("alert", 5), "CRITICAL": ("alert", 5),
    "ERROR": ("alert", 4), "WARNING": ("warning", 3), "NOTICE": ("warning", 2),
    "INFORMATIONAL": ("event", 1), "INFO": ("event", 1), "DEBUG": ("event", 1),
}


@dataclass(frozen=True)
class KeySpec:
    """Fields whose values form a group/join key; ``multi`` marks list-valued ones."""

    fields: tuple[str, ...]
    getters: tuple[Callable[[dict[str, Any]], Any], ...]
    multi: tuple[bool, ...]

    def keys(self, event: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every key of the event (more than one only through list-valued fields)."""
        out: list[tuple[Any, ...]] = [()]
        for g, m in zip(self.getters, self.multi, strict=True):
            v = g(event)
            if m:
                vals = [x for x in (v or ()) if x is not None]
                out = [(*k, x) for k in out for x in vals]
            else:
                out = [(*k, v) for k in out]
        return out


@dataclass
class Step:
    name: str
    predicate: Predicate
    kinds: frozenset[str] | None
    by: KeySpec | None = None
    missing: bool = False
    within_ns: int | None = None


@dataclass
class Rule:
    id: str
    name: str
    desc: str
    level: str
    severity_id: int
    tags: list[str]
    output: str
    output_fields: list[str]
    form: str  # single, sequence, threshold, distinct, temporal, temporal_ordered
    kinds: frozenset[str] | None  # event kinds that can touch this rule (None: any)
    fingerprint: str
    source: str  # file:line
    predicate: Predicate | None = None  # single, threshold, distinct filter
    steps: list[Step] = field(default_factory=list)
    by: KeySpec | None = None
    maxspan_ns: int | None = None
    until: Predicate | None = None
    until_by: KeySpec | None = None  # the until's own keys (None: the first step's)
    until_kinds: frozenset[str] | None = None
    timespan_ns: int = 0
    count_op: str = "gte"
    count_value: int = 1
    distinct_field: Callable[[dict[str, Any]], Any] | None = None
    enabled: bool = True

    @property
    def stateful(self) -> bool:
        return self.form != "single"

    def count_ok(self, n: int) -> bool:
        v = self.count_value
        return {"gt": n > v, "gte": n >= v, "lt": n < v, "lte": n <= v, "eq": n == v}[self.count_op]


@dataclass
class RuleSet:
    rules: list[Rule]
    warnings: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}
