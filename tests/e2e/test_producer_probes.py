"""Probe selection: a producer started with only the process group attaches
no file, network or syscall-count programs, so opening /etc/shadow or
connecting yields nothing on raw.events or raw.syscalls while execs still do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from eunomia.config import Settings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from tests.requirements import require_bpf
from tests.support.kafka_io import read_topic
from tests.support.ports import free_port_block


def test_only_the_selected_probe_groups_report(settings: Settings, tmp_path: Path) -> None:
    require_bpf()
    create_topics(settings)
    port = free_port_block()
    env = {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix, "EUNOMIA_METRICS_PORT": str(port),
           "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool"), "EUNOMIA_PRODUCER__CONTAINERS": "false",
           "EUNOMIA_PRODUCER__PROC_SNAPSHOT": "false"}
    log = open(tmp_path / "producer.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "eunomia", "producer", "--probes", "process"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_ready(port, timeout=120, alive=lambda: proc.poll() is None), \
            "producer died or not ready in 120 s: " + (tmp_path / "producer.log").read_text()[-3000:]
        marker = f"probe-sel-{os.getpid()}"
        script = (f"cat /etc/shadow > /dev/null; echo x > /tmp/{marker}; "
                  f"exec -a {marker} sleep 0")
        subprocess.run(["bash", "-c", script], check=True)
        with socket.socket() as s:
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", free_port_block()))
            except OSError:
                pass
        events = read_topic(settings, "raw.events", "raw_event", timeout=60, until=lambda evs: any(
            e["kind"] == "exec" and marker in (e["payload"] or {}).get("argv", []) for e in evs))
        assert any(e["kind"] == "exec" and marker in e["payload"]["argv"] for e in events)
        kinds = {e["kind"] for e in events}
        assert kinds <= {"exec", "execveat", "fork", "exit"}, kinds
        time.sleep(2)  # more than one interval: no syscall counts either
        assert read_topic(settings, "raw.syscalls", "syscall_counts", timeout=3,
                          until=lambda rs: bool(rs)) == []
        health = read_topic(settings, "producer.health", "producer_health", timeout=30,
                            until=lambda rs: bool(rs))
        assert health and health[-1]["probes"] == ["process"]
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
