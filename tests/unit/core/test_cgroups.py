"""The one cgroup-path parser: each runtime's and cgroup driver's path shapes ->
container id, runtime and pod uid; host cgroups and runtime helpers are no container."""

from __future__ import annotations

import pytest

from eunomia.cgroups import parse_cgroup_path

CID = "13e834b1e4ab4f5728c2c9ba1c95d5b80d190104287543b3d6936d61c83a0f27"
UID = "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b"
UID_ = UID.replace("-", "_")  # the systemd driver spells the pod uid with underscores
KUBE_SD = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"

CONTAINERS = {
    # docker: cgroupfs, systemd
    "docker cgroupfs": (f"/docker/{CID}", "docker", None),
    "docker systemd": (f"/system.slice/docker-{CID}.scope", "docker", None),
    # podman: cgroupfs (this host), systemd, its nested container cgroup, rootless, pods
    "podman cgroupfs": (f"/libpod_parent/libpod-{CID}", "podman", None),
    "podman systemd": (f"/machine.slice/libpod-{CID}.scope", "podman", None),
    "podman nested": (f"/machine.slice/libpod-{CID}.scope/container", "podman", None),
    "podman rootless": (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
                        "podman", None),
    "podman pod": (f"/machine.slice/machine-libpod_pod_{'b' * 64}.slice/libpod-{CID}.scope",
                   "podman", None),
    # containerd outside Kubernetes: cgroupfs /<namespace>/<id>, systemd scopes (nerdctl)
    "containerd default namespace": (f"/default/{CID}", "containerd", None),
    "containerd k8s.io namespace": (f"/k8s.io/{CID}", "containerd", None),
    "containerd systemd": (f"/system.slice/containerd-{CID}.scope", "containerd", None),
    "nerdctl systemd": (f"/system.slice/nerdctl-{CID}.scope", "containerd", None),
    # cri-o outside a kubepods tree
    "cri-o systemd": (f"/system.slice/crio-{CID}.scope", "cri-o", None),
    # Kubernetes, systemd driver: the inner runtime is in the scope name
    "kubepods containerd": (f"{KUBE_SD}/cri-containerd-{CID}.scope", "containerd", UID),
    "kubepods cri-o": (f"{KUBE_SD}/crio-{CID}.scope", "cri-o", UID),
    "kubepods docker": (f"{KUBE_SD}/docker-{CID}.scope", "docker", UID),
    "kubepods guaranteed": (f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope", "cri-o", UID),
    # Kubernetes, cgroupfs driver: cri-o still names itself, a bare id does not
    "kubepods cgroupfs cri-o": (f"/kubepods/burstable/pod{UID}/crio-{CID}", "cri-o", UID),
    "kubepods cgroupfs": (f"/kubepods/burstable/pod{UID}/{CID}", "kubernetes", UID),
    "kubepods cgroupfs guaranteed": (f"/kubepods/pod{UID}/{CID}", "kubernetes", UID),
    "kubepods cgroupfs nested": (f"/kubepods/besteffort/pod{UID}/{CID}/nested", "kubernetes", UID),
}


@pytest.mark.parametrize(("path", "runtime", "pod_uid"), CONTAINERS.values(), ids=CONTAINERS.keys())
def test_container_paths(path: str, runtime: str, pod_uid: str | None) -> None:
    found = parse_cgroup_path(path)
    assert found is not None, "not recognised as a container"
    assert (found.container_id, found.runtime, found.pod_uid) == (CID, runtime, pod_uid)


NOT_CONTAINERS = {
    "root": "/",
    "init": "/init.scope",
    "service": "/system.slice/sshd.service",
    "session": "/user.slice/user-0.slice/session-3.scope",
    "podman conmon cgroupfs": "/libpod_parent/conmon",
    "podman conmon systemd": f"/machine.slice/libpod-conmon-{CID}.scope",
    "podman conmon named": f"/libpod_parent/libpod-conmon-{CID}",
    "cri-o conmon": f"{KUBE_SD}/crio-conmon-{CID}.scope",
    "the pod itself": f"/kubepods/burstable/pod{UID}",
    "bare id under an unknown parent": f"/somewhere/{CID}",
    "short id": f"/docker/{CID[:12]}",
}


@pytest.mark.parametrize("path", NOT_CONTAINERS.values(), ids=NOT_CONTAINERS.keys())
def test_host_and_helper_paths_are_no_container(path: str) -> None:
    assert parse_cgroup_path(path) is None
