"""The producer without full root. As uid 0 with a capability set of only
CAP_BPF and CAP_PERFMON it loads every probe group and publishes; as uid 65534
(nobody) it needs CAP_DAC_READ_SEARCH too (tracefs is root-only), and without
it says so in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from tests.requirements import require, require_bpf
from tests.support.kafka_io import read_topic

CAPS = "+bpf,+perfmon,+dac_read_search"


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="eunomia-nobody-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _setpriv(caps: str, nobody: bool = True) -> list[str]:
    user = ["--reuid=65534", "--regid=65534", "--clear-groups"] if nobody else []
    spec = f"-all,{caps}" if caps else "-all"
    return ["setpriv", *user, f"--inh-caps={spec}", f"--ambient-caps={spec}", f"--bounding-set={spec}",
            "--"]


def _nobody_can_run_the_checkout(d: Path) -> None:
    """A checkout under a root-only directory cannot run as nobody at all."""
    res = subprocess.run([*_setpriv(""), sys.executable, "-c", "import eunomia.producer.agent"],
                         cwd=d, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        pytest.skip(f"uid 65534 cannot read this checkout or venv: {res.stderr.splitlines()[-1:]}")


def _env(settings: Settings, d: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(d),
            "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix, "EUNOMIA_PRODUCER__SPOOL_DIR": str(d / "spool"),
            "EUNOMIA_PRODUCER__CONTAINERS": "false", "EUNOMIA_METRICS_PORT": "0"}


@pytest.mark.parametrize("user", ["root-without-caps", "nobody"])
def test_capabilities_are_enough(settings: Settings, nobody_dir: Path, user: str) -> None:
    require_bpf()
    require(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
    nobody = user == "nobody"
    if nobody:
        _nobody_can_run_the_checkout(nobody_dir)
    create_topics(settings)
    log = open(nobody_dir / "producer.log", "wb")  # noqa: SIM115 - closed below
    caps = CAPS if nobody else "+bpf,+perfmon"
    proc = subprocess.Popen([*_setpriv(caps, nobody), sys.executable, "-m", "eunomia", "producer",
                             "--probes", "process"], env=_env(settings, nobody_dir), cwd=nobody_dir,
                            stdout=log, stderr=subprocess.STDOUT)
    marker = f"caps-{os.getpid()}-{time.monotonic_ns()}"
    try:
        def seen(evs: list[dict]) -> bool:
            if proc.poll() is not None:
                return True
            subprocess.run(["bash", "-c", f"exec -a {marker} true"])
            return any(e["kind"] == "exec" and marker in e["payload"]["argv"] for e in evs)

        events = read_topic(settings, "raw.events", "raw_event", until=seen, timeout=150)
        assert proc.poll() is None, (nobody_dir / "producer.log").read_text()[-3000:]
        assert any(e["kind"] == "exec" and marker in e["payload"]["argv"] for e in events)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert ("Uid:\t65534" if nobody else "Uid:\t0") in status
        eff = int(next(ln for ln in status.splitlines() if ln.startswith("CapEff:")).split()[1], 16)
        assert eff & ~((1 << 39) | (1 << 38) | (1 << 2)) == 0, hex(eff)  # BPF, PERFMON, DAC_READ_SEARCH
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_without_dac_read_search_it_names_the_capability(settings: Settings, nobody_dir: Path) -> None:
    require_bpf()
    require(shutil.which("setpriv") is not None, "needs setpriv (util-linux)")
    _nobody_can_run_the_checkout(nobody_dir)
    res = subprocess.run([*_setpriv("+bpf,+perfmon"), sys.executable, "-m", "eunomia", "producer"],
                         env=_env(settings, nobody_dir), cwd=nobody_dir, capture_output=True, text=True,
                         timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "CAP_DAC_READ_SEARCH" in lines[0]
