"""Host and process identity shared by the BPF decoder and the /proc snapshot.

exec_id must come out the same whether a process was seen by a BPF probe or by
the start-up /proc scan, or lineage breaks. Both sides therefore express the
process start time in clock ticks since boot (``/proc/<pid>/stat`` field 22 ==
``task->start_boottime`` / (1e9 / USER_HZ)), the coarsest unit both can give.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path

__all__ = ["CLK_TCK", "NS_PER_TICK", "boot_id", "exec_id", "host_id", "start_ticks_of_pid"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_PER_TICK = 1_000_000_000 // CLK_TCK


@cache
def host_id(configured: str | None = None) -> str:
    """The configured id, else /etc/machine-id, else the hostname."""
    if configured:
        return configured
    try:
        mid = Path("/etc/machine-id").read_text().strip()
        if mid:
            return mid[:16]
    except OSError:
        pass
    return socket.gethostname()


@cache
def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def exec_id(host: str, boot: str, pid: int, start_ticks: int) -> str:
    """Stable identity of one process incarnation: pid reuse gets a new id."""
    return f"{host}:{boot[:8]}:{pid}:{start_ticks}"


def start_ticks_of_pid(pid: int) -> int | None:
    """Start time in clock ticks since boot from /proc, None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[19])  # field 22 overall; 20th after pid and comm
