"""Learn then enforce with real podman, the real kernel and the real broker.

LEARNING SOURCE (read this): written before the producer had an entry point
(``test_seccomp_pipeline.py`` now learns through the real producer), and kept
because its counter sees each syscall's own comm, which the producer's
per-interval records cannot: that is what checks, on its own, that the
workload's processes plus ``RUNC_AFTER_SECCOMP`` suffice. A test-local BPF
program on the same ``raw_syscalls:sys_enter`` tracepoint counts syscalls per
(cgroup, pid) for every process of the container's cgroup (runc's init
included, as the producer sees it), and the test publishes what a producer
would: ``syscall_counts`` records on ``raw.syscalls`` and the container's record
on ``containers``. From there everything is the real thing: the enrich worker
and the seccomp worker (subprocesses), the compacted profiles topic, the
``eunomia seccomp export`` CLI, and ``podman run --security-opt seccomp=FILE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from eunomia.commands.seccomp import read_profiles
from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.processors.seccomp.profile import RUNC_AFTER_SECCOMP, render_oci
from eunomia.schemas import AvroCodec
from eunomia.syscall_names import resolve
from tests.requirements import require_bpf, require_podman
from tests.support.kafka_io import read_topic
from tests.support.podman import BUSYBOX_IMAGE, WORKLOAD, default_allowed, podman
from tests.support.wait import wait_for
from tests.support.workers import eunomia_env, start_worker, stop

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.podman, pytest.mark.root]

LEARN_RUNS = 5
HIERARCHIES = Path("/sys/fs/cgroup")
BPF_TEXT = r"""
struct key_t { u64 cg; u32 pid; u32 nr; char comm[16]; };
BPF_HASH(counts, struct key_t, u64, 16384);
TRACEPOINT_PROBE(raw_syscalls, sys_enter) {
    if (bpf_get_current_ancestor_cgroup_id(1) != PARENT_CG)
        return 0;
    struct key_t k = {};
    k.cg = bpf_get_current_cgroup_id();
    k.pid = bpf_get_current_pid_tgid() >> 32;
    k.nr = args->id;
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    counts.increment(k);
    return 0;
}
"""


Counts = dict[tuple[int, int, str], dict[int, int]]  # (cgroup id, pid, comm) -> nr -> count


class CgroupCounter:
    """Syscall counts of every process under one cgroup-v2 parent, by (cgroup, pid, comm)."""

    def __init__(self, parent_id: int) -> None:
        from bcc import BPF

        self.bpf = BPF(text=BPF_TEXT.encode(), cflags=[f"-DPARENT_CG={parent_id}ULL"])

    def drain(self) -> Counts:
        out: Counts = defaultdict(dict)
        table = self.bpf[b"counts"]
        for k, v in table.items():
            out[(k.cg, k.pid, k.comm.decode(errors="replace"))][k.nr] = v.value
        table.clear()
        return out

    def close(self) -> None:
        self.bpf.cleanup()


@pytest.fixture
def cgroup_parent() -> Iterator[tuple[str, int]]:
    """A fresh cgroup parent for the test's containers; its v2 id filters the counter."""
    require_podman()
    require_bpf()
    name = f"eunomia-seccomp-{uuid.uuid4().hex[:8]}"
    unified = HIERARCHIES / "unified" if (HIERARCHIES / "unified").is_dir() else HIERARCHIES
    (unified / name).mkdir()
    try:
        yield f"/{name}", os.stat(unified / name).st_ino
    finally:
        for d in HIERARCHIES.glob(f"*/{name}"):
            try:
                d.rmdir()
            except OSError:
                pass
        if (HIERARCHIES / name).is_dir():
            (HIERARCHIES / name).rmdir()


