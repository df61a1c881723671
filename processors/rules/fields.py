"""The fields a condition may name, derived from ``enriched_event.avsc`` so a
typo is a load error rather than a rule that silently never matches.

A getter is a closure specialised on the path depth (the hot path runs one per
predicate per event). Fields that pass through an array (``process.ancestors.name``,
``process.args``) are multi-valued: their getter returns a list and operators
match when any element matches. ``process.lineage.*`` is virtual: the process
itself followed by its ancestors, so "in one process tree" is one field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["FieldSpec", "field_spec", "getter", "known_fields"]

Getter = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class FieldSpec:
    path: tuple[str, ...]
    ftype: str  # string, int, bool, map
    multi: bool = False
    array_at: int = -1  # index in path of the array-valued component


_PRIMS = {"string": "string", "int": "int", "long": "int", "boolean": "bool", "bytes": "string"}


def _walk(t: Any, named: dict[str, Any], prefix: tuple[str, ...], multi_at: int,
          out: dict[tuple[str, ...], FieldSpec]) -> None:
    if isinstance(t, list):
        for branch in t:
            if branch != "null":
                _walk(branch, named, prefix, multi_at, out)
        return
    if isinstance(t, str):
        if t in named:
            _walk(named[t], named, prefix, multi_at, out)
        else:
            out[prefix] = FieldSpec(prefix, _PRIMS.get(t, "string"), multi_at >= 0, multi_at)
        return
    kind = t["type"]
    if kind == "record":
        named[t["name"]] = t
        for f in t["fields"]:
            _walk(f["type"], named, (*prefix, f["name"]), multi_at, out)
    elif kind == "array":
        items = t["items"]
        if isinstance(items, str) and items in _PRIMS:
            out[prefix] = FieldSpec(prefix, _PRIMS[items], True, len(prefix) - 1)
        elif multi_at < 0:
            _walk(items, named, prefix, len(prefix) - 1, out)
    elif kind == "map":
        out[prefix] = FieldSpec(prefix, "map", multi_at >= 0, multi_at)
    else:
        _walk(kind, named, prefix, multi_at, out)


@cache
def known_fields() -> dict[str, FieldSpec]:
    schema = json.loads(resources.files("eunomia.schemas").joinpath("enriched_event.avsc").read_text())
    out: dict[tuple[str, ...], FieldSpec] = {}
    _walk(schema, {}, (), -1, out)
    fields = {".".join(k): v for k, v in out.items()}
    for name in ("name", "exec_id", "executable", "pid"):
        base = fields[f"process.{name}"]
        fields[f"process.lineage.{name}"] = FieldSpec(("process", "lineage", name), base.ftype, True, 1)
    return fields


def field_spec(name: str) -> FieldSpec | None:
    """The spec of ``name``; map fields accept one more component (``container.labels.app``)."""
    fields = known_fields()
    spec = fields.get(name)
    if spec is not None:
        return spec
    head, _, key = name.rpartition(".")
    parent = fields.get(head)
    if parent is not None and parent.ftype == "map" and key:
        vtype = "int" if head == "ns" else "string"
        return FieldSpec((*parent.path, key), vtype, parent.multi, parent.array_at)
    return None


def _scalar_getter(path: tuple[str, ...]) -> Getter:
    if len(path) == 1:
        (a,) = path
        return lambda e: e.get(a)
    if len(path) == 2:
        a, b = path

        def g2(e: dict[str, Any]) -> Any:
            v = e.get(a)
            return None if v is None else v.get(b)
        return g2
    if len(path) == 3:
        a, b, c = path

        def g3(e: dict[str, Any]) -> Any:
            v = e.get(a)
            if v is None:
                return None
            v = v.get(b)
            return None if v is None else v.get(c)
        return g3

    def gn(e: dict[str, Any]) -> Any:
        v: Any = e
        for p in path:
            v = v.get(p)
            if v is None:
                return None
        return v
    return gn


@cache
def getter(name: str) -> Getter:
    """A fast accessor for a known field name (see ``field_spec``)."""
    spec = field_spec(name)
    if spec is None:
        raise KeyError(name)
    path = spec.path
    if path[:2] == ("process", "lineage"):
        leaf = path[2]

        def lineage(e: dict[str, Any]) -> list[Any]:
            p = e.get("process")
            if p is None:
                return []
            return [p.get(leaf), *[a.get(leaf) for a in p.get("ancestors") or ()]]
        return lineage
    if not spec.multi:
        return _scalar_getter(path)
    head = _scalar_getter(path[: spec.array_at + 1])
    rest = path[spec.array_at + 1:]
    if not rest:
        return lambda e: head(e) or []
    tail = _scalar_getter(rest)
    return lambda e: [tail(x) for x in head(e) or ()]
