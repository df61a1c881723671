"""Which container a cgroup belongs to, from its path alone.

Used when no runtime API answers (and to find a container's cgroup at all): each
runtime names the leaf cgroup of a container after the container id, in a shape
that depends on the runtime and on its cgroup driver:

=============  =============================================================
docker         cgroupfs ``/docker/<id>``; systemd ``/system.slice/docker-<id>.scope``
podman         cgroupfs ``/libpod_parent/libpod-<id>``; systemd
               ``/machine.slice/libpod-<id>.scope`` (rootless under
               ``user@UID.service``), optionally ``.../container`` below it
containerd     cgroupfs ``/<namespace>/<id>`` (``default``, ``k8s.io``, ``moby``);
               systemd ``cri-containerd-<id>.scope``, ``nerdctl-<id>.scope``
cri-o          systemd ``crio-<id>.scope``; cgroupfs ``/kubepods/.../pod<uid>/<id>``
kubepods       ``/kubepods[/<qos>]/pod<uid>/<id>`` (cgroupfs) or
               ``/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/...``
               (systemd, uid with ``_`` for ``-``)
=============  =============================================================

The parser is pure; the two file-system helpers at the bottom map a pid to its
cgroup and a cgroup to the id ``bpf_get_current_cgroup_id()`` reports (the inode
of its directory in the cgroup v2 hierarchy).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["CgroupMatch", "cgroup2_root", "cgroup_id", "parse_cgroup_path", "pid_cgroup_path",
           "proc_cgroup_v2_path"]

_ID = r"[0-9a-f]{64}"
_SCOPE = re.compile(rf"^(docker|libpod|crio|cri-containerd|containerd|nerdctl)-({_ID})\.scope$")
_LIBPOD_FS = re.compile(rf"^libpod-({_ID})$")
_BARE = re.compile(rf"^({_ID})$")
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
                  r"(?:\.slice)?$")
_CONMON = re.compile(r"(^conmon$|conmon-)")
_SCOPE_RUNTIME = {"docker": "docker", "libpod": "podman", "crio": "cri-o",
                  "cri-containerd": "containerd", "containerd": "containerd",
                  "nerdctl": "containerd"}
_CONTAINERD_NAMESPACES = {"default", "k8s.io", "moby", "buildkit"}


@dataclass(frozen=True)
class CgroupMatch:
    runtime: str  # docker, podman, containerd, cri-o, kubernetes
    container_id: str
    pod_uid: str | None = None


def parse_cgroup_path(path: str) -> CgroupMatch | None:
    """The container a cgroup path belongs to, or None for host cgroups and conmon."""
    parts = [p for p in path.split("/") if p]
    pod_uid = _pod_uid(parts)
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        if _CONMON.search(part):
            return None
        m = _SCOPE.match(part)
        if m:
            return CgroupMatch(_SCOPE_RUNTIME[m.group(1)], m.group(2), pod_uid)
        m = _LIBPOD_FS.match(part)
        if m:
            return CgroupMatch("podman", m.group(1), pod_uid)
        m = _BARE.match(part)
        if m:
            parent = parts[i - 1] if i else ""
            if pod_uid is not None:
                runtime = "kubernetes"
            elif parent == "docker":
                runtime = "docker"
            elif parent in _CONTAINERD_NAMESPACES:
                runtime = "containerd"
            else:
                continue
            return CgroupMatch(runtime, m.group(1), pod_uid)
    return None


def _pod_uid(parts: list[str]) -> str | None:
    if not any(p.startswith("kubepods") for p in parts):
        return None
    for part in parts:
        m = _POD.search(part)
        if m:
            return m.group(1).replace("_", "-")
    return None


def proc_cgroup_v2_path(text: str) -> str | None:
    """The unified-hierarchy path from a /proc/<pid>/cgroup text ('0::/path')."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


# -- file system -------------------------------------------------------------

@cache
def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup (unified host) or
    /sys/fs/cgroup/unified (hybrid host, like this one)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return Path(left.split()[4])
    except OSError:
        pass
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
