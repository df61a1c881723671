"""Cgroup path shapes of each runtime and cgroup driver -> runtime, container id, pod uid."""

from __future__ import annotations

import pytest

from eunomia.producer.cgroup_paths import CgroupMatch, parse_cgroup_path, proc_cgroup_v2_path

CID = "13e834b1e4ab4f5728c2c9ba1c95d5b80d190104287543b3d6936d61c83a0f27"
UID = "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize(("path", "expected"), [
    # docker
    (f"/docker/{CID}", CgroupMatch("docker", CID)),
    (f"/system.slice/docker-{CID}.scope", CgroupMatch("docker", CID)),
    # podman: cgroupfs (this host), systemd, rootless, nested container cgroup
    (f"/libpod_parent/libpod-{CID}", CgroupMatch("podman", CID)),
    (f"/machine.slice/libpod-{CID}.scope", CgroupMatch("podman", CID)),
    (f"/machine.slice/libpod-{CID}.scope/container", CgroupMatch("podman", CID)),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
     CgroupMatch("podman", CID)),
    # containerd: cgroupfs namespaces, systemd scopes
    (f"/default/{CID}", CgroupMatch("containerd", CID)),
    (f"/k8s.io/{CID}", CgroupMatch("containerd", CID)),
    (f"/system.slice/containerd-{CID}.scope", CgroupMatch("containerd", CID)),
    (f"/system.slice/nerdctl-{CID}.scope", CgroupMatch("containerd", CID)),
    # kubepods with containerd or cri-o, systemd driver (uid with underscores)
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope", CgroupMatch("containerd", CID, UID)),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"crio-{CID}.scope", CgroupMatch("cri-o", CID, UID)),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope", CgroupMatch("cri-o", CID, UID)),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"docker-{CID}.scope", CgroupMatch("docker", CID, UID)),
    # kubepods, cgroupfs driver: the runtime is not in the path
    (f"/kubepods/burstable/pod{UID}/{CID}", CgroupMatch("kubernetes", CID, UID)),
    (f"/kubepods/pod{UID}/{CID}", CgroupMatch("kubernetes", CID, UID)),
    (f"/kubepods/besteffort/pod{UID}/{CID}/nested", CgroupMatch("kubernetes", CID, UID)),
])
def test_container_paths(path: str, expected: CgroupMatch) -> None:
    assert parse_cgroup_path(path) == expected


@pytest.mark.parametrize("path", [
    "/", "/init.scope", "/system.slice/sshd.service", "/user.slice/user-0.slice/session-3.scope",
    "/libpod_parent/conmon", f"/machine.slice/libpod-conmon-{CID}.scope",
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
    f"crio-conmon-{CID}.scope",
    f"/kubepods/burstable/pod{UID}",  # the pod, not a container
    f"/somewhere/{CID}",  # a bare id under an unknown parent is not trusted
    f"/docker/{CID[:12]}",  # short ids are not container cgroups
])
def test_host_and_helper_paths_are_not_containers(path: str) -> None:
    assert parse_cgroup_path(path) is None


def test_proc_cgroup_hybrid_and_v1_only() -> None:
    hybrid = (f"9:name=systemd:/libpod_parent/libpod-{CID}\n4:memory:/libpod_parent/libpod-{CID}\n"
              f"0::/libpod_parent/libpod-{CID}\n")
    assert proc_cgroup_v2_path(hybrid) == f"/libpod_parent/libpod-{CID}"
    assert proc_cgroup_v2_path("0::/\n") == "/"
    assert proc_cgroup_v2_path("4:memory:/docker/x\n") is None
