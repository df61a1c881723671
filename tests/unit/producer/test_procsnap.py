"""The /proc snapshot sees a process we started, with the identity the BPF side
would give it, leaves out the producer itself, and honours the raw_event schema;
the v2 cgroup path is read from /proc/<pid>/cgroup on unified and hybrid hosts."""

from __future__ import annotations

import os
import subprocess
import time

from eunomia.producer.cgroup_resolver import cgroup_id, pid_cgroup_path, proc_cgroup_v2_path
from eunomia.producer.identity import exec_id, start_ticks_of_pid
from eunomia.producer.procsnap import snapshot
from eunomia.schemas import AvroCodec


def test_snapshot_finds_child_with_identity() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30; :", "marker-arg"])
    try:
        time.sleep(0.1)
        recs = snapshot("host-u", "0123456789abcdef", os.getpid())
        by_pid = {r["pid"]: r for r in recs}
        assert os.getpid() not in by_pid
        r = by_pid[child.pid]
        assert r["kind"] == "proc_snapshot" and r["seq"] == 0
        assert r["ppid"] == os.getpid() and r["comm"] == "sh"
        assert r["payload"]["argv"] == ["sh", "-c", "sleep 30; :", "marker-arg"]
        assert r["payload"]["exe"] == os.path.realpath("/bin/sh")
        assert r["exec_id"] == exec_id("host-u", "0123456789abcdef", child.pid,
                                       start_ticks_of_pid(child.pid))
        assert r["parent_exec_id"] == exec_id("host-u", "0123456789abcdef", os.getpid(),
                                              start_ticks_of_pid(os.getpid()))
        assert r["uid"] == os.getuid() and r["gid"] == os.getgid()
        assert r["ns"]["mnt"] == os.stat("/proc/self/ns/mnt").st_ino
        assert r["cgroup_id"] == cgroup_id(pid_cgroup_path(child.pid))
        assert abs(r["payload"]["start_time_ns"] - time.time_ns()) < 5_000_000_000
        codec = AvroCodec()
        decoded = codec.decode(codec.encode("raw_event", r), expect="raw_event")
        assert decoded["payload"]["argv"][-1] == "marker-arg"
    finally:
        child.kill()
        child.wait()


def test_argv_is_capped() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30; :", "y" * 5000])
    try:
        time.sleep(0.1)
        r = next(r for r in snapshot("h", "b" * 16, os.getpid(), max_argv_bytes=100)
                 if r["pid"] == child.pid)
        assert sum(len(a) + 1 for a in r["payload"]["argv"]) <= 101
    finally:
        child.kill()
        child.wait()


def test_proc_cgroup_hybrid_and_v1_only() -> None:
    cid = "13e834b1e4ab4f5728c2c9ba1c95d5b80d190104287543b3d6936d61c83a0f27"
    hybrid = (f"9:name=systemd:/libpod_parent/libpod-{cid}\n4:memory:/libpod_parent/libpod-{cid}\n"
              f"0::/libpod_parent/libpod-{cid}\n")
    assert proc_cgroup_v2_path(hybrid) == f"/libpod_parent/libpod-{cid}"
    assert proc_cgroup_v2_path("0::/\n") == "/"
    assert proc_cgroup_v2_path("4:memory:/docker/x\n") is None
