"""Ring buffer records (bpf/events.h) -> ``raw_event`` records (schemas/raw_event.avsc).

Layouts come from the header via ``layout.py``; kind names from its enum, so C
and Python cannot drift apart silently. Event time: the kernel stamps
``bpf_ktime_get_boot_ns``; ``Clock`` adds the boot-to-realtime offset, re-read
each interval so an NTP step moves later events, not earlier ones.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from eunomia.errors import EunomiaError
from eunomia.producer.identity import NS_PER_TICK, exec_id
from eunomia.producer.layout import parse_enums, parse_structs

__all__ = ["KINDS", "PFX_ANY", "PFX_WRITE", "Clock", "DecodeError", "Decoder", "prefix_table"]

_ENUMS = parse_enums()
KINDS: dict[int, str] = {v: k[3:].lower() for k, v in _ENUMS["ev_kind"].items()
                         if k not in ("EV_KIND_MAX", "EV_SYSCALL_COUNTS")}
KIND_IDS: dict[str, int] = {v: k for k, v in KINDS.items()}
PFX_ANY = _ENUMS["prefix_flag"]["PFX_ANY"]
PFX_WRITE = _ENUMS["prefix_flag"]["PFX_WRITE"]


def prefix_table(write_prefixes: list[str], read_prefixes: list[str]) -> tuple[tuple[str, int], ...]:
    """(prefix, flags) for the kernel's trie; a prefix in both lists gets both flags."""
    flags: dict[str, int] = {}
    for p in write_prefixes:
        flags[p] = flags.get(p, 0) | PFX_WRITE
    for p in read_prefixes:
        flags[p] = flags.get(p, 0) | PFX_ANY
    return tuple(flags.items())
_NS = ("pid", "mnt", "net", "user", "uts", "ipc", "cgroup")
_PAYLOAD_NS = "io.eunomia.raw."


class DecodeError(EunomiaError):
    """A ring buffer record that does not match events.h (counted as a drop)."""


class Clock:
    """Boot-time ns -> UTC ns."""

    def __init__(self) -> None:
        self.offset = 0
        self.refresh()

    def refresh(self) -> None:
        # read realtime between two boottime reads to bound the error
        b0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        rt = time.clock_gettime_ns(time.CLOCK_REALTIME)
        b1 = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self.offset = rt - (b0 + b1) // 2

    def utc(self, boot_ns: int) -> int:
        return boot_ns + self.offset


def _cstr(buf: bytes, start: int, length: int) -> str:
    raw = buf[start:start + length]
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("utf-8", "replace")


def _addr(family: int, raw: bytes) -> str | None:
    if family == 2:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == 10:
        return str(ipaddress.IPv6Address(raw[:16]))
    return None


