"""ContainerTracker against real podman containers through podman's Docker-compatible
API: found at start, a new container's record (name, image, labels, the kernel's
cgroup id), a tombstone on removal, and the cgroup-path fallback without an API."""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eunomia.producer.cgroup_resolver import cgroup2_root
from eunomia.producer.containers import ContainerTracker
from eunomia.schemas import AvroCodec
from tests.support.podman import BUSYBOX_IMAGE

pytestmark = [pytest.mark.podman, pytest.mark.root]


def kernel_cgroup_id(cgroup_path: str) -> int:
    """The id the kernel exports for a cgroup (its file handle, as bpftool and systemd
    read it), independent of the stat() the tracker uses."""

    class FileHandle(ctypes.Structure):
        _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                    ("f_handle", ctypes.c_ubyte * 8)]

    libc = ctypes.CDLL(None, use_errno=True)
    fh = FileHandle(handle_bytes=8)
    mount_id = ctypes.c_int()
    root = cgroup2_root()
    assert root is not None
    path = str(root / cgroup_path.lstrip("/")).encode()
    if libc.name_to_handle_at(-100, path, ctypes.byref(fh), ctypes.byref(mount_id), 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int.from_bytes(bytes(fh.f_handle), "little")


def cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    raise AssertionError("no cgroup v2 line")


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any] | None]] = []
        self.cond = threading.Condition()

    def __call__(self, key: str, rec: dict[str, Any] | None) -> None:
        with self.cond:
            self.items.append((key, rec))
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.items:
                    if pred(*item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not seen in {timeout}s; got {self.items}")
                self.cond.wait(left)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        subprocess.run(["podman", "rm", "-f", "-t", "0", n], capture_output=True)


def run_container(names: list[str], *labels: str) -> tuple[str, str, int]:
    name = f"eunomia-trk-{uuid.uuid4().hex[:8]}"
    names.append(name)
    args = [a for lab in labels for a in ("--label", lab)]
    cid = subprocess.run(["podman", "run", "-d", "--name", name, *args, BUSYBOX_IMAGE,
                          "sleep", "120"], check=True, capture_output=True, text=True).stdout.strip()
    pid = int(subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", name], check=True,
                             capture_output=True, text=True).stdout)
    return name, cid, pid


def test_tracker_follows_container_lifecycle(podman_socket: str, containers: list[str]) -> None:
    _, before_id, before_pid = run_container(containers)
    rec_out = Recorder()
    tracker = ContainerTracker("host-e2e", podman_socket, rec_out)
    tracker.start()
    assert tracker.connected.wait(60), "the tracker did not connect in 60 s"
    try:
        assert tracker.source == "api"
        _, rec = rec_out.wait_for(lambda k, r: r is not None and r["container_id"] == before_id)
        assert rec["init_pid"] == before_pid and rec["runtime"] == "podman"

        labels = ("io.kubernetes.pod.name=web-0", "io.kubernetes.pod.namespace=shop",
                  "io.kubernetes.pod.uid=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", "team=blue")
        name, cid, pid = run_container(containers, *labels)
        key, rec = rec_out.wait_for(lambda k, r: r is not None and r["container_id"] == cid)
        assert rec["name"] == name and rec["image"] == BUSYBOX_IMAGE
        assert rec["image_id"] and rec["labels"]["team"] == "blue"
        assert (rec["pod_name"], rec["pod_namespace"], rec["pod_uid"]) == (
            "web-0", "shop", "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b")
        assert rec["cgroup_path"] == cgroup_of(pid) and cid in rec["cgroup_path"]
        assert rec["cgroup_id"] == kernel_cgroup_id(cgroup_of(pid)) != kernel_cgroup_id("/")
        assert key == f"host-e2e/{rec['cgroup_id']}"
        assert tracker.cgroup_path(rec["cgroup_id"]) == rec["cgroup_path"]
        AvroCodec().encode("container", rec)  # the record honours the contract

        subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=True, capture_output=True)
        rec_out.wait_for(lambda k, r: k == key and r is None)
        assert sum(1 for k, r in rec_out.items if k == key and r is None) == 1
    finally:
        tracker.stop()


def test_fallback_to_cgroup_paths_without_api(tmp_path: Path, containers: list[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    from tests.requirements import require_podman

    require_podman()
    _, cid, pid = run_container(containers)
    caplog.set_level(logging.WARNING, logger="eunomia.producer.containers")
    rec_out = Recorder()
    tracker = ContainerTracker("host-e2e", f"unix://{tmp_path}/missing.sock", rec_out,
                               rescan_interval=0.5)
    tracker.start()
    assert tracker.connected.wait(60), "the tracker did not connect in 60 s"
    try:
        assert tracker.source == "cgroup"
        lines = [r for r in caplog.records if "cgroup path only" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        key, rec = rec_out.wait_for(lambda k, r: r is not None and r["container_id"] == cid)
        assert rec["source"] == "cgroup" and rec["runtime"] == "podman"
        assert rec["cgroup_id"] == kernel_cgroup_id(cgroup_of(pid))
        subprocess.run(["podman", "rm", "-f", "-t", "0", containers[-1]], check=True,
                       capture_output=True)
        rec_out.wait_for(lambda k, r: k == key and r is None)
    finally:
        tracker.stop()


def test_an_api_that_starts_later_is_picked_up(tmp_path: Path, containers: list[str]) -> None:
    """Started before the runtime API (a socket-activated podman service),
    the tracker recognises containers by cgroup path, then switches to the
    API once it answers, and names them."""
    from tests.requirements import require_podman

    require_podman()
    sock = tmp_path / "late.sock"
    rec_out = Recorder()
    tracker = ContainerTracker("host-e2e", f"unix://{sock}", rec_out, rescan_interval=0.5,
                               api_retry_s=1.0)
    tracker.start()
    service = None
    try:
        assert tracker.connected.wait(60)
        assert tracker.source == "cgroup"
        service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while tracker.source != "api":
            assert time.monotonic() < deadline, "the tracker never switched to the API"
            time.sleep(0.2)
        name, cid, _ = run_container(containers, "team=late")
        _, rec = rec_out.wait_for(lambda k, r: r is not None and r["container_id"] == cid
                                  and r["source"] == "api", timeout=60)
        assert rec["name"] == name and rec["labels"]["team"] == "late"
    finally:
        tracker.stop()
        if service is not None:
            service.terminate()
            service.wait(30)