def run_container(name: str, parent: str, cmd: list[str], *opts: str,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return podman("run", "--name", name, "--cgroup-parent", parent, *opts, BUSYBOX_IMAGE, *cmd,
                      timeout=timeout)
    finally:
        podman("rm", "-f", name)


class FakeProducer:
    """Publishes what the producer would for the counted containers."""

    def __init__(self, settings: Settings, host: str) -> None:
        self.settings, self.host, self.seq = settings, host, 0
        self.codec = AvroCodec()
        self.kafka = Producer(settings.kafka.librdkafka())

    def publish(self, counts: Counts, container: str) -> None:
        cgroups = {cg for cg, _, _ in counts}
        now = time.time_ns()
        for cg in sorted(cgroups):
            rec = {"host_id": self.host, "ts_ns": now, "container_id": container, "name": container,
                   "image": BUSYBOX_IMAGE, "image_id": None, "runtime": "podman", "cgroup_id": cg}
            self.kafka.produce(self.settings.topic("containers"), self.codec.encode("container", rec),
                               f"{self.host}/{cg}".encode())
        self.kafka.flush(30)
        for (cg, pid, comm), nrs in sorted(counts.items()):
            self.seq += 1
            rec = {"host_id": self.host, "boot_id": "boot", "seq": self.seq, "ts_ns": time.time_ns(),
                   "interval_ns": 10**9, "pid": pid, "comm": comm, "cgroup_id": cg,
                   "exec_id": f"{self.host}:boot:{pid}:0", "arch": os.uname().machine,
                   "counts": [{"nr": nr, "count": c} for nr, c in sorted(nrs.items())]}
            self.kafka.produce(self.settings.topic("raw.syscalls"),
                               self.codec.encode("syscall_counts", rec), self.host.encode())
        self.kafka.flush(30)


def names_of(counts: Counts, keep: Any = lambda comm: True) -> set[str]:
    arch = os.uname().machine
    return {n for (_, _, comm), nrs in counts.items() if keep(comm) for nr in nrs
            if (n := resolve(arch, nr)) is not None}


def test_learn_from_cgroup_counter_then_enforce(settings: Settings, cgroup_parent, tmp_path: Path) -> None:
    parent, parent_id = cgroup_parent
    create_topics(settings)
    counter = CgroupCounter(parent_id)
    producer = FakeProducer(settings, "e2e-host")
    workers = [start_worker(settings, "enrich", "--grace", "1"),
               start_worker(settings, "seccomp", "--debounce", "1", "--max-wait", "5",
                            "--learn-period", "0", "--learn-containers", str(LEARN_RUNS))]
    tag = uuid.uuid4().hex[:8]
    try:
        # Several containers of the image: some syscalls depend on timing (wget
        # polls only when a non-blocking read finds no data: about 2 runs in 3
        # here), so the profile is the union of all of them, as in production.
        counts: Counts = {}
        for i in range(LEARN_RUNS):
            learn = run_container(f"sc-learn{i}-{tag}", parent, ["/bin/sh", "-c", WORKLOAD])
            assert learn.returncode == 0, learn.stderr
            got = counter.drain()
            counts.update(got)
            producer.publish(got, f"sc-learn{i}-{tag}")
        learned = names_of(counts)
        assert "mkdir" not in learned and {"bind", "listen", "connect"} <= learned

        def complete() -> dict | None:
            rec = read_profiles(settings).get(BUSYBOX_IMAGE)
            # republished only when the set grows: wait for the set, not the container list
            return rec if rec and {s["name"] for s in rec["syscalls"]} == learned else None

        try:
            rec = wait_for(complete, "the profile learned from every container", timeout=180)
        except BaseException:
            last = read_profiles(settings).get(BUSYBOX_IMAGE)
            got_names = {s["name"] for s in last["syscalls"]} if last else set()
            print(f"last profile: {last and last['version']}, missing {sorted(learned - got_names)}, "
                  f"extra {sorted(got_names - learned)}")
            raise
        out = tmp_path / "profile.json"
        subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "export", BUSYBOX_IMAGE,
                        "--out", str(out)], env=eunomia_env(settings), check=True, timeout=60)
        allowed = json.loads(out.read_text())["syscalls"][0]["names"]
        assert set(allowed) == learned | RUNC_AFTER_SECCOMP
        print(f"\nlearned profile v{rec['version']}: {len(allowed)} allowed syscalls "
              f"({len(learned)} observed + runc baseline); podman default: {default_allowed()}")
        assert len(allowed) * 3 < default_allowed()

        enforced = run_container(f"sc-enf-{tag}", parent, ["/bin/sh", "-c", WORKLOAD],
                                 "--security-opt", f"seccomp={out}", timeout=60)
        assert enforced.returncode == 0, enforced.stderr
        assert enforced.stdout == learn.stdout
        denied = run_container(f"sc-mkdir-{tag}", parent, ["/bin/mkdir", "/tmp/new"],
                               "--security-opt", f"seccomp={out}")
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
        counter.drain()

        # runc's post-seccomp needs, on their own: the workload's processes only
        # (no runc:* comm) + RUNC_AFTER_SECCOMP also runs the workload.
        slim = tmp_path / "slim.json"
        work_only = names_of(counts, lambda comm: not comm.startswith("runc") and comm != "exe")
        slim.write_text(json.dumps(render_oci(sorted(work_only | RUNC_AFTER_SECCOMP), os.uname().machine)))
        again = run_container(f"sc-slim-{tag}", parent, ["/bin/sh", "-c", WORKLOAD],
                              "--security-opt", f"seccomp={slim}")
        assert again.returncode == 0 and again.stdout == learn.stdout, again.stderr
        print(f"workload processes only + runc baseline: {len(work_only | RUNC_AFTER_SECCOMP)} syscalls")
        counter.drain()

        # the same image doing mkdir (no enforcement): the worker raises the alert
        rogue = run_container(f"sc-rogue-{tag}", parent, ["/bin/mkdir", "/tmp/new"])
        assert rogue.returncode == 0, rogue.stderr
        producer.publish(counter.drain(), f"sc-rogue-{tag}")
        alerts = read_topic(settings, "alerts", "alert",
                            until=lambda got: any("mkdir" in a["fields"]["syscalls"] for a in got))
        hits = [a for a in alerts if a["rule_id"] == "seccomp-violation"]
        assert any(a["container_id"] == f"sc-rogue-{tag}" and "mkdir" in a["fields"]["syscalls"]
                   for a in hits), hits
    finally:
        counter.close()
        for w in workers:
            stop(w)
