"""The producer's expected failures, each against the real thing that is
missing: one line naming the cause and the way out, exit 1, no traceback; and
the two conditions it survives (no broker, no container API) said once while
it keeps running.

Missing tracefs and missing kernel headers are made in a private mount
namespace (``unshare -m``), so the host's mounts stay untouched.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.requirements import require, require_bpf
from tests.support.ports import free_port_block

EUNOMIA = [sys.executable, "-m", "eunomia", "producer"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool"),
            "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port_block()}",
            "EUNOMIA_TOPICS__PREFIX": "t-errors.", "EUNOMIA_METRICS_PORT": "0", **extra}


def _one_line_failure(cmd: list[str], env: dict[str, str]) -> str:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_without_capabilities_it_names_the_ones_it_needs(tmp_path: Path) -> None:
    require_bpf()
    require(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
    # still uid 0, but with an empty capability set: what a container without
    # CAP_BPF/CAP_PERFMON (or a plain user) gets
    cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *EUNOMIA]
    line = _one_line_failure(cmd, _env(tmp_path))
    assert "CAP_BPF" in line and "CAP_PERFMON" in line


def test_without_tracefs_it_says_how_to_mount_it(tmp_path: Path) -> None:
    require_bpf()
    script = ("for m in /sys/kernel/debug/tracing /sys/kernel/tracing; do "
              "umount -l $m 2>/dev/null; done; exec \"$@\"")
    line = _one_line_failure(["unshare", "-m", "sh", "-c", script, "sh", *EUNOMIA], _env(tmp_path))
    assert "tracefs is not mounted" in line and "mount -t tracefs" in line


def test_without_kernel_headers_it_says_how_to_get_them(tmp_path: Path) -> None:
    require_bpf()
    empty = tmp_path / "no-modules"
    empty.mkdir()
    script = f"mount --bind {empty} /lib/modules/{platform.release()} && exec \"$@\""
    line = _one_line_failure(["unshare", "-m", "sh", "-c", script, "sh", *EUNOMIA], _env(tmp_path))
    assert "kernel headers" in line and platform.release() in line and "setup.sh" in line


def test_without_broker_or_container_api_it_keeps_running_and_says_so_once(tmp_path: Path) -> None:
    """No broker: events go to the spool; no runtime API: cgroup paths only."""
    require_bpf()
    env = _env(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/no-such.sock")
    proc = subprocess.Popen([*EUNOMIA, "--probes", "process"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        spool = tmp_path / "spool"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            subprocess.run(["true"])  # an exec event to publish
            if any(p.stat().st_size for p in spool.rglob("*") if p.is_file()):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the producer exited without a broker"
        time.sleep(3)  # a few more intervals: warnings must not repeat
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert any(p.stat().st_size for p in spool.rglob("*") if p.is_file()), "nothing was spooled"
    assert err.count("no container runtime API") == 1, err
    assert err.count("Kafka broker unreachable") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("bad", ["process,nosuch", "shell"])
def test_an_unknown_probe_group_is_one_line(tmp_path: Path, bad: str) -> None:
    line = _one_line_failure([*EUNOMIA, "--probes", bad], _env(tmp_path))
    assert "unknown probe group" in line
