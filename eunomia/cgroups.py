"""Which container a cgroup belongs to, from its path alone.

The one parser the producer (when no runtime API answers) and the enricher (when
no container record arrived in time) share, so both name the same runtime. The
path shapes of each runtime and cgroup driver: tests/unit/core/test_cgroups.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ContainerCgroup", "parse_cgroup_path"]

_ID = r"[0-9a-f]{64}"
_SCOPE = re.compile(rf"^(docker|libpod|crio|cri-containerd|containerd|nerdctl)-({_ID})(?:\.scope)?$")
_BARE = re.compile(rf"^({_ID})$")
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
                  r"(?:\.slice)?$")
_CONMON = re.compile(r"(^conmon$|conmon-)")
_SCOPE_RUNTIME = {"docker": "docker", "libpod": "podman", "crio": "cri-o",
                  "cri-containerd": "containerd", "containerd": "containerd",
                  "nerdctl": "containerd"}
# containerd's cgroupfs layout outside Kubernetes is /<namespace>/<id>
_CONTAINERD_NAMESPACES = {"default", "k8s.io", "moby", "buildkit"}


@dataclass(frozen=True)
class ContainerCgroup:
    container_id: str
    runtime: str  # docker, podman, containerd, cri-o, kubernetes
    pod_uid: str | None = None


@lru_cache(maxsize=4096)
def parse_cgroup_path(path: str) -> ContainerCgroup | None:
    """The container a cgroup path belongs to; None for host cgroups and for
    runtime helpers (conmon), which run beside a container, not in it."""
    parts = [p for p in path.split("/") if p]
    pod_uid = _pod_uid(parts)
    for i in range(len(parts) - 1, -1, -1):  # leaf first: the container may have sub-cgroups
        part = parts[i]
        if _CONMON.search(part):
            return None
        m = _SCOPE.match(part)
        if m:
            return ContainerCgroup(m.group(2), _SCOPE_RUNTIME[m.group(1)], pod_uid)
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
                continue  # a bare id under an unknown parent is not trusted
            return ContainerCgroup(m.group(1), runtime, pod_uid)
    return None


def _pod_uid(parts: list[str]) -> str | None:
    if not any(p.startswith("kubepods") for p in parts):
        return None
    for part in parts:
        m = _POD.search(part)
        if m:
            return m.group(1).replace("_", "-")
    return None
