"""Eunomia's producer rows with nothing simulated (real kernel, podman, broker and
enrich worker): signals across containers and siblings and OOM kills come out
enriched, written bytes show on the file's path, and the file groups switch off
and on by SIGHUP without losing other events or seq numbers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from eunomia.config import Settings
from eunomia.schemas import AvroCodec
from tests.e2e.producer_run import running_producer
from tests.requirements import require_podman
from tests.support import kafka_io
from tests.support.podman import BUSYBOX_IMAGE
from tests.support.workers import start_worker, stop

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.root]

ALL_GROUPS = ["process", "file", "network", "priv", "syscalls", "signal", "oom", "fileio"]
GRACE_S = "60"  # as tests/e2e/test_enrich_podman.py: podman's record may lag on a loaded host
codec = AvroCodec()


class Tail:
    """Every message of some topics from the beginning, read on demand."""

    SCHEMAS = {
        "raw.events": "raw_event",
        "raw.syscalls": "syscall_counts",
        "producer.health": "producer_health",
        "enriched.events": "enriched_event",
    }

    def __init__(self, settings: Settings, *topics: str) -> None:
        self.c = Consumer(
            {
                **settings.kafka.librdkafka(),
                "group.id": f"t-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
            }
        )
        self.by_name = {settings.topic(t): t for t in topics}
        parts = []
        for name in self.by_name:
            md = self.c.list_topics(name, timeout=10).topics[name]
            parts += [TopicPartition(name, p, 0) for p in md.partitions]
        self.c.assign(parts)
        self.got: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}

    def until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
            for m in self.c.consume(1000, 0.5):
                if not m.error() and m.value() is not None:
                    t = self.by_name[m.topic()]
                    self.got[t].append(codec.decode(m.value(), self.SCHEMAS[t]))

    def close(self) -> None:
        self.c.close()


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


# -- signals and OOM kills, after enrichment ------------------------------------------

TARGET = "sleep 301; exit 7"  # exits 7 early only if its sleep is killed
SENDER = "for i in $(seq 1 300); do p=$(pidof sleep) && break; sleep 0.1; done; kill -TERM $p"
# the sibling kills only once the child has become "sleep 302" (a kill between the
# fork and the exec would hit a shell that never runs sleep)
SIBLINGS = (
    "sleep 302 & p=$!; "
    "until [ \"$(tr '\\0' ' ' < /proc/$p/cmdline)\" = 'sleep 302 ' ]; do :; done; "
    'sh -c "kill -TERM $p"; wait $p; sleep 303 & q=$!; kill -TERM $q; wait $q; exit 5'
)
HOG = "tail /dev/zero"  # buffers an endless line: grows until the memory limit kills it


def test_signals_and_oom_kill_come_out_enriched_with_their_container(
    settings: Settings, podman_socket: str, tmp_path: Path
) -> None:
    require_podman()
    tag = uuid.uuid4().hex[:6]
    a, b, c, d = (f"eunomia-par-{n}-{tag}" for n in "abcd")
    with running_producer(settings, tmp_path, {"probes": ALL_GROUPS}, podman_socket):
        worker = start_worker(settings, "enrich", "--grace", GRACE_S, workdir=tmp_path / "enrich")
        try:
            run = podman("run", "-d", "--name", a, BUSYBOX_IMAGE, "sh", "-c", TARGET)
            assert run.returncode == 0, run.stderr
            run = podman("run", "--name", b, f"--pid=container:{a}", BUSYBOX_IMAGE, "sh", "-c", SENDER)
            assert run.returncode == 0, run.stderr
            waited = podman("wait", a)
            assert waited.stdout.strip() == "7", (waited.stdout, waited.stderr)
            run = podman("run", "--name", c, BUSYBOX_IMAGE, "sh", "-c", SIBLINGS)
            assert run.returncode == 5, run.stderr
            run = podman(
                "run", "--name", d, "--memory", "32m", "--memory-swap", "32m", BUSYBOX_IMAGE, "sh", "-c", HOG
            )
            assert run.returncode == 137, (run.returncode, run.stderr)

            def of(out: list[Any], name: str) -> list[dict[str, Any]]:
                return [v for _, v, _, _ in out if v["container"]["name"] == name]

            def term(out: list[Any], name: str) -> list[dict[str, Any]]:
                return [
                    v
                    for v in of(out, name)
                    if v["event"]["kind"] == "signal" and v["syscall"]["signal"] == "SIGTERM"
                ]

            def done(out: list[Any]) -> bool:
                return (
                    bool(term(out, b))
                    and any(v["event"]["kind"] == "exec" for v in of(out, a))
                    and any(
                        v["event"]["kind"] == "exit" and v["process"]["exit_code"] == 5 for v in of(out, c)
                    )
                    and any(v["event"]["kind"] == "oom_kill" for v in of(out, d))
                )

            got = kafka_io.consume(settings, "enriched.events", until=done, timeout=240)
        finally:
            stop(worker)
            podman("rm", "-f", "-t", "0", a, b, c, d, timeout=60)
    assert done(got), f"{len(got)} enriched events, kinds by container: " + str(
        {n: sorted({v["event"]["kind"] for v in of(got, n)}) for n in (a, b, c, d)}
    )

    # across containers: B's shell signals A's sleep, by pid namespace sharing
    (sig,) = term(got, b)
    sleeps = [
        v
        for v in of(got, a)
        if v["event"]["kind"] == "exec" and (v["process"]["args"] or [])[:2] == ["sleep", "301"]
    ]
    assert sleeps, [v["process"]["args"] for v in of(got, a)]
    assert sig["syscall"]["target_pid"] == sleeps[0]["process"]["pid"]
    assert sig["syscall"]["target_exec_id"] == sleeps[0]["process"]["exec_id"]
    assert sig["process"]["name"] == "sh" and sig["container"]["metadata_complete"] is True
    assert sig["container"]["image_name"].startswith("localhost/eunomia-busybox")
    assert sig["event"]["outcome"] == "success"

    # inside one container: the sibling's kill is published, the parent's kill of
    # its own child is not (only one SIGTERM although two were sent)
    (sib,) = term(got, c)
    outer = [
        v
        for v in of(got, c)
        if v["event"]["kind"] == "exec" and (v["process"]["args"] or [])[:3] == ["sh", "-c", SIBLINGS]
    ]
    assert outer and sib["process"]["pid"] != outer[0]["process"]["pid"]
    assert sib["process"]["ppid"] == outer[0]["process"]["pid"]
    first_sleep = [
        v
        for v in of(got, c)
        if v["event"]["kind"] == "exec" and (v["process"]["args"] or [])[:2] == ["sleep", "302"]
    ]
    assert first_sleep and sib["syscall"]["target_pid"] == first_sleep[0]["process"]["pid"]

    # the memory limit: the victim is the container's tail, with its memory figures
    ooms = [v for v in of(got, d) if v["event"]["kind"] == "oom_kill"]
    assert len(ooms) == 1, ooms
    oom = ooms[0]
    assert oom["oom"]["victim_name"] == "tail" and oom["process"]["name"] == "tail"
    assert oom["oom"]["victim_pid"] == oom["process"]["pid"]
    assert 16 * 1024 < oom["oom"]["anon_rss_kb"] <= 32 * 1024, oom["oom"]
    assert oom["container"]["metadata_complete"] is True and oom["event"]["category"] == "memory"
    kills = [v for v in of(got, d) if v["event"]["kind"] == "signal" and v["syscall"]["signal"] == "SIGKILL"]
    assert kills and kills[0]["syscall"]["target_pid"] == oom["process"]["pid"], "fatal: always published"


# -- file I/O statistics ----------------------------------------------------------------

N_WRITES, CHUNK = 1000, "0123456789"
WRITER = (
    "BEGIN { for (i = 0; i < "
    + str(N_WRITES)
    + '; i++) printf "%s", "'
    + CHUNK
    + '" > "/eunomia-fio.dat"; fflush(); system("sleep 8") }'
)


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_container_file_writes_show_in_fileio_stats_with_bytes_and_path(
    settings: Settings, podman_socket: str, tmp_path: Path
) -> None:
    require_podman()
    name = f"eunomia-fio-{uuid.uuid4().hex[:6]}"
    n = N_WRITES * len(CHUNK)
    with running_producer(settings, tmp_path, {"probes": ALL_GROUPS}, podman_socket) as (_, _, port):
        tail = Tail(settings, "raw.syscalls", "raw.events")
        try:
            run = podman("run", "--name", name, BUSYBOX_IMAGE, "awk", WRITER)
            assert run.returncode == 0, run.stderr
            cg = 0  # the container's cgroup: that of its awk's exec event

            def awk_exec() -> dict[str, Any] | None:
                return next(
                    (
                        e
                        for e in tail.got["raw.events"]
                        if e["kind"] == "exec" and (e["payload"]["argv"] or [""])[0] == "awk"
                    ),
                    None,
                )

            def stats() -> list[dict[str, Any]]:
                return [
                    f
                    for r in tail.got["raw.syscalls"]
                    if r["cgroup_id"] == cg
                    for f in r["fileio"]
                    if f["path"] == "/eunomia-fio.dat"
                ]

            try:
                tail.until(lambda: awk_exec() is not None, 60, "the container's awk exec on raw.events")
            except AssertionError:
                seen = [
                    (e["kind"], e["comm"], e["payload"].get("argv") if e["payload"] else None)
                    for e in tail.got["raw.events"]
                    if e["comm"] in ("awk", "sh", "exe")
                ]
                raise AssertionError(
                    f"no awk exec among {len(tail.got['raw.events'])}: {seen[:30]}"
                ) from None
            awk = awk_exec()
            assert awk is not None
            cg = awk["cgroup_id"]

            def drained_after_exit() -> bool:
                ex = [
                    e["ts_ns"]
                    for e in tail.got["raw.events"]
                    if e["kind"] == "exit" and e["pid"] == awk["pid"]
                ]
                return bool(ex) and any(r["ts_ns"] > ex[0] for r in tail.got["raw.syscalls"])

            # every interval of the writer's life is out once one was drained after its exit
            tail.until(drained_after_exit, 60, "a raw.syscalls interval drained after the writer exited")
            mine = stats()
            assert sum(f["write_bytes"] for f in mine) == n, mine
            assert sum(f["writes"] for f in mine) == N_WRITES, mine
            assert all(f["path_resolved"] and f["reads"] == 0 for f in mine), mine
            recs = [
                r
                for r in tail.got["raw.syscalls"]
                if r["cgroup_id"] == cg and any(f["path"] == "/eunomia-fio.dat" for f in r["fileio"])
            ]
            # the awk process's records (their comm is the name first seen in the
            # interval: runc's init before it exec'd awk, or awk)
            assert {(r["pid"], r["exec_id"]) for r in recs} == {(awk["pid"], awk["exec_id"])}
            deadline = time.monotonic() + 30
            while _metric(port, "eunomia_observed_files_write_bytes_total") < n:
                assert time.monotonic() < deadline, "files write bytes counter below the workload's"
                time.sleep(0.5)
            assert _metric(port, "eunomia_observed_process_start_total") >= 1
        finally:
            tail.close()
            podman("rm", "-f", "-t", "0", name, timeout=60)


# -- run-time probe control ---------------------------------------------------------------

WORKLOAD = r"""
import os, subprocess, sys, time
d = sys.argv[1]
keep = open(os.path.join(d, "kept.log"), "w", buffering=1)
n, deadline = 0, time.monotonic() + 400
while not os.path.exists(os.path.join(d, "stop")) and time.monotonic() < deadline:
    with open(os.path.join(d, "probe.txt"), "w") as f:
        f.write("x")
    keep.write("tick\n")
    subprocess.run(["/bin/true"])
    n += 1
    time.sleep(0.1)
