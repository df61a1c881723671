"""Drain the in-kernel file I/O statistics (bpf/fileio.c) once per interval.

The kernel counts calls and bytes per (cgroup, pid, fd); the path is resolved
here through ``/proc/<pid>/fd/<fd>`` only while it still names the file counted
(same process, same exec generation, same inode), else it stays null rather than
name a file the process never touched. Records follow FileIOStat.
"""

from __future__ import annotations

import ctypes as ct
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from eunomia.producer.identity import NS_PER_TICK
from eunomia.producer.syscounts import _pop_all

__all__ = ["FileIOStats", "merge_fileio", "resolve_fd_path", "sum_per_cpu"]

_SETTLE_S = 0.002
_FIELDS = ("reads", "read_bytes", "writes", "write_bytes")


def sum_per_cpu(per_cpu: Iterable[Any]) -> dict[str, int]:
    """One key's counters summed over CPUs; the inode number from any CPU that
    saw the key (CPUs that did not hold zeros), the latest exec generation."""
    out = dict.fromkeys(_FIELDS, 0)
    ino = gen = 0
    for v in per_cpu:
        for f in _FIELDS:
            out[f] += int(getattr(v, f))
        ino = ino or int(v.ino)
        gen = max(gen, int(v.exec_gen))
    out["ino"] = ino
    out["exec_gen"] = gen
    return out


def _start_ticks(pid: int, proc: str) -> int | None:
    try:
        stat = open(f"{proc}/{pid}/stat", "rb").read()  # noqa: SIM115 - tiny read
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields start after the last ')'
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def resolve_fd_path(pid: int, fd: int, start_ns: int, ino: int, proc: str = "/proc") -> str | None:
    """The path of ``fd`` of process ``pid`` if it is still the process and the
    file the kernel counted, else None."""
    if start_ns and _start_ticks(pid, proc) != start_ns // NS_PER_TICK:
        return None
    link = f"{proc}/{pid}/fd/{fd}"
    try:
        path = os.readlink(link)
        if ino and os.stat(link).st_ino != ino:
            return None
    except OSError:
        return None
    return path


def merge_fileio(
    stats: dict[tuple[int, int], dict[str, int]], resolve: Callable[[int, int], str | None]
) -> list[dict[str, Any]]:
    """FileIOStat records of one process, by (fd, inode), with what
    ``resolve(fd, inode number)`` gives for the keys of the process's latest
    program (exec generation); one fd appears once per file it named."""
    out = []
    latest = max((s.get("exec_gen", 0) for s in stats.values()), default=0)
    for fd, inode in sorted(stats):
        s = stats[(fd, inode)]
        path = resolve(fd, s.get("ino", 0)) if s.get("exec_gen", 0) == latest else None
        out.append(
            {
                "fd": fd,
                "path": path,
                "path_resolved": path is not None,
                **{f: int(s.get(f, 0)) for f in _FIELDS},
            }
        )
    return out


class FileIOStats:
    """The double-buffered fileio maps of one loaded program."""

    def __init__(self, bpf: Any) -> None:
        self._ctl = bpf["fio_ctl"]
        self._stats = (bpf["fio_stats0"], bpf["fio_stats1"])
        self._procs = (bpf["fio_procs0"], bpf["fio_procs1"])
        self._active = 0
        self._last = time.monotonic_ns()

    def drain(self) -> tuple[int, dict[tuple[int, int], dict[str, Any]]]:
        """(interval_ns, {(cgroup_id, pid): {"fileio": [FileIOStat], "comm", "start_ns"}})."""
        idle = self._active
        self._active ^= 1
        self._ctl[ct.c_int(0)] = ct.c_uint32(self._active)
        time.sleep(_SETTLE_S)
        now = time.monotonic_ns()
        interval, self._last = now - self._last, now
        by_proc: dict[tuple[int, int], dict[tuple[int, int], dict[str, int]]] = {}
        for k, per_cpu in _pop_all(self._stats[idle]):
            by_proc.setdefault((k.cgroup_id, k.pid), {})[(k.fd, k.inode)] = sum_per_cpu(per_cpu)
        procs: dict[int, Any] = {getattr(k, "value", k): v for k, v in _pop_all(self._procs[idle])}
        out: dict[tuple[int, int], dict[str, Any]] = {}
        for (cg, pid), fds in by_proc.items():
            p = procs.get(pid)
            start = int(p.start_ns) if p is not None and p.cgroup_id == cg else 0
            comm = bytes(p.comm).split(b"\0", 1)[0].decode("utf-8", "replace") if p is not None else ""
            out[(cg, pid)] = {
                "comm": comm,
                "start_ns": start,
                "fileio": merge_fileio(
                    fds, lambda fd, ino, pid=pid, start=start: resolve_fd_path(pid, fd, start, ino)
                ),
            }
        return interval, out
