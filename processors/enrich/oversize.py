"""An enriched event over the record size limit, made to fit: its argv (the
process's and its parent's, the only unbounded fields) is cut with a visible
marker, and the caller flags the record; a record that cannot fit even with
empty argv is the caller's to dead-letter. A 900 KB argv inherited by children
used to crash the enrich agent (MSG_SIZE_TOO_LARGE) and skip its input."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["CUT_MARKER", "fit_args"]

CUT_MARKER = "...[eunomia: {n} bytes of argv cut, over the {limit}-byte record limit]"
SLACK = 256  # the marker and Avro length prefixes


def _arg_lists(rec: dict[str, Any]) -> list[list[str]]:
    proc = rec.get("process") or {}
    lists = [proc.get("args")]
    parent = proc.get("parent")
    if isinstance(parent, dict):
        lists.append(parent.get("args"))
    return [x for x in lists if x]


def _cut(args: list[str], drop: int, limit: int) -> list[str]:
    """``args`` less at least ``drop`` bytes from the end, marked."""
    size = sum(len(a.encode()) for a in args)
    keep = max(0, size - drop - SLACK)
    out: list[str] = []
    used = 0
    for a in args:
        b = a.encode()
        if used + len(b) > keep:
            out.append(b[: keep - used].decode(errors="ignore"))
            break
        out.append(a)
        used += len(b)
    out.append(CUT_MARKER.format(n=size - keep, limit=limit))
    return out


def fit_args(rec: dict[str, Any], encode: Callable[[dict[str, Any]], bytes], limit: int
             ) -> tuple[bytes, int] | None:
    """(encoded record of at most ``limit`` bytes, argv bytes cut), cutting the
    largest argv first; None when even empty argv leave it over the limit.
    ``rec`` is not changed."""
    value = encode(rec)
    if len(value) <= limit:
        return value, 0
    rec = copy.deepcopy(rec)
    cut = 0
    for _ in range(4):
        lists = sorted(_arg_lists(rec), key=lambda a: sum(len(x.encode()) for x in a), reverse=True)
        if not lists or all(len(a) == 1 and a[0].startswith("...[eunomia:") for a in lists):
            return None
        over = len(value) - limit
        biggest = lists[0]
        before = sum(len(x.encode()) for x in biggest)
        biggest[:] = _cut(biggest, over, limit)
        cut += before - sum(len(x.encode()) for x in biggest[:-1])
        value = encode(rec)
        if len(value) <= limit:
            return value, cut
    return None