print(n, flush=True)
"""


def test_file_groups_switch_off_and_on_at_run_time_without_losing_other_events(
    settings: Settings, tmp_path: Path
) -> None:
    d = tempfile.mkdtemp(prefix="eu", dir="/tmp")  # short: path prefixes are at most 64 bytes
    config = {"probes": ALL_GROUPS, "containers": False, "read_prefixes": [d + "/"]}
    with running_producer(settings, tmp_path, config) as (producer, cfg, _):
        tail = Tail(settings, "raw.events", "raw.syscalls", "producer.health")
        work = subprocess.Popen([sys.executable, "-c", WORKLOAD, d], stdout=subprocess.PIPE, text=True)
        try:
            wpid = work.pid
            kept = os.path.join(d, "kept.log")

            def opens(after: int = 0) -> list[dict[str, Any]]:
                return [
                    e
                    for e in tail.got["raw.events"]
                    if e["kind"] == "open"
                    and e["pid"] == wpid
                    and e["payload"]["path"].startswith(d)
                    and e["ts_ns"] > after
                ]

            def fio(after: int = 0) -> list[dict[str, Any]]:
                return [
                    f
                    for r in tail.got["raw.syscalls"]
                    if r["pid"] == wpid and r["ts_ns"] > after
                    for f in r["fileio"]
                ]

            def change(word: str) -> dict[str, Any] | None:
                return next(
                    (h for h in tail.got["producer.health"] if (h["config_change"] or "").find(word) >= 0),
                    None,
                )

            def health_after(ts: int) -> int:
                return sum(1 for h in tail.got["producer.health"] if h["ts_ns"] > ts)

            tail.until(
                lambda: bool(opens()) and any(f["path"] == kept for f in fio()),
                90,
                "the workload's opens and its kept file's I/O",
            )

            cfg.write_text(
                yaml.safe_dump(
                    {
                        "producer": {
                            **config,
                            "spool_dir": str(tmp_path / "spool"),
                            "disabled_probes": ["file", "fileio"],
                        }
                    }
                )
            )
            producer.send_signal(signal.SIGHUP)
            tail.until(lambda: change("disabled: file, fileio") is not None, 60, "the change on health")
            off = change("disabled: file, fileio")
            assert off is not None and "file" not in off["probes"] and "fileio" not in off["probes"]
            assert "process" in off["probes"]
            t_off = off["ts_ns"]
            # three more intervals with the workload running, its execs still arriving
            tail.until(
                lambda: (
                    health_after(t_off) >= 3
                    and any(
                        e["kind"] == "exec" and e["ppid"] == wpid and e["ts_ns"] > t_off
                        for e in tail.got["raw.events"]
                    )
                ),
                60,
                "intervals after the switch",
            )
            assert opens(after=t_off) == [], "file events after the group was switched off"
            assert fio(after=t_off) == [], "file I/O statistics after the group was switched off"

            cfg.write_text(
                yaml.safe_dump(
                    {"producer": {**config, "spool_dir": str(tmp_path / "spool"), "disabled_probes": []}}
                )
            )
            producer.send_signal(signal.SIGHUP)
            tail.until(lambda: change("enabled: file, fileio") is not None, 60, "the change back")
            on = change("enabled: file, fileio")
            assert on is not None and {"file", "fileio"} <= set(on["probes"])
            t_on = on["ts_ns"]
            tail.until(
                lambda: bool(opens(after=t_on)) and any(f["path"] == kept for f in fio(t_on)),
                60,
                "file events back after the switch on",
            )
        finally:
            Path(d, "stop").touch()
            out, _ = work.communicate(timeout=60)
        iterations = int(out.strip())

        def true_execs() -> list[dict[str, Any]]:
            return [
                e
                for e in tail.got["raw.events"]
                if e["kind"] == "exec" and e["ppid"] == wpid and e["payload"]["filename"] == "/bin/true"
            ]

        try:
            tail.until(lambda: len(true_execs()) >= iterations, 60, f"{iterations} execs of /bin/true")
        finally:
            tail.close()
    assert len(true_execs()) == iterations, "an exec was lost or duplicated across the switches"
    seqs = sorted(e["seq"] for e in tail.got["raw.events"])
    assert seqs == list(range(1, seqs[-1] + 1)), "raw.events seq has gaps or duplicates"
    sc = sorted(r["seq"] for r in tail.got["raw.syscalls"])
    assert sc == list(range(1, sc[-1] + 1)), "raw.syscalls seq has gaps or duplicates"
