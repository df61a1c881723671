"""Drain the in-kernel syscall counters (bpf/syscalls.c) once per interval.

The kernel side writes to one of two map pairs; ``drain`` flips the selector,
waits one RCU grace period's worth for programs already running on the old
pair, then reads and empties it. Records follow schemas/syscall_counts.avsc.
"""

from __future__ import annotations

import ctypes as ct
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["SyscallCounts"]

_SETTLE_S = 0.002  # a tracepoint program runs for microseconds


class SyscallCounts:
    def __init__(self, bpf: Any) -> None:
        self._ctl = bpf["sc_ctl"]
        self._counts = (bpf["sc_counts0"], bpf["sc_counts1"])
        self._procs = (bpf["sc_procs0"], bpf["sc_procs1"])
        self._active = 0
        self._last = time.monotonic_ns()

    def _flip(self) -> int:
        idle = self._active
        self._active ^= 1
        self._ctl[ct.c_int(0)] = ct.c_uint32(self._active)
        time.sleep(_SETTLE_S)
        return idle

    def drain(self) -> tuple[int, dict[tuple[int, int], dict[str, Any]]]:
        """(interval_ns, {(cgroup_id, pid): {"counts": {nr: n}, "comm", "start_ns"}})."""
        idle = self._flip()
        now = time.monotonic_ns()
        interval, self._last = now - self._last, now
        counts, procs = self._counts[idle], self._procs[idle]
        out: dict[tuple[int, int], dict[str, Any]] = defaultdict(
            lambda: {"counts": defaultdict(int), "comm": "", "start_ns": 0})
        for k, per_cpu in _pop_all(counts):
            out[(k.cgroup_id, k.pid)]["counts"][k.nr] += sum(per_cpu)
        for k, v in _pop_all(procs):
            entry = out.get((v.cgroup_id, getattr(k, "value", k)))
            if entry is not None:
                entry["comm"] = bytes(v.comm).split(b"\0", 1)[0].decode("utf-8", "replace")
                entry["start_ns"] = v.start_ns
        return interval, out

    def records(self, make: Callable[[int, int, dict[str, Any], int], dict[str, Any]]
                ) -> list[dict[str, Any]]:
        interval, groups = self.drain()
        return [make(cg, pid, entry, interval) for (cg, pid), entry in groups.items()]


def _pop_all(table: Any) -> list[tuple[Any, Any]]:
    """Every (key, value) of a hash map, emptying it; batch ops when the kernel
    has them (one syscall per batch instead of three per key)."""
    try:
        items = list(table.items_lookup_and_delete_batch())
    except Exception:
        items = list(table.items())
        for k, _ in items:
            try:
                del table[k]
            except KeyError:
                pass
    return items