class Decoder:
    """Decodes records of one producer; knobs must equal the loader's -D values."""

    def __init__(self, host_id: str, boot_id: str, *, path_max: int = 256, argv_size: int = 512,
                 str_arg_len: int = 128, clock: Clock | None = None,
                 cgroup_path: Callable[[int], str | None] = lambda _cg: None) -> None:
        self.host_id, self.boot_id = host_id, boot_id
        self.clock = clock or Clock()
        self.cgroup_path = cgroup_path
        L = parse_structs(PATH_MAX_LEN=path_max, ARGV_SIZE=argv_size, STR_ARG_LEN=str_arg_len)
        self.layouts = L
        self._hdr, names = L["ev_hdr"].scalars()
        assert names[:4] == ["ts_boot_ns", "cgroup_id", "start_ns", "parent_start_ns"]
        self._hdr_size = L["ev_hdr"].size
        self._comm = L["ev_hdr"].offset("comm")
        self._bodies: dict[str, tuple[Any, list[str], int]] = {}
        for sname in ("ev_exec", "ev_fork", "ev_exit", "ev_file", "ev_net", "ev_priv",
                      "ev_signal", "ev_oom"):
            s, names = L[sname].scalars()
            self._bodies[sname] = (s, names, L[sname].size)
        self._by_kind: dict[str, Callable[[bytes, dict[str, Any]], tuple[str, dict] | None]] = {
            "exec": self._exec, "execveat": self._exec, "fork": self._fork, "exit": self._exit,
            "open": self._file, "unlink": self._file, "rename": self._file, "chmod": self._file,
            "connect": self._net, "accept": self._net, "bind": self._net, "listen": self._net,
            "signal": self._signal, "oom_kill": self._oom,
        }

    def exec_id(self, pid: int, start_boot_ns: int) -> str:
        return exec_id(self.host_id, self.boot_id, pid, start_boot_ns // NS_PER_TICK)

    def decode(self, buf: bytes) -> dict[str, Any]:
        """One ``raw_event`` record (seq left 0 for the agent to assign)."""
        if len(buf) < self._hdr_size:
            raise DecodeError(f"record of {len(buf)} bytes is shorter than the header")
        (ts, cg, start, pstart, pid, tid, ppid, uid, gid, *ns, kind_id, _size
         ) = self._hdr.unpack_from(buf)
        kind = KINDS.get(kind_id)
        if kind is None:
            raise DecodeError(f"unknown event kind {kind_id}")
        rec: dict[str, Any] = {
            "host_id": self.host_id, "boot_id": self.boot_id, "seq": 0,
            "ts_ns": ts + self.clock.offset, "kind": kind, "pid": pid, "tid": tid, "ppid": ppid,
            "uid": uid, "gid": gid, "comm": _cstr(buf, self._comm, 16), "cgroup_id": cg,
            "cgroup_path": self.cgroup_path(cg), "ns": dict(zip(_NS, ns, strict=True)),
            "exec_id": self.exec_id(pid, start), "parent_exec_id": self.exec_id(ppid, pstart),
            "payload": None,
        }
        fn = self._by_kind.get(kind, self._priv)
        body = fn(buf, rec)
        if body is not None:
            name, payload = body
            payload["-type"] = _PAYLOAD_NS + name
            rec["payload"] = payload
        return rec

    def _fields(self, sname: str, buf: bytes) -> dict[str, Any]:
        s, names, _size = self._bodies[sname]
        if len(buf) < s.size:
            raise DecodeError(f"{sname} record of {len(buf)} bytes, needs {s.size}")
        return dict(zip(names, s.unpack_from(buf), strict=True))

    def _exec(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_exec", buf)
        L = self.layouts["ev_exec"]
        fn_off, av_off = L.offset("filename"), L.offset("argv")
        raw = buf[av_off:av_off + f["argv_len"]].rstrip(b"\0")
        argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0")] if raw else []
        return "ExecPayload", {
            "filename": _cstr(buf, fn_off, f["filename_len"]), "argv": argv,
            "argv_truncated": bool(f["argv_truncated"]), "retval": f["retval"],
            "start_time_ns": self.clock.utc(f["hdr.start_ns"]), "exe_flags": f["exe_flags"],
            "stdio_families": [f["stdin_family"], f["stdout_family"], f["stderr_family"]],
            "vpid": f["vpid"]}

    def _fork(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_fork", buf)
        return "ForkPayload", {
            "child_pid": f["child_pid"], "child_tid": f["child_tid"],
            "child_exec_id": self.exec_id(f["child_pid"], f["child_start_ns"]),
            "child_start_time_ns": self.clock.utc(f["child_start_ns"])}

    def _exit(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        code = self._fields("ev_exit", buf)["exit_code"]
        return "ExitPayload", {"exit_code": (code >> 8) & 0xFF, "signal": code & 0x7F}

    def _file(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_file", buf)
        L = self.layouts["ev_file"]
        target = (_cstr(buf, L.offset("target"), f["target_len"]) if f["target_len"] else None)
        return "FilePayload", {
            "path": _cstr(buf, L.offset("path"), f["path_len"]), "target_path": target,
            "flags": f["flags"], "mode": f["mode"], "retval": f["retval"]}

    def _net(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_net", buf)
        L = self.layouts["ev_net"]
        fam = f["family"]
        sa, da = L.offset("saddr"), L.offset("daddr")
        return "NetPayload", {
            "family": fam, "protocol": f["protocol"], "saddr": _addr(fam, buf[sa:sa + 16]),
            "sport": f["sport"], "daddr": _addr(fam, buf[da:da + 16]), "dport": f["dport"],
            "backlog": f["backlog"], "retval": f["retval"]}

    def _priv(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_priv", buf)
        L = self.layouts["ev_priv"]
        a = L.offset("args")
        nargs = min(f["nargs"], 4)
        args = list(memoryview(buf)[a:a + 8 * nargs].cast("q")) if nargs else []

        def s(name: str) -> str | None:
            n = f[f"{name}_len"]
            return _cstr(buf, L.offset(name), n) if n else None

        return "PrivPayload", {"args": args, "str_arg": s("str"), "str_arg2": s("str2"),
                               "str_arg3": s("str3"), "target_pid": f["target_pid"],
                               "retval": f["retval"]}

    def _signal(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_signal", buf)
        start = f["target_start_ns"]
        # a failed kill never reached a task: no start time, no exec_id, no comm
        return "SignalPayload", {
            "sig": f["sig"], "target_pid": f["target_pid"],
            "target_comm": _cstr(buf, self.layouts["ev_signal"].offset("target_comm"), 16) or None,
            "target_exec_id": self.exec_id(f["target_pid"], start) if start else None,
            "target_cgroup_id": f["target_cgroup_id"], "retval": f["result"]}

    def _oom(self, buf: bytes, rec: dict[str, Any]) -> tuple[str, dict]:
        f = self._fields("ev_oom", buf)
        return "OomPayload", {
            "victim_pid": f["victim_pid"],
            "victim_comm": _cstr(buf, self.layouts["ev_oom"].offset("victim_comm"), 16),
            **{k: f[k] for k in ("total_vm_kb", "anon_rss_kb", "file_rss_kb", "shmem_rss_kb",
                                 "pgtables_kb", "oom_score_adj")}}
