"""Condition AST -> predicate closures (never eval), with macro and list
expansion and type checks against the event schema.

Errors are collected, not raised, so one pass reports every problem of a
condition. A missing field makes every comparison false (Falco's rule), so
``!=`` never matches an event that lacks the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

from eunomia.processors.rules.condition import And, Cmp, Exists, Macro, Node, Not, Or, Value
from eunomia.processors.rules.fields import FieldSpec, field_spec, getter

__all__ = ["CompileIssue", "Compiler", "Predicate", "event_kinds"]

Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class CompileIssue:
    code: str
    kw: dict[str, Any]
    pos: int
    macro: str | None = None  # set when the issue is inside a macro's condition


def _true(e: dict[str, Any]) -> bool:
    return True


_STRING_OPS = {"=", "!=", "in", "startswith", "endswith", "contains", "icontains", "glob"}
_INT_OPS = {"=", "!=", "<", "<=", ">", ">=", "in"}
_BOOL_OPS = {"=", "!="}
_INT_RE = re.compile(r"-?\d+\Z")


@dataclass
class Compiler:
    """Expands macros and lists of one rule set and builds predicates."""

    lists: dict[str, list[str]]
    macros: dict[str, Node]
    issues: list[CompileIssue] = field(default_factory=list)

    def compile(self, node: Node) -> Predicate:
        return self._build(self.expand(node, ()))

    # -- expansion --------------------------------------------------------
    def expand(self, node: Node, stack: tuple[str, ...]) -> Node:
        if isinstance(node, Macro):
            if node.name in stack:
                self._issue("E013", node.pos, stack, name=node.name)
                return And(())
            body = self.macros.get(node.name)
            if body is None:
                self._issue("E012", node.pos, stack, name=node.name)
                return And(())
            return self.expand(body, (*stack, node.name))
        if isinstance(node, And):
            return And(tuple(self.expand(n, stack) for n in node.items))
        if isinstance(node, Or):
            return Or(tuple(self.expand(n, stack) for n in node.items))
        if isinstance(node, Not):
            return Not(self.expand(node.item, stack))
        if isinstance(node, Exists):
            if field_spec(node.field) is None:
                self._issue("E011", node.pos, stack, field=node.field)
            return node
        return self._expand_cmp(node, stack)

    def _expand_cmp(self, node: Cmp, stack: tuple[str, ...]) -> Node:
        spec = field_spec(node.field)
        if spec is None:
            self._issue("E011", node.pos, stack, field=node.field)
            return And(())
        values: list[Value] = []
        for v in node.values:
            if node.op == "in" and not v.quoted and v.text in self.lists:
                values.extend(Value(t, True, v.pos) for t in self.lists[v.text])
            else:
                values.append(v)
        allowed = {"string": _STRING_OPS, "int": _INT_OPS, "bool": _BOOL_OPS}.get(spec.ftype, set())
        if node.op not in allowed:
            self._issue("E018", node.pos, stack, op=node.op, ftype=spec.ftype, field=node.field)
            return And(())
        typed = []
        for v in values:
            if spec.ftype == "int":
                if not _INT_RE.match(v.text):
                    self._issue("E019", v.pos, stack, value=v.text, field=node.field)
                    return And(())
                typed.append(int(v.text))
            elif spec.ftype == "bool":
                if v.text not in ("true", "false"):
                    self._issue("E019", v.pos, stack, value=v.text, field=node.field)
                    return And(())
                typed.append(v.text == "true")
            else:
                typed.append(v.text)
        return _Typed(node.field, spec, node.op, tuple(typed))

    def _issue(self, code: str, pos: int, stack: tuple[str, ...], **kw: Any) -> None:
        self.issues.append(CompileIssue(code, kw, pos, stack[-1] if stack else None))

    # -- building ---------------------------------------------------------
    def _build(self, node: Any) -> Predicate:
        if isinstance(node, And):
            preds = [self._build(n) for n in node.items]
            return _chain(preds, all_=True)
        if isinstance(node, Or):
            return _chain([self._build(n) for n in node.items], all_=False)
        if isinstance(node, Not):
            inner = self._build(node.item)
            return lambda e: not inner(e)
        if isinstance(node, Exists):
            spec = field_spec(node.field)
            if spec is None:
                return _true
            g = getter(node.field)
            if spec.multi:
                return lambda e: bool(g(e))
            return lambda e: g(e) is not None
        return _cmp(node)


@dataclass(frozen=True)
class _Typed:
    field: str
    spec: FieldSpec
    op: str
    values: tuple[Any, ...]


def _chain(preds: list[Predicate], all_: bool) -> Predicate:
    if not preds:
        return _true if all_ else (lambda e: False)
    p = preds[-1]
    for q in reversed(preds[:-1]):
        p = _and2(q, p) if all_ else _or2(q, p)
    return p


def _and2(a: Predicate, b: Predicate) -> Predicate:
    return lambda e: a(e) and b(e)


def _or2(a: Predicate, b: Predicate) -> Predicate:
    return lambda e: a(e) or b(e)


def _scalar_test(op: str, values: tuple[Any, ...]) -> Callable[[Any], bool]:
    x = values[0]
    if op == "=":
        return lambda v: v == x
    if op == "!=":
        return lambda v: v != x
    if op == "in":
        s = frozenset(values)
        return lambda v: v in s
    if op == "<":
        return lambda v: v < x
    if op == "<=":
        return lambda v: v <= x
    if op == ">":
        return lambda v: v > x
    if op == ">=":
        return lambda v: v >= x
    if op == "startswith":
        return lambda v: v.startswith(x)
    if op == "endswith":
        return lambda v: v.endswith(x)
    if op == "contains":
        return lambda v: x in v
    if op == "icontains":
        lx = x.lower()
        return lambda v: lx in v.lower()
    if op == "glob":
        rx = re.compile(translate(x)).match
        return lambda v: rx(v) is not None
    raise ValueError(op)


def _cmp(t: _Typed) -> Predicate:
    g = getter(t.field)
    x = t.values[0]
    if t.spec.multi:
        if t.op == "in":
            s = frozenset(t.values)
            return lambda e: not s.isdisjoint(v for v in g(e) if v is not None)
        test = _scalar_test(t.op, t.values)
        return lambda e: any(v is not None and test(v) for v in g(e))
    # specialised closures for the hot operators
    if t.op == "=":
        return lambda e: g(e) == x
    if t.op == "in":
        s = frozenset(t.values)
        return lambda e: g(e) in s
    if t.op == "startswith" and len(t.values) == 1:
        return lambda e: (v := g(e)) is not None and v.startswith(x)
    test = _scalar_test(t.op, t.values)
    return lambda e: (v := g(e)) is not None and test(v)


def event_kinds(node: Any) -> frozenset[str] | None:
    """The ``event.kind`` values an expanded condition can match, or None for any:
    the engine indexes rules by kind so most are skipped with one dict lookup."""
    if isinstance(node, _Typed):
        if node.field == "event.kind" and node.op in ("=", "in"):
            return frozenset(node.values)
        return None
    if isinstance(node, And):
        out: frozenset[str] | None = None
        for n in node.items:
            k = event_kinds(n)
            if k is not None:
                out = k if out is None else out & k
        return out
    if isinstance(node, Or):
        acc: frozenset[str] = frozenset()
        for n in node.items:
            k = event_kinds(n)
            if k is None:
                return None
            acc |= k
        return acc
    return None
