"""``eunomia worker ...`` as real child processes against a test's broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eunomia.config import Settings

__all__ = ["eunomia_env", "start_worker", "stop", "workers"]


def eunomia_env(settings: Settings) -> dict[str, str]:
    """The environment that points an ``eunomia`` subprocess at ``settings``' broker,
    topics, record limit, schema registry and metrics port (the last two when set)."""
    registry, port = settings.kafka.schema_registry_url, settings.metrics_port
    return {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "EUNOMIA_KAFKA__MAX_MESSAGE_BYTES": str(settings.kafka.max_message_bytes),
            **({"EUNOMIA_KAFKA__SCHEMA_REGISTRY_URL": registry} if registry else {}),
            **({"EUNOMIA_METRICS_PORT": str(port)} if port else {}),
            "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix,
            "EUNOMIA_TOPICS__PARTITIONS": str(settings.topics.partitions),
            # a killed worker's partitions move on after 10 s, not Kafka's 45
            "EUNOMIA_KAFKA__GROUP_SESSION_TIMEOUT_S": "10",
            "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def start_worker(settings: Settings, name: str, *extra: str,
                 workdir: Path | None = None) -> subprocess.Popen[bytes]:
    """``eunomia worker <name> <extra>`` in its own session; with ``workdir`` it runs
    there and logs to a file in it, else its output goes to the test's."""
    cmd = [sys.executable, "-m", "eunomia", "worker", name, *extra]
    if workdir is None:
        return subprocess.Popen(cmd, env=eunomia_env(settings), start_new_session=True)
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / f"{name}-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen(cmd, cwd=workdir, env=eunomia_env(settings), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signal ``proc`` (SIGTERM: a clean shutdown) and wait; kill it after ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def workers(settings: Settings, name: str, workdir: Path, n: int = 1
            ) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` workers of one kind, logging in ``workdir``, stopped on exit."""
    procs = [start_worker(settings, name, workdir=workdir) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            stop(p)
