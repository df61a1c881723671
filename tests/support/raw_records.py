"""Raw records as the producer publishes them, for the enrich tests and benchmarks."""

from __future__ import annotations

import random
from typing import Any

BOOT = "b00tb00tb00tb00t"
NS = {"pid": 4026531836, "mnt": 4026531841, "net": 4026531840, "user": 4026531837,
      "uts": 4026531838, "ipc": 4026531839, "cgroup": 4026531835}
CID = "a" * 64


def podman_path(cid: str = CID) -> str:
    return f"/libpod_parent/libpod-{cid}"


def exec_id(host: str, pid: int, start: int) -> str:
    return f"{host}:{BOOT[:8]}:{pid}:{start}"


class Host:
    """One producer: numbers events with its own seq counters."""

    def __init__(self, host_id: str = "h1", t0: int = 1_700_000_000 * 10**9) -> None:
        self.host_id = host_id
        self.seq = 0
        self.sseq = 0
        self.t = t0

    def event(self, kind: str, *, pid: int, start: int = 100, ppid: int = 1, pstart: int = 1,
              comm: str = "sh", cgroup_id: int = 1000, cgroup_path: str | None = None,
              payload: dict[str, Any] | None = None, dt: int = 1_000_000, uid: int = 0,
              ts: int | None = None) -> dict[str, Any]:
        self.seq += 1
        self.t += dt
        return {"host_id": self.host_id, "boot_id": BOOT, "seq": self.seq,
                "ts_ns": self.t if ts is None else ts, "kind": kind, "pid": pid, "tid": pid,
                "ppid": ppid, "uid": uid, "gid": uid, "comm": comm, "cgroup_id": cgroup_id,
                "cgroup_path": cgroup_path, "ns": dict(NS),
                "exec_id": exec_id(self.host_id, pid, start),
                "parent_exec_id": exec_id(self.host_id, ppid, pstart) if ppid else "",
                "payload": payload}

    def syscalls(self, *, pid: int, start: int = 100, comm: str = "sh", cgroup_id: int = 1000,
                 cgroup_path: str | None = None, counts: dict[int, int] | None = None
                 ) -> dict[str, Any]:
        self.sseq += 1
        self.t += 1_000_000
        return {"host_id": self.host_id, "boot_id": BOOT, "seq": self.sseq, "ts_ns": self.t,
                "interval_ns": 1_000_000_000, "pid": pid, "comm": comm, "cgroup_id": cgroup_id,
                "cgroup_path": cgroup_path, "exec_id": exec_id(self.host_id, pid, start),
                "arch": "x86_64",
                "counts": [{"nr": k, "count": v} for k, v in sorted((counts or {0: 3}).items())],
                "fileio": []}


def exec_payload(filename: str, *argv: str, start: int = 0) -> dict[str, Any]:
    return {"filename": filename, "argv": list(argv) or [filename], "argv_truncated": False,
            "retval": 0, "start_time_ns": start}


def fork_payload(host: str, child_pid: int, child_start: int) -> dict[str, Any]:
    return {"child_pid": child_pid, "child_tid": child_pid,
            "child_exec_id": exec_id(host, child_pid, child_start), "child_start_time_ns": 0}


def open_payload(path: str, flags: int = 0, retval: int = 3) -> dict[str, Any]:
    return {"path": path, "target_path": None, "flags": flags, "mode": 0, "retval": retval}


def connect_payload(daddr: str, dport: int) -> dict[str, Any]:
    return {"family": 2, "protocol": 6, "saddr": "10.0.0.2", "sport": 40000, "daddr": daddr,
            "dport": dport, "backlog": 0, "retval": 0}


def container_record(host: str, cgroup_id: int, cid: str = CID, *, name: str = "web",
                     image: str = "localhost/web:1", labels: dict[str, str] | None = None
                     ) -> dict[str, Any]:
    return {"host_id": host, "ts_ns": 0, "container_id": cid, "name": name, "image": image,
            "image_id": "sha256:" + "b" * 64, "labels": labels or {}, "runtime": "podman",
            "state": "running", "init_pid": 0, "cgroup_path": podman_path(cid),
            "cgroup_id": cgroup_id, "pod_name": None, "pod_namespace": None, "pod_uid": None,
            "source": "docker-api"}


def workload(n: int, *, hosts: int = 4, containers: int = 8, seed: int = 1
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(container records, raw events): a process tree per container doing file and
    network work, ~5% exec/fork/exit. Deterministic for a seed."""
    rnd = random.Random(seed)
    hs = [Host(f"host{i}") for i in range(hosts)]
    recs = []
    procs: list[tuple[Host, int, int, str, int, str]] = []
    for i in range(containers):
        h = hs[i % hosts]
        cg = 5000 + i
        cid = f"{i:064x}"
        recs.append(container_record(h.host_id, cg, cid, name=f"c{i}", image=f"img{i % 3}"))
        procs.append((h, 100 + i, 10, "nginx", cg, podman_path(cid)))
    events: list[dict[str, Any]] = []
    nextpid = 1000
    for h, pid, start, comm, cg, path in procs:
        events.append(h.event("exec", pid=pid, start=start, comm=comm, cgroup_id=cg, cgroup_path=path,
                              payload=exec_payload(f"/usr/sbin/{comm}", comm, "-g", "daemon off;")))
    while len(events) < n:
        h, pid, start, comm, cg, path = procs[rnd.randrange(len(procs))]
        r = rnd.random()
        common = dict(pid=pid, start=start, comm=comm, cgroup_id=cg, cgroup_path=path)
        if r < 0.02:
            nextpid += 1
            child = nextpid
            events.append(h.event("fork", **common, payload=fork_payload(h.host_id, child, 7)))
            ccommon = dict(pid=child, start=7, ppid=pid, pstart=start, cgroup_id=cg, cgroup_path=path)
            events.append(h.event("exec", comm="curl", **ccommon,
                                  payload=exec_payload("/usr/bin/curl", "curl", "http://x")))
            events.append(h.event("connect", comm="curl", **ccommon,
                                  payload=connect_payload("10.1.2.3", 443)))
            events.append(h.event("exit", comm="curl", **ccommon,
                                  payload={"exit_code": 0, "signal": 0}))
        elif r < 0.6:
            events.append(h.event("open", **common, payload=open_payload(f"/var/www/f{rnd.randrange(100)}")))
        else:
            events.append(h.event("connect", **common,
                                  payload=connect_payload(f"10.0.{rnd.randrange(4)}.1", 80)))
    return recs, events[:n]
