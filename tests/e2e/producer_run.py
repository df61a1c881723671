"""The real producer as the e2e tests run it: a subprocess against the test's
broker, its producer options in a YAML file (EUNOMIA_CONFIG) a test may rewrite
before a SIGHUP, ready once /readyz answers, stopped and checked at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from eunomia.config import Settings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from tests.requirements import require_bpf, require_root
from tests.support.ports import free_port_block
from tests.support.workers import stop


@contextmanager
def running_producer(
    settings: Settings, tmp_path: Path, config: dict[str, Any], docker_host: str | None = None
) -> Iterator[tuple[subprocess.Popen, Path, int]]:
    """The producer as tests/e2e/test_producer_capture.py runs it, its producer
    options in a YAML file (EUNOMIA_CONFIG) that a test may rewrite before a SIGHUP;
    yields (process, config file, metrics port) once /readyz answers."""
    require_root()
    require_bpf()
    create_topics(settings)
    port = free_port_block()
    cfg = tmp_path / "eunomia.yaml"
    cfg.write_text(yaml.safe_dump({"producer": {**config, "spool_dir": str(tmp_path / "spool")}}))
    env = {
        **os.environ,
        "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix,
        "EUNOMIA_METRICS_PORT": str(port),
        "EUNOMIA_CONFIG": str(cfg),
    }
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    logf = tmp_path / "producer.log"
    log = logf.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eunomia", "producer"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert wait_ready(port, timeout=120, alive=lambda: proc.poll() is None), \
            "producer died or not ready in 120 s: " + logf.read_text()[-3000:]
        yield proc, cfg, port
    finally:
        stop(proc, timeout=60)
        log.close()
    assert proc.returncode == 0, logf.read_text()[-3000:]
