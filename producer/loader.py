"""Compile and attach the bcc probe groups; read their ring buffer and counters.

Every program sits on a tracepoint (this kernel family has no kprobes). User
knobs reach the C code only as ``-D`` cflags or BPF map entries, never spliced
into the source. Offsets of kernel structs come from BTF (``btf.py``).
"""

from __future__ import annotations

import ctypes as ct
import os
import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from eunomia.errors import EunomiaError
from eunomia.producer import btf
from eunomia.producer.decoder import KINDS
from eunomia.producer.layout import parse_enums

__all__ = [
    "GROUPS",
    "NoKernelHeaders",
    "NoTracefs",
    "NotPrivileged",
    "ProbeLoadError",
    "ProbeSpec",
    "Probes",
    "bpf_source",
    "check_environment",
]

GROUPS = ("process", "file", "network", "priv", "syscalls", "signal", "oom", "fileio")
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21


class NotPrivileged(EunomiaError):
    """Loading BPF needs root or CAP_BPF + CAP_PERFMON."""


class NoKernelHeaders(EunomiaError):
    """bcc compiles the probes and needs kernel headers for the running kernel."""


class NoTracefs(EunomiaError):
    """Tracepoints are attached through tracefs, which is not mounted."""


class ProbeLoadError(EunomiaError):
    """bcc could not compile or attach a probe group."""


@dataclass
class ProbeSpec:
    """What to load: which groups and the knobs the C code reads."""

    groups: tuple[str, ...] = ("process", "file", "network", "priv", "syscalls", "signal", "oom")
    self_tgid: int = field(default_factory=os.getpid)
    path_max: int = 256
    argv_size: int = 512
    str_arg_len: int = 128
    ringbuf_pages: int = 2048  # 8 MiB with 4 KiB pages
    # (prefix, flags) with flags from decoder.PFX_ANY / PFX_WRITE
    prefixes: tuple[tuple[str, int], ...] = ()
    # loaded groups that start switched off (group_off map), and the signal filter
    disabled: tuple[str, ...] = ()
    signal_all: bool = False


def group_index(group: str) -> int:
    """The group's slot in the group_off map (events.h enum probe_group)."""
    return parse_enums()["probe_group"][f"GRP_{group.upper()}"]


def _capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def tracefs() -> Path:
    for p in TRACEFS_CANDIDATES:
        try:
            if (p / "events").is_dir():
                return p
        except PermissionError:
            raise NotPrivileged(f"cannot read {p} (tracefs is root-only): run as root, or give "
                                "the producer CAP_DAC_READ_SEARCH with CAP_BPF and CAP_PERFMON"
                                ) from None
    raise NoTracefs("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing "
                    "(or run deploy/host/setup.sh)")


def check_environment() -> Path:
    """Fail early with one line each for the three usual reasons bcc cannot load."""
    caps = _capabilities()
    has = lambda c: bool(caps >> c & 1)  # noqa: E731
    if not (has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))):
        raise NotPrivileged("the producer needs root, or CAP_BPF and CAP_PERFMON (and "
                            "CAP_SYS_RESOURCE for the ring buffer), to load eBPF probes")
    path = tracefs()
    build = Path(f"/lib/modules/{platform.release()}/build")
    if not (build / "include").is_dir():
        raise NoKernelHeaders(f"bcc needs kernel headers at {build} for kernel "
                              f"{platform.release()}: run deploy/host/setup.sh")
    return path


def bpf_source(groups: Iterable[str]) -> str:
    """events.h followed by each group's program, with the include inlined so
    bcc's rewriter sees the table declarations in the main file."""
    pkg = resources.files("eunomia.bpf")
    text = [pkg.joinpath("events.h").read_text()]
    for g in groups:
        if g not in GROUPS:
            raise ProbeLoadError(f"unknown probe group {g!r}; known: {', '.join(GROUPS)}")
        src = pkg.joinpath(f"{g}.c").read_text()
        text.append(re.sub(r'^#include "events.h"\s*$', "", src, flags=re.M))
    return "\n".join(text)


