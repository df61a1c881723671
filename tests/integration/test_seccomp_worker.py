"""The seccomp worker on the real broker: two containers of one image on two
hosts merge into one profile; a syscall outside it raises the alert; garbage
goes to the DLQ; export and list read the compacted topic."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from eunomia.commands.seccomp import read_profiles
from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.processors.seccomp.profile import RUNC_AFTER_SECCOMP
from eunomia.schemas import AvroCodec
from eunomia.syscall_names import number
from tests.support.kafka_io import consume, read_topic
from tests.support.wait import wait_for
from tests.support.workers import eunomia_env, start_worker, stop

pytestmark = pytest.mark.kafka
IMAGE = "localhost/app:1"
CODEC = AvroCodec()


def enriched(host: str, container: str, seq: int, names: list[str], image: str = IMAGE) -> bytes:
    ts = time.time_ns()
    rec: dict[str, Any] = {
        "event": {"id": f"{host}:b:s:{seq}", "kind": "syscall_counts", "category": "syscalls",
                  "ts_ns": ts, "seq": seq},
        "host": {"id": host, "boot_id": "b"},
        "process": {"pid": 100 + seq, "name": "sh", "exec_id": f"{host}:b:{seq}"},
        "user": {"id": 0, "group_id": 0},
        "container": {"id": container, "image_name": image, "image_id": "sha256:feed"},
        "syscalls": {"arch": "x86_64", "interval_ns": 10**9,
                     "counts": [{"nr": number("x86_64", n), "count": 3} for n in names]},
    }
    return CODEC.encode("enriched_event", rec)


@pytest.fixture
def worker(settings: Settings, request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[bytes]]:
    create_topics(settings)
    extra = list(getattr(request, "param", []))
    proc = start_worker(settings, "seccomp", "--debounce", "1", "--max-wait", "5", *extra)
    try:
        yield proc
    finally:
        stop(proc, timeout=30)


@pytest.mark.parametrize("worker", [["--learn-period", "0", "--learn-containers", "2"]], indirect=True)
def test_two_hosts_merge_then_a_new_syscall_alerts(settings: Settings, worker) -> None:
    create_topics(settings)
    p = Producer(settings.kafka.librdkafka())
    src = settings.topic("enriched.events")
    p.produce(src, enriched("host-a", "ctr-a", 1, ["read", "write", "openat"]), b"host-a/ctr-a")
    p.produce(src, enriched("host-b", "ctr-b", 1, ["read", "sendfile", "accept4"]), b"host-b/ctr-b")
    p.produce(src, b"\xc3\x01garbage", b"host-b/ctr-b")
    p.flush(30)

    def merged() -> dict | None:
        rec = read_profiles(settings).get(IMAGE)
        return rec if rec and rec["hosts"] == ["host-a", "host-b"] else None

    rec = wait_for(merged, "a profile merging both hosts")
    learned = [s["name"] for s in rec["syscalls"]]
    assert learned == ["accept4", "openat", "read", "sendfile", "write"]
    assert rec["containers"] == ["ctr-a", "ctr-b"] and rec["image_id"] == "sha256:feed"
    prof = json.loads(rec["profile_json"])
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert prof["syscalls"][0]["names"] == sorted(set(learned) | RUNC_AFTER_SECCOMP)

    # a third container of the image on host-a uses mkdir: outside the profile
    p.produce(src, enriched("host-a", "ctr-c", 2, ["read", "mkdir"]), b"host-a/ctr-c")
    p.flush(30)
    alerts = read_topic(settings, "alerts", "alert", until=lambda got: len(got) >= 1)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["rule_id"] == "seccomp-violation" and alert["level"] == "alert"
    assert alert["container_id"] == "ctr-c" and alert["image_name"] == IMAGE
    assert alert["fields"]["syscalls"] == "mkdir" and alert["host_id"] == "host-a"
    # the SIEM's topic has it too, as an OCSF finding of the same id
    findings = consume(settings, "alerts.ocsf", until=lambda got: len(got) >= 1, decode=None)
    assert [(k.decode(), json.loads(v)["finding_info"]["analytic"]["uid"]) for k, v, _, _ in findings] \
        == [(alert["alert_id"], "seccomp-violation")]

    dead = read_topic(settings, "dlq", "dead_letter", until=lambda got: len(got) >= 1)
    assert dead and dead[0]["processor"] == "seccomp"

    # the CLI reads the same compacted topic
    env = eunomia_env(settings)
    spo = subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "export", IMAGE, "--format",
                          "spo"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "kind: SeccompProfile" in spo.stdout and "- sendfile" in spo.stdout
    listing = subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "list"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    assert IMAGE in listing.stdout and "learning" in listing.stdout
    missing = subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "export", "nope:1"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no seccomp profile published for 'nope:1'" in missing.stderr


@pytest.mark.parametrize("worker", [["--freeze"]], indirect=True)
def test_frozen_profile_only_alerts(settings: Settings, worker) -> None:
    p = Producer(settings.kafka.librdkafka())
    src = settings.topic("enriched.events")
    p.produce(src, enriched("host-a", "ctr-a", 1, ["read", "write"]), b"host-a/ctr-a")
    p.flush(30)
    wait_for(lambda: read_profiles(settings).get(IMAGE), "the first profile")
    p.produce(src, enriched("host-a", "ctr-b", 2, ["read", "mkdir", "chmod"]), b"host-a/ctr-b")
    p.produce(src, enriched("host-a", "ctr-a", 3, ["write"]), b"host-a/ctr-a")  # a marker after it
    p.flush(30)
    alerts = read_topic(settings, "alerts", "alert", until=lambda got: len(got) >= 1)
    assert [a["fields"]["syscalls"] for a in alerts] == ["chmod,mkdir"]
    # a frozen set does not grow, so nothing is republished: still v1 without mkdir
    # after three debounce periods (a learning worker republishes within one)
    time.sleep(3.0)
    rec = read_profiles(settings)[IMAGE]
    assert rec["version"] == 1 and "mkdir" not in rec["profile_json"]

    # an operator approves mkdir: the next version holds it, not chmod
    env = eunomia_env(settings)
    bad = subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "approve", IMAGE, "mkdirr"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown syscall name(s) for x86_64: mkdirr" in bad.stderr
    subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "approve", IMAGE, "mkdir"],
                   env=env, capture_output=True, text=True, timeout=60, check=True)
    rec = wait_for(lambda: (r := read_profiles(settings).get(IMAGE)) and r["version"] >= 2 and r,
                   "the profile with the approved call")
    names = json.loads(rec["profile_json"])["syscalls"][0]["names"]
    assert "mkdir" in names and "chmod" not in names


NAMES = [  # one syscall per record, each known to libseccomp
    "read", "write", "openat", "close", "mmap", "mprotect", "munmap", "brk", "rt_sigaction",
    "rt_sigprocmask", "ioctl", "pread64", "pwrite64", "readv", "writev", "access", "pipe",
    "select", "sched_yield", "mremap", "msync", "mincore", "madvise", "dup", "dup2", "pause",
    "nanosleep", "getitimer", "alarm", "setitimer", "getpid", "sendfile", "socket", "connect",
    "accept", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "bind", "listen",
    "getsockname", "getpeername", "socketpair", "setsockopt", "getsockopt", "clone", "fork",
    "vfork", "execve", "exit", "wait4", "kill", "uname", "fcntl", "flock", "fsync", "fdatasync",
    "truncate"
]


def test_killed_worker_successor_learns_everything(settings: Settings) -> None:
    """SIGKILL the only seccomp worker once it has published what it read; a
    successor restores the learned sets from the changelog and reads on. Each
    record brings one syscall no other has, so the final profile names a lost
    record: every syscall of every record must be in it."""
    create_topics(settings)
    image = "localhost/killed:1"
    p = Producer(settings.kafka.librdkafka())
    src = settings.topic("enriched.events")

    def publish(recs: range) -> None:
        for i in recs:
            host = f"host-{i % 3}"
            p.produce(src, enriched(host, f"ctr-{i}", i, [NAMES[i]], image=image),
                      f"{host}/ctr-{i}".encode())
        p.flush(30)

    def profile_with(names: set[str]) -> dict | None:
        rec = read_profiles(settings).get(image)
        return rec if rec and names <= {s["name"] for s in rec["syscalls"]} else None

    def start() -> subprocess.Popen[bytes]:
        return start_worker(settings, "seccomp", "--debounce", "1", "--max-wait", "5")

    first, second, third = range(0, 20), range(20, 40), range(40, len(NAMES))
    procs = [start()]
    try:
        publish(first)
        wait_for(lambda: profile_with({NAMES[i] for i in first}), "the first profile", timeout=120)
        publish(second)
        wait_for(lambda: profile_with({NAMES[i] for i in second}), "the second batch learned")
        procs[0].kill()
        procs[0].wait(30)
        procs.append(start())
        publish(third)
        rec = wait_for(lambda: profile_with(set(NAMES)), "every record's syscall after the kill",
                       timeout=240)
        assert {s["name"] for s in rec["syscalls"]} == set(NAMES)
        assert rec["hosts"] == ["host-0", "host-1", "host-2"]
        assert set(rec["containers"]) == {f"ctr-{i}" for i in range(len(NAMES))}
    finally:
        for proc in procs:
            stop(proc, timeout=30)
