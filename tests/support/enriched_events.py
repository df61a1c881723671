"""Factories of enriched events (as fastavro decodes them) for rule tests."""

from __future__ import annotations

import itertools
from typing import Any

from eunomia.processors.rules import Engine, load_text

_seq = itertools.count(1)
S = 1_000_000_000  # one second in ns


def parent(name: str, exec_id: str, pid: int = 1) -> dict[str, Any]:
    return {"pid": pid, "tid": pid, "name": name, "executable": f"/bin/{name}", "args": [],
            "exec_id": exec_id, "start_ns": 0}


def ev(kind: str, t: float, *, name: str = "app", exec_id: str = "x1", container: str = "c1",
       uid: int = 1000, pname: str = "conmon", ancestors: list[dict[str, Any]] | None = None,
       file: dict[str, Any] | None = None, dport: int | None = None, daddr: str = "10.0.0.9",
       syscall: str | None = None, outcome: str = "success", image: str = "busybox",
       args: list[str] | None = None, executable: str | None = None, eid: str | None = None,
       exe_origin: str = "", stdio_socket: str = "", vpid: int = 0, **extra: Any) -> dict[str, Any]:
    """One enriched event at ``t`` seconds; keyword names pick the interesting fields."""
    seq = next(_seq)
    anc = ancestors if ancestors is not None else [parent(pname, "p0")]
    e: dict[str, Any] = {
        "event": {"id": eid or f"h1:b1:r:{seq}", "kind": kind, "category": "process", "outcome": outcome,
                  "ts_ns": int(t * S), "seq": seq, "result": 0 if outcome == "success" else -13},
        "host": {"id": "h1", "boot_id": "b1"},
        "process": {"pid": 100, "tid": 100, "name": name, "executable": executable or f"/bin/{name}",
                    "args": args or [name], "exec_id": exec_id, "start_ns": 0, "ppid": 1,
                    "exit_code": None, "parent": anc[0] if anc else None, "ancestors": anc,
                    "lineage_complete": True, "exe_origin": exe_origin,
                    "stdio_socket": stdio_socket, "vpid": vpid},
        "user": {"id": uid, "group_id": uid},
        "container": {"id": container, "name": "web", "image_name": image, "image_id": None,
                      "runtime": "podman", "labels": {}, "cgroup_id": 7, "cgroup_path": None,
                      "metadata_complete": True},
        "orchestrator": None, "ns": {}, "file": None, "network": None, "source": None,
        "destination": None, "syscall": None, "oom": None, "syscalls": None,
    }
    if file is not None:
        e["file"] = {"path": file["path"], "target_path": None, "flags": file.get("flags", 0),
                     "mode": 0, "write": file.get("write", False)}
    if dport is not None:
        e["network"] = {"family": "ipv4", "transport": "tcp"}
        e["destination"] = {"address": daddr, "port": dport}
    if syscall is not None:
        e["syscall"] = {"name": syscall, "args": extra.pop("sargs", []),
                        "str_arg": extra.pop("str_arg", None),
                        "str_arg2": None, "target_pid": extra.pop("target_pid", 0),
                        "target_exec_id": None, "signal": None}
    for k, v in extra.items():
        e[k] = v
    return e


def run(rules_yaml: str, events: list[dict[str, Any]], *, lateness: float = 0, end: float | None = None,
        **kw: Any) -> list[dict[str, Any]]:
    """All alerts of a rule text over events, then the watermark moved to ``end``."""
    engine = Engine(load_text(rules_yaml), lateness_ns=int(lateness * S), **kw)
    out = []
    for e in events:
        out += engine.process(e)
    out += engine.flush()
    if end is not None:
        out += engine.advance_watermark(int(end * S))
    return out


def ids(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["rule_id"], a["alert_id"]) for a in alerts]
