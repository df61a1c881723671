"""Raw payloads to ECS-style fields of the enriched event (schemas/enriched_event.avsc).

fastavro decodes a union member to a plain dict, so the payload kind is told by
its fields (``filename`` is an ExecPayload, ``child_pid`` a ForkPayload, ...).
"""

from __future__ import annotations

import os
import signal as _signal
from typing import Any

__all__ = ["CATEGORY", "payload_fields"]

CATEGORY = {
    "exec": "process", "execveat": "process", "fork": "process", "exit": "process",
    "proc_snapshot": "process",
    "open": "file", "unlink": "file", "rename": "file", "chmod": "file", "memfd_create": "file",
    "connect": "network", "accept": "network", "bind": "network", "listen": "network",
    "signal": "signal", "oom_kill": "memory", "syscall_counts": "syscalls",
}  # everything else (setuid, capset, ptrace, mount, init_module, bpf, ...) is "privilege"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FAMILY = {1: "unix", 2: "ipv4", 10: "ipv6"}
_TRANSPORT = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", 132: "sctp"}
_EXE_ORIGINS = ((4, "memfd"), (1, "upper_layer"), (2, "tmpfs"))  # bpf/events.h exe_flag
_SIGNALS = {s.value: s.name for s in _signal.Signals}


def _outcome(retval: int | None) -> str:
    if retval is None:
        return "unknown"
    return "success" if retval >= 0 else "failure"


def payload_fields(kind: str, pl: dict[str, Any] | None, out: dict[str, Any]) -> None:
    """Fill file/network/source/destination/syscall/oom and event.outcome/result."""
    event = out["event"]
    if pl is None:
        return
    if "path" in pl and "fd" not in pl:  # FilePayload
        flags = pl.get("flags", 0)
        out["file"] = {"path": pl["path"], "target_path": pl.get("target_path"), "flags": flags,
                       "mode": pl.get("mode", 0),
                       "write": kind != "open" or bool(flags & _WRITE_FLAGS)}
        _result(event, pl.get("retval"))
    elif "family" in pl:  # NetPayload
        out["network"] = {"family": _FAMILY.get(pl["family"], str(pl["family"])),
                          "transport": _TRANSPORT.get(pl.get("protocol", 0))}
        if pl.get("saddr") is not None or pl.get("sport"):
            out["source"] = {"address": pl.get("saddr"), "port": pl.get("sport", 0)}
        if pl.get("daddr") is not None or pl.get("dport"):
            out["destination"] = {"address": pl.get("daddr"), "port": pl.get("dport", 0)}
        _result(event, pl.get("retval"))
    elif "sig" in pl:  # SignalPayload
        out["syscall"] = {"name": kind, "args": [], "str_arg": pl.get("target_comm"),
                          "str_arg2": None, "target_pid": pl["target_pid"],
                          "target_exec_id": pl.get("target_exec_id"),
                          "signal": _SIGNALS.get(pl["sig"], str(pl["sig"]))}
        _result(event, pl.get("retval"))
    elif "victim_pid" in pl:  # OomPayload
        out["oom"] = {"victim_pid": pl["victim_pid"], "victim_name": pl.get("victim_comm"),
                      "total_vm_kb": pl.get("total_vm_kb", 0), "anon_rss_kb": pl.get("anon_rss_kb", 0),
                      "file_rss_kb": pl.get("file_rss_kb", 0)}
    elif "str_arg" in pl:  # PrivPayload
        out["syscall"] = {"name": kind, "args": list(pl.get("args") or []),
                          "str_arg": pl.get("str_arg"), "str_arg2": pl.get("str_arg2"),
                          "target_pid": pl.get("target_pid", 0), "target_exec_id": None,
                          "signal": None}
        _result(event, pl.get("retval"))
    elif "filename" in pl:  # ExecPayload
        _result(event, pl.get("retval"))
        if pl.get("retval", 0) == 0:
            _exec_context(pl, out["process"])
    elif "exit_code" in pl:  # ExitPayload
        out["process"]["exit_code"] = pl["exit_code"]


def _exec_context(pl: dict[str, Any], proc: dict[str, Any]) -> None:
    """What the kernel told at a successful exec: the image file's origin,
    sockets on the standard streams and the pid in the process's namespace."""
    flags = pl.get("exe_flags", 0)
    proc["exe_origin"] = next((origin for bit, origin in _EXE_ORIGINS if flags & bit), "image")
    families = [f for f in pl.get("stdio_families") or () if f]
    proc["stdio_socket"] = _FAMILY.get(families[0], str(families[0])) if families else ""
    proc["vpid"] = pl.get("vpid", 0)


def _result(event: dict[str, Any], retval: int | None) -> None:
    event["outcome"] = _outcome(retval)
    if retval is not None:
        event["result"] = retval
