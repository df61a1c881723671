"""Container identity from a cgroup path alone.

Used when no container record (``containers`` topic) arrived in time: the path
still names the runtime and the container id for docker, podman, containerd,
cri-o and Kubernetes pods (cgroupfs and systemd drivers, cgroup v1 and v2), and
the pod uid for kubepods. Anything else is a host process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CgroupIdentity", "parse_cgroup_path"]

_HEX64 = r"([0-9a-f]{64})"
# Most specific first: a kubepods path also contains a runtime scope.
_SCOPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("podman", re.compile(r"libpod-(?!conmon-)" + _HEX64 + r"(?:\.scope)?/")),
    ("docker", re.compile(r"docker-" + _HEX64 + r"\.scope")),
    ("containerd", re.compile(r"cri-containerd-" + _HEX64 + r"\.scope")),
    ("cri-o", re.compile(r"crio-(?!conmon-)" + _HEX64 + r"(?:\.scope)?/")),
    ("docker", re.compile(r"/docker/" + _HEX64 + r"(?:/|$)")),
)
_UID = r"([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
_KUBE_POD = re.compile(r"[/-]pod" + _UID + r"(?:\.slice)?/")
_KUBE_BARE = re.compile(r"/pod[0-9a-f_\-]{36}(?:\.slice)?/" + _HEX64 + r"/")


@dataclass(frozen=True)
class CgroupIdentity:
    container_id: str  # "host" for host processes
    runtime: str | None = None
    pod_uid: str | None = None

    @property
    def is_host(self) -> bool:
        return self.container_id == "host"


HOST = CgroupIdentity("host")


@lru_cache(maxsize=4096)
def parse_cgroup_path(path: str | None) -> CgroupIdentity | None:
    """The identity a cgroup path names; ``None`` when there is no path to read."""
    if not path:
        return None
    p = path if path.endswith("/") else path + "/"
    pod = _KUBE_POD.search(p) if "kubepods" in p else None
    pod_uid = pod.group(1).replace("_", "-") if pod else None
    for runtime, rx in _SCOPES:
        m = rx.search(p)
        if m:
            return CgroupIdentity(m.group(1), runtime, pod_uid)
    if pod_uid:
        bare = _KUBE_BARE.search(p)
        if bare:  # cgroupfs kubelet: /kubepods/<qos>/pod<uid>/<id>, runtime unknown
            return CgroupIdentity(bare.group(1), None, pod_uid)
    return HOST