def _tp_cflags(source: str, tfs: Path) -> list[str]:
    """-DHAVE_TP_<cat>__<event> for each optional tracepoint the source guards on."""
    flags = []
    for name in sorted(set(re.findall(r"HAVE_TP_(\w+)", source))):
        cat, _, ev = name.partition("__")
        if (tfs / "events" / cat / ev).is_dir():
            flags.append(f"-DHAVE_TP_{name}")
    fmt = tfs / "events/sched/sched_process_exit/format"
    if fmt.is_file() and "group_dead" in fmt.read_text():
        flags.append("-DHAVE_EXIT_GROUP_DEAD")
    return flags


def cflags(spec: ProbeSpec, source: str, tfs: Path) -> list[str]:
    for name in ("path_max", "argv_size"):
        v = getattr(spec, name)
        if v <= 0 or v & (v - 1):
            raise ProbeLoadError(f"{name} must be a power of two, got {v}")
    return [
        *btf.offset_cflags(),
        f"-DSELF_TGID={spec.self_tgid}",
        f"-DPATH_MAX_LEN={spec.path_max}",
        f"-DARGV_SIZE={spec.argv_size}",
        f"-DSTR_ARG_LEN={spec.str_arg_len}",
        f"-DRINGBUF_PAGES={spec.ringbuf_pages}",
        *_tp_cflags(source, tfs),
        "-DEUNOMIA_KERNEL=1",
        "-Wno-macro-redefined",
    ]


class Probes:
    """The loaded programs of one producer: ring buffer, drops, syscall counts."""

    def __init__(self, spec: ProbeSpec, on_event: Callable[[int, int], None]) -> None:
        """``on_event(data_ptr, size)`` is called for every ring buffer record."""
        tfs = check_environment()
        from bcc import BPF  # imported late: a missing bcc must not break --help

        self.spec = spec
        self.source = bpf_source(spec.groups)
        self.cflags = cflags(spec, self.source, tfs)
        try:
            self.bpf = BPF(text=self.source, cflags=self.cflags)
        except Exception as exc:
            raise ProbeLoadError(f"bcc could not load probe groups {','.join(spec.groups)}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                 ) from exc
        if "file" in spec.groups:
            self.set_prefixes(spec.prefixes)
        self.set_disabled(spec.disabled)
        if "signal" in spec.groups:
            self.set_signal_all(spec.signal_all)
        self._cb = on_event
        self.bpf["events"].open_ring_buffer(lambda _ctx, data, size: self._cb(data, size))
        self._drops = self.bpf["drops"]
        self.syscalls = None
        if "syscalls" in spec.groups:
            from eunomia.producer.syscounts import SyscallCounts

            self.syscalls = SyscallCounts(self.bpf)
        self.fileio = None
        if "fileio" in spec.groups:
            from eunomia.producer.fileio import FileIOStats

            self.fileio = FileIOStats(self.bpf)

    def set_disabled(self, groups: Iterable[str]) -> None:
        """Switch loaded groups on or off in place: programs stay attached, so
        nothing in flight is lost and switching back needs no recompile."""
        off = set(groups)
        table = self.bpf["group_off_map"]
        for g in self.spec.groups:
            table[ct.c_int(group_index(g))] = ct.c_uint32(1 if g in off else 0)

    def set_signal_all(self, on: bool) -> None:
        """Publish every generated signal (on) or only boundary-crossing and fatal ones."""
        self.bpf["sig_cfg"][ct.c_int(0)] = ct.c_uint32(1 if on else 0)

    def set_prefixes(self, prefixes: Iterable[tuple[str, int]]) -> None:
        """Replace the in-kernel path filter (longest-prefix-match trie)."""
        trie = self.bpf["prefixes"]
        trie.clear()
        for prefix, flags in prefixes:
            raw = prefix.encode()[:64]
            key = trie.Key()
            key.prefixlen = len(raw) * 8
            ct.memmove(key.data, raw, len(raw))
            trie[key] = ct.c_uint8(flags)

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def consume(self) -> None:
        self.bpf.ring_buffer_consume()

    def drops(self) -> dict[str, int]:
        """Records the kernel could not put in the ring buffer, by kind."""
        out: dict[str, int] = {}
        for k, v in self._drops.items():
            if v.value:
                out[KINDS.get(k.value, f"kind{k.value}")] = v.value
        return out

    def close(self) -> None:
        self.bpf.cleanup()

    def table(self, name: str) -> Any:
        return self.bpf[name]
