"""cgroup id -> cgroup path for every cgroup on the host, not only containers'.

The kernel stamps events with the v2 cgroup id (the inode of the cgroup's
directory); the enricher needs the path to tell a host process from a container
it has no record of yet. The map is built by walking the v2 hierarchy and rebuilt
on a miss, at most once per ``min_rescan_s`` (a new container is usually a miss:
its first events must resolve within its short life), so a busy host pays one dict lookup
per event.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from eunomia.producer.cgroup_paths import cgroup2_root

__all__ = ["CgroupResolver"]


class CgroupResolver:
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
