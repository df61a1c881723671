"""`eunomia kafka start|status|stop` as a user runs them: real JVM processes,
and nothing left behind afterwards (no process, no pid file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests.requirements import require
from tests.support.ports import free_port_block


def _eunomia(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eunomia", *args], env=env, text=True,
                          capture_output=True, timeout=180)


def _kafka_jvms(data_dir: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "kafka.Kafka" in cmd and str(data_dir) in cmd:
            out.append(p)
    return out


def test_start_status_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    import shutil

    require(shutil.which("java") is not None, "needs Java 17")
    port = free_port_block()
    env = {**os.environ, "EUNOMIA_LOCAL_KAFKA__DATA_DIR": str(tmp_path),
           "EUNOMIA_LOCAL_KAFKA__HEAP": "256m"}
    start = _eunomia(["kafka", "start", "--port", str(port)], env)
    assert start.returncode == 0, start.stderr
    assert f"Kafka ready at 127.0.0.1:{port}" in start.stdout
    try:
        status = _eunomia(["kafka", "status", "--port", str(port)], env)
        assert status.returncode == 0
        assert "running" in status.stdout
        assert len(_kafka_jvms(tmp_path)) == 1
        again = _eunomia(["kafka", "start", "--port", str(port)], env)  # already running: no-op
        assert again.returncode == 0
        assert len(_kafka_jvms(tmp_path)) == 1
    finally:
        stop = _eunomia(["kafka", "stop", "--port", str(port)], env)
    assert stop.returncode == 0, stop.stderr
    assert _kafka_jvms(tmp_path) == []
    assert not list(tmp_path.rglob("kafka.pid"))
    status = _eunomia(["kafka", "status", "--port", str(port)], env)
    assert status.returncode == 1
    assert "stopped" in status.stdout


def test_stale_pid_file_does_not_block_start(tmp_path: Path) -> None:
    """A pid file left by a crashed broker names a pid that is not Kafka: status
    says stopped and removes it."""
    from eunomia.config import LocalKafkaSettings
    from eunomia.kafka.local_broker import LocalKafka

    s = LocalKafkaSettings()
    kafka = LocalKafka(tmp_path, s.cache_dir, port=free_port_block())
    kafka.node_dir(1).mkdir(parents=True)
    (kafka.node_dir(1) / "kafka.pid").write_text(str(os.getpid()))
    assert [n.running for n in kafka.status()] == [False]
    assert not (kafka.node_dir(1) / "kafka.pid").exists()


def test_broker_unreachable_is_one_line(tmp_path: Path) -> None:
    port = free_port_block()
    env = {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    # librdkafka's list_topics timeout bounds this; keep it short via config
    proc = subprocess.run([sys.executable, "-m", "eunomia", "topics", "create", "--timeout", "3"],
                          env=env, text=True, capture_output=True, timeout=60)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: no Kafka broker at 127.0.0.1:{port}")
    assert "Traceback" not in proc.stderr
