"""Container ids from cgroup paths of each runtime and of Kubernetes pods."""

from __future__ import annotations

import pytest

from eunomia.cgroups import parse_cgroup_path

H = "0123456789abcdef" * 4
UID = "5f2c1d3e-1111-2222-3333-444455556666"


@pytest.mark.parametrize(("path", "cid", "runtime", "pod"), [
    (f"/libpod_parent/libpod-{H}", H, "podman", None),
    (f"/machine.slice/libpod-{H}.scope/container", H, "podman", None),
    (f"/system.slice/docker-{H}.scope", H, "docker", None),
    (f"/docker/{H}", H, "docker", None),
    (f"/system.slice/crio-{H}.scope", H, "cri-o", None),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
     f"cri-containerd-{H}.scope", H, "containerd", UID),
    (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{H}.scope", H, "cri-o", UID),
    (f"/kubepods/besteffort/pod{UID}/{H}", H, None, UID),
])
def test_container_paths(path: str, cid: str, runtime: str | None, pod: str | None) -> None:
    ident = parse_cgroup_path(path)
    assert ident is not None
    assert (ident.container_id, ident.runtime, ident.pod_uid) == (cid, runtime, pod)


@pytest.mark.parametrize("path", ["/", "/user.slice/user-0.slice/session-3.scope",
                                  "/system.slice/sshd.service", f"/libpod_parent/libpod-conmon-{H}"])
def test_host_paths(path: str) -> None:
    ident = parse_cgroup_path(path)
    assert ident is not None and ident.is_host


def test_no_path_is_unknown() -> None:
    assert parse_cgroup_path(None) is None
