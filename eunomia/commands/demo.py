"""`eunomia demo` (the README's `make demo`): the main job end to end on this host.

Starts `eunomia up` in the background, runs a benign workload and a scripted
attack in real podman containers, prints the alerts the pipeline raised and the
seccomp profile it learned for the image, then stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eunomia.config import Settings
from eunomia.errors import EunomiaError

__all__ = ["ATTACK_SCRIPT", "BENIGN_ARGV", "IMAGE", "run_demo"]

IMAGE = "localhost/eunomia-busybox:latest"
BENIGN_ARGV = ["/bin/ls", "-l", "/etc"]
# Each line is one technique the default rule pack covers.
ATTACK_SCRIPT = """
id; uname -a; hostname; whoami                   # discovery burst
cat /etc/shadow > /dev/null                      # credential access
echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd      # write below /etc
for p in $(seq 20 45); do nc -w 1 127.0.0.1 $p < /dev/null 2>/dev/null; done   # port scan
unshare -U true 2>/dev/null                      # namespace change
wget -q -T 1 -O /tmp/x http://127.0.0.1:1/ 2>/dev/null   # network tool
true
"""


def _podman(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


def run_demo(settings: Settings, *, wait_alerts: float = 90.0) -> int:
    console = Console()
    if os.geteuid() != 0:
        raise EunomiaError("the demo loads eBPF probes and runs podman: run it as root")
    if _podman(["image", "exists", IMAGE]).returncode != 0:
        raise EunomiaError(f"image {IMAGE} missing: run deploy/host/setup.sh (make setup)")
    ready = Path(tempfile.mkdtemp()) / "ready"
    console.rule("1. starting the pipeline (eunomia up)")
    up = subprocess.Popen([sys.executable, "-m", "eunomia", "up", "--no-live", "--ready-file", str(ready)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    lines: list[str] = []

    def pump() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            console.print(f"  [dim]up |[/] {escape(line.rstrip())}", highlight=False)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            if up.poll() is not None:
                raise EunomiaError("eunomia up exited before it was ready (see its output above)")
            if time.monotonic() > deadline:
                raise EunomiaError("eunomia up was not ready within 300 s")
            time.sleep(0.5)
        console.rule("2. benign workload")
        res = _podman(["run", "--rm", "--name", "eunomia-demo-benign", IMAGE, *BENIGN_ARGV])
        console.print(f"benign container exited {res.returncode}")
        console.rule("3. scripted attack")
        res = _podman(["run", "--rm", "--name", "eunomia-demo-attack", IMAGE, "sh", "-c", ATTACK_SCRIPT])
        console.print(f"attack container exited {res.returncode}")
        console.rule("4. alerts")
        alerts = _collect_alerts(settings, wait_alerts)
        table = Table("level", "rule", "container", "message")
        for a in alerts:
            table.add_row(a["level"], f"{a['rule_id']} {a['rule_name']}",
                          a.get("container_name") or a.get("container_id") or "-", a["message"][:90])
        console.print(table)
        console.rule("5. learned seccomp profile")
        _show_profile(settings, console)
        attack = [a for a in alerts if a.get("container_name") == "eunomia-demo-attack"]
        benign = [a for a in alerts if a.get("container_name") == "eunomia-demo-benign"]
        console.print(f"{len(attack)} alerts for the attack, {len(benign)} for the benign workload")
        return 0 if attack and not benign else 1
    finally:
        console.rule("6. stopping")
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            try:
                up.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
        _podman(["rm", "-f", "eunomia-demo-benign", "eunomia-demo-attack"])


def _collect_alerts(settings: Settings, wait: float) -> list[dict]:
    """Alerts until the attack's have arrived and none came for a few seconds."""
    from eunomia.commands.alerts_tail import tail_alerts

    lk = settings.local_kafka
    s = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{lk.port}"})})
    deadline = time.monotonic() + wait
    seen: dict[str, dict] = {}
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        before = len(seen)
        for a in tail_alerts(s, follow=False):
            if "alert_id" in a:
                seen[a["alert_id"]] = a
        if len(seen) != before:
            quiet_since = time.monotonic()
        has_attack = any(a.get("container_name") == "eunomia-demo-attack" for a in seen.values())
        if has_attack and time.monotonic() - quiet_since > 15:
            break
        time.sleep(2)
    return sorted(seen.values(), key=lambda a: a["first_seen_ns"])


def _show_profile(settings: Settings, console: Console) -> None:
    proc = subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "export", IMAGE],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS":
                               f"127.0.0.1:{settings.local_kafka.port}"})
    console.print(proc.stdout[:4000] if proc.returncode == 0 else
                  f"no profile exported: {proc.stderr.strip()[:300]}", markup=False, highlight=False)
