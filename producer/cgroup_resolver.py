"""Where cgroups are on this host: the v2 mount, a pid's cgroup, a path's id and
the id -> path map of every cgroup.

Events carry the v2 cgroup id (the inode of the cgroup's directory); container
records and the /proc snapshot must report the same id, and the enricher needs
the path to tell a host process from a container.
"""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

__all__ = ["CgroupResolver", "cgroup2_root", "cgroup_id", "pid_cgroup_path", "proc_cgroup_v2_path"]


@cache
def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup (unified host) or
    /sys/fs/cgroup/unified (hybrid host)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return Path(left.split()[4])
    except OSError:
        pass
    return None


def proc_cgroup_v2_path(text: str) -> str | None:
    """The unified-hierarchy path from a /proc/<pid>/cgroup text ('0::/path')."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def pid_cgroup_path(pid: int) -> str | None:
    try:
        return proc_cgroup_v2_path(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return None


def cgroup_id(path: str | None) -> int:
    """The v2 cgroup id of a cgroup path (inode of its directory), 0 when unknown."""
    root = cgroup2_root()
    if root is None or path is None:
        return 0
    try:
        return os.stat(root / path.lstrip("/")).st_ino
    except OSError:
        return 0


class CgroupResolver:
    """cgroup id -> path of every cgroup, built by walking the v2 hierarchy and
    rebuilt on a miss at most once per ``min_rescan_s``: a new container is usually
    a miss and its first events must resolve within its short life, while a busy
    host pays one dict lookup per event."""
    def __init__(self, root: Path | None = None, *, min_rescan_s: float = 0.1) -> None:
        self.root = root or cgroup2_root()
        self.min_rescan_s = min_rescan_s
        self._paths: dict[int, str] = {}
        self._last_scan = 0.0
        self.rescan()

    def rescan(self) -> None:
        self._last_scan = time.monotonic()
        if self.root is None:
            return
        paths: dict[int, str] = {}
        root = str(self.root)
        for dirpath, _dirs, _files in os.walk(root):
            try:
                paths[os.stat(dirpath).st_ino] = dirpath[len(root):] or "/"
            except OSError:
                continue
        self._paths = paths

    def path(self, cgroup_id: int) -> str | None:
        path = self._paths.get(cgroup_id)
        if path is None and time.monotonic() - self._last_scan >= self.min_rescan_s:
            self.rescan()
            path = self._paths.get(cgroup_id)
        return path
