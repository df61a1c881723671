"""The processes already running when the producer starts, as raw events.

BPF sees only what happens after attach; without this snapshot a long-running
process would have no exec to join its lineage to. Records are ``raw_event`` of
kind ``proc_snapshot``, seq 0 (outside the seq stream: never a gap), with
identity and cgroup id computed as the BPF side computes them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from eunomia.producer.cgroup_resolver import cgroup_id, proc_cgroup_v2_path
from eunomia.producer.identity import NS_PER_TICK, exec_id, start_ticks_of_pid

__all__ = ["NAMESPACES", "snapshot"]

NAMESPACES = ("pid", "mnt", "net", "user", "uts", "ipc", "cgroup")
_KTHREADD = 2


def _boot_epoch_ns() -> int:
    """UTC time of boot, to express tick-based start times as event time."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def _read_proc(pid: int, max_argv_bytes: int) -> dict[str, Any] | None:
    base = f"/proc/{pid}"
    try:
        stat = Path(f"{base}/stat").read_text()
        status = Path(f"{base}/status").read_text()
        cmdline = Path(f"{base}/cmdline").read_bytes()
        cgroup_text = Path(f"{base}/cgroup").read_text()
        comm = Path(f"{base}/comm").read_text().rstrip("\n")
        ns = {name: os.stat(f"{base}/ns/{name}").st_ino for name in NAMESPACES}
    except (OSError, ValueError):
        return None  # exited while we looked, or not ours to read
    fields = stat[stat.rfind(")") + 2:].split()
    ids: dict[str, int] = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key] = int(rest.split()[0])  # real id, as bpf_get_current_uid_gid reports
    try:
        exe: str | None = os.readlink(f"{base}/exe")
    except OSError:
        exe = None
    return {"ppid": int(fields[1]), "start_ticks": int(fields[19]), "uid": ids.get("Uid", 0),
            "gid": ids.get("Gid", 0), "comm": comm, "ns": ns, "exe": exe,
            "argv": [a.decode(errors="replace")
                     for a in cmdline[:max_argv_bytes].split(b"\0") if a],
            "cgroup_path": proc_cgroup_v2_path(cgroup_text)}


def snapshot(host_id: str, boot_id: str, self_pid: int, *, max_argv_bytes: int = 4096
             ) -> list[dict[str, Any]]:
    """raw_event records of every user-space process running now (not kernel threads,
    not ``self_pid``); argv is cut at ``max_argv_bytes`` like the exec probe's argv."""
    procs: dict[int, dict[str, Any]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid in (self_pid, _KTHREADD):
                continue
            info = _read_proc(pid, max_argv_bytes)
            if info is not None and info["ppid"] != _KTHREADD:
                procs[pid] = info
    boot_ns = _boot_epoch_ns()
    now = time.time_ns()
    cg_ids: dict[str | None, int] = {}
    out = []
    for pid, p in sorted(procs.items()):
        parent = procs.get(p["ppid"])
        if parent is None and p["ppid"]:
            parent_ticks = start_ticks_of_pid(p["ppid"])
        else:
            parent_ticks = parent["start_ticks"] if parent else None
        path = p["cgroup_path"]
        if path not in cg_ids:
            cg_ids[path] = cgroup_id(path)
        out.append({
            "host_id": host_id, "boot_id": boot_id, "seq": 0, "ts_ns": now,
            "kind": "proc_snapshot", "pid": pid, "tid": pid, "ppid": p["ppid"],
            "uid": p["uid"], "gid": p["gid"], "comm": p["comm"], "cgroup_id": cg_ids[path],
            "cgroup_path": path, "ns": p["ns"],
            "exec_id": exec_id(host_id, boot_id, pid, p["start_ticks"]),
            "parent_exec_id": (exec_id(host_id, boot_id, p["ppid"], parent_ticks)
                               if parent_ticks is not None else ""),
            "payload": {"-type": "io.eunomia.raw.SnapshotPayload", "exe": p["exe"],
                        "argv": p["argv"],
                        "start_time_ns": boot_ns + p["start_ticks"] * NS_PER_TICK},
        })
    return out
