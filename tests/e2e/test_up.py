"""`eunomia up` as a user runs it: the whole pipeline on this host (real
producer, real workers, real broker, real podman), an attack in a container
raises alerts on the alerts topic, and SIGINT leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from eunomia.commands.alerts_tail import tail_alerts
from eunomia.config import Settings
from tests.requirements import require_bpf, require_podman
from tests.support.podman import BUSYBOX_IMAGE

ATTACK = "sleep 2; cat /etc/shadow > /dev/null; echo x >> /etc/passwd; sleep 1"


def test_up_raises_alerts_for_an_attack_and_stops_cleanly(settings: Settings, tmp_path: Path) -> None:
    require_bpf()
    require_podman()
    ready = tmp_path / "ready"
    env = {**os.environ, "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix,
           "EUNOMIA_TOPICS__PARTITIONS": "3", "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "EUNOMIA_LOCAL_KAFKA__CACHE_DIR":
           str(Path.home() / ".cache" / "eunomia" / "kafka")}
    env.pop("DOCKER_HOST", None)
    with open(tmp_path / "up.log", "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "eunomia", "up", "--bootstrap",
                               settings.kafka.bootstrap_servers, "--no-live", "--ready-file", str(ready)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    name = f"eunomia-up-{uuid.uuid4().hex[:6]}"
    try:
        deadline = time.monotonic() + 600  # up restarts a worker that hangs at start-up
        while not ready.exists():
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "eunomia up not ready in 600 s"
            time.sleep(0.5)
        children = {p.pid for p in psutil.Process(up.pid).children(recursive=True)}
        assert len(children) >= 5  # podman API, producer, four workers
        run = subprocess.run(["podman", "run", "--rm", "--name", name, BUSYBOX_IMAGE, "sh", "-c", ATTACK],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        found: dict[str, dict] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not {"EUN-1003", "EUN-1004"} <= found.keys():
            for a in tail_alerts(settings, follow=False):
                if a.get("container_name") == name:
                    found[a["rule_id"]] = a
            time.sleep(2)
        assert {"EUN-1003", "EUN-1004"} <= found.keys(), sorted(found)
        assert found["EUN-1003"]["image_name"].startswith("localhost/eunomia-busybox")
    finally:
        os.kill(up.pid, signal.SIGINT)
        try:
            code = up.wait(120)
        finally:
            if up.poll() is None:
                up.kill()
            subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=60)
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    alive = [pid for pid in children if psutil.pid_exists(pid) and
             psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left behind: {[psutil.Process(p).cmdline() for p in alive]}"
