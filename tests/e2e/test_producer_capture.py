"""The producer against the real kernel, a real podman container and a real
broker: what happens inside the container comes out on raw.events with the
container's cgroup and namespaces, the right argv, paths, results and exit code;
syscall counts arrive on raw.syscalls; the container's record on containers; and
the seq numbers are gap-free."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.config import Settings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from eunomia.schemas import AvroCodec
from tests.requirements import require_bpf, require_podman
from tests.support.kafka_io import read_topic
from tests.support.podman import BUSYBOX_IMAGE
from tests.support.ports import free_port_block

SCRIPT = ("cat /etc/shadow > /dev/null; echo x > /etc/eunomia-test; "
          "nc -w 1 127.0.0.1 9 < /dev/null; unshare -m true; setpriv --reuid 65534 true; exit 3")
codec = AvroCodec()


@pytest.fixture
def producer(settings: Settings, podman_socket: str, tmp_path: Path) -> Iterator[subprocess.Popen]:
    require_bpf()
    create_topics(settings)
    port = free_port_block()
    env = {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix, "EUNOMIA_METRICS_PORT": str(port),
           "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool"), "DOCKER_HOST": podman_socket}
    log = open(tmp_path / "producer.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "eunomia", "producer"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        assert wait_ready(port, timeout=120, alive=lambda: proc.poll() is None), \
            "producer died or not ready in 120 s: " + (tmp_path / "producer.log").read_text()[-3000:]
        time.sleep(1)
        yield proc
    finally:
        proc.terminate()
        try:
            assert proc.wait(60) == 0, (tmp_path / "producer.log").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


def test_container_activity_reaches_raw_events(producer: subprocess.Popen, settings: Settings) -> None:
    require_podman()
    name = f"eunomia-prod-{uuid.uuid4().hex[:6]}"
    run = subprocess.run(["podman", "run", "--name", name, "--label", "team=blue", BUSYBOX_IMAGE,
                          "sh", "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    try:
        assert run.returncode == 3, run.stderr
        records = read_topic(settings, "containers", "container",
                             until=lambda rs: any(r.get("name") == name for r in rs))
        (rec,) = [r for r in records if r.get("name") == name][:1]
        assert rec["image"].startswith("localhost/eunomia-busybox")
        assert rec["labels"]["team"] == "blue"
        cg = rec["cgroup_id"]
        assert cg > 0

        def done(evs: list[dict]) -> bool:
            return any(e["kind"] == "exit" and e["cgroup_id"] == cg and e["payload"]["exit_code"] == 3
                       for e in evs)

        events = read_topic(settings, "raw.events", "raw_event", until=done, timeout=60)
        mine = [e for e in events if e["cgroup_id"] == cg]
        kinds = {e["kind"] for e in mine}
        assert {"exec", "fork", "exit", "open", "connect"} <= kinds, kinds
        host_pidns = os.stat("/proc/self/ns/pid").st_ino
        host_mntns = os.stat("/proc/self/ns/mnt").st_ino
        sh = [e for e in mine if e["kind"] == "exec" and e["payload"]["argv"][:2] == ["sh", "-c"]]
        assert sh and sh[0]["payload"]["argv"][2] == SCRIPT and sh[0]["payload"]["retval"] == 0
        assert sh[0]["ns"]["pid"] != host_pidns and sh[0]["ns"]["mnt"] != host_mntns
        assert all(e["ns"]["pid"] == sh[0]["ns"]["pid"] for e in mine if e["kind"] == "exec")
        cat = [e for e in mine if e["kind"] == "exec" and e["payload"]["argv"] == ["cat", "/etc/shadow"]]
        # busybox's shell runs its applets by exec'ing /proc/self/exe: that is the real filename
        assert cat and cat[0]["payload"]["filename"] in ("/bin/cat", "/proc/self/exe")
        shadow = [e for e in mine if e["kind"] == "open" and e["payload"]["path"] == "/etc/shadow"]
        assert shadow and shadow[0]["payload"]["retval"] >= 0
        write = [e for e in mine if e["kind"] == "open" and e["payload"]["path"] == "/etc/eunomia-test"]
        assert write and write[0]["payload"]["flags"] & (os.O_WRONLY | os.O_RDWR)
        conn = [e for e in mine if e["kind"] == "connect" and e["payload"]["dport"] == 9]
        assert conn and conn[0]["payload"]["daddr"] == "127.0.0.1"
        assert conn[0]["payload"]["retval"] == -111  # ECONNREFUSED
        ns_calls = [e for e in mine if e["kind"] in ("unshare", "mount")]
        assert ns_calls, "unshare -m inside the container yields an event"
        setuid = [e for e in mine if e["kind"] in ("setuid", "setresuid", "setreuid")]
        assert setuid, "setpriv --reuid yields a setuid-family event"
        exits = [e for e in mine if e["kind"] == "exit" and e["payload"]["exit_code"] == 3]
        assert exits and exits[0]["pid"] == sh[0]["pid"]

        counts = read_topic(settings, "raw.syscalls", "syscall_counts",
                            until=lambda rs: any(r["cgroup_id"] == cg for r in rs), timeout=30)
        nrs = {c["nr"] for r in counts if r["cgroup_id"] == cg for c in r["counts"]}
        import platform

        if platform.machine() == "x86_64":  # execve, openat, connect, unshare
            assert {59, 257, 42, 272} <= nrs, sorted(nrs)

        seqs = sorted(e["seq"] for e in events if e["host_id"] == mine[0]["host_id"])
        assert seqs == list(range(1, seqs[-1] + 1)), "seq numbers have gaps or duplicates"
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=60)
    tomb = read_topic(settings, "containers", "container",
                      until=lambda rs: any(r.get("tombstone", "").endswith(f"/{cg}") for r in rs),
                      timeout=30)
    assert any(r.get("tombstone", "").endswith(f"/{cg}") for r in tomb)
