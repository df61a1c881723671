"""Learn through the whole pipeline, then enforce: the real producer (eBPF) ->
raw.syscalls + containers -> the enrich worker -> the seccomp worker ->
``eunomia seccomp export`` -> ``podman run --security-opt seccomp=FILE``.

The busybox image gets a private tag per test run, so containers of other tests
running at the same time on this host (same base image) do not join its profile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.commands.seccomp import read_profiles
from eunomia.config import Settings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from tests.requirements import require_bpf, require_podman
from tests.support.kafka_io import read_topic
from tests.support.podman import BUSYBOX_IMAGE, WORKLOAD, default_allowed, podman
from tests.support.ports import free_port_block
from tests.support.wait import wait_for
from tests.support.workers import eunomia_env, start_worker, stop

RUNC_SETUP = {"mount", "umount2", "pivot_root", "unshare", "sethostname", "keyctl", "mknodat",
              "symlinkat", "seccomp"}

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.podman, pytest.mark.root]
LEARN_RUNS = 5


@pytest.fixture
def pipeline(settings: Settings, podman_socket: str, tmp_path: Path) -> Iterator[None]:
    require_bpf()
    require_podman()
    create_topics(settings)
    port = free_port_block()
    env = {**eunomia_env(settings), "EUNOMIA_METRICS_PORT": str(port),
           "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool"), "DOCKER_HOST": podman_socket}
    log = open(tmp_path / "producer.log", "wb")  # noqa: SIM115 - closed below
    producer = subprocess.Popen([sys.executable, "-m", "eunomia", "producer", "--probes", "syscalls"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    workers = [start_worker(settings, "enrich", "--grace", "2"),
               start_worker(settings, "seccomp", "--debounce", "2", "--max-wait", "30",
                            "--learn-period", "0", "--learn-containers", str(LEARN_RUNS))]
    try:
        assert wait_ready(port, timeout=120, alive=lambda: producer.poll() is None), \
            "producer died or not ready in 120 s: " + (tmp_path / "producer.log").read_text()[-3000:]
        yield
    finally:
        for w in workers:
            stop(w)
        stop(producer)
        log.close()


def test_learn_through_pipeline_then_enforce(pipeline: None, settings: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    image = f"localhost/eunomia-seccomp-{tag}:latest"
    assert podman("tag", BUSYBOX_IMAGE, image).returncode == 0
    names = []
    try:
        outputs = []
        for i in range(LEARN_RUNS):
            names.append(f"scp-learn{i}-{tag}")
            run = podman("run", "--name", names[-1], image, "/bin/sh", "-c", WORKLOAD)
            assert run.returncode == 0, run.stderr
            outputs.append(run.stdout)

        def settled() -> dict | None:
            rec = read_profiles(settings).get(image)
            need = {"bind", "listen", "connect", "execve"}
            if rec is None or not need <= {s["name"] for s in rec["syscalls"]}:
                return None
            return rec if time.time_ns() - rec["ts_ns"] > 8 * 10**9 else None  # no newer version for 8 s

        try:
            rec = wait_for(settled, "a settled profile learned through the pipeline", timeout=240)
        except BaseException:
            got = read_profiles(settings)
            print({k: (v["version"], len(v["syscalls"]), v["ts_ns"]) for k, v in got.items()})
            raise
        learned = {s["name"] for s in rec["syscalls"]}
        assert "mkdir" not in learned
        # runc's own set-up calls are not the workload's, which never mounts. Known gap
        # (issue 21): mount and umount2 are sometimes learned all the same (one CI run in
        # two here), made by runc's init while its name is still "exe", before it names
        # itself "runc:[...]"; the other set-up primitives never are.
        assert not learned & (RUNC_SETUP - {"mount", "umount2"}), learned & RUNC_SETUP
        out = tmp_path / "profile.json"
        subprocess.run([sys.executable, "-m", "eunomia", "seccomp", "export", image, "--out", str(out)],
                       env=eunomia_env(settings), check=True, timeout=60)
        allowed = json.loads(out.read_text())["syscalls"][0]["names"]
        print(f"\npipeline-learned profile v{rec['version']}: {len(allowed)} allowed syscalls "
              f"({len(learned)} observed); podman default: {default_allowed()}")
        assert len(allowed) * 3 < default_allowed()

        names.append(f"scp-enf-{tag}")
        enforced = podman("run", "--name", names[-1], "--security-opt", f"seccomp={out}", image,
                          "/bin/sh", "-c", WORKLOAD)
        assert enforced.returncode == 0, enforced.stderr
        assert enforced.stdout == outputs[0]
        names.append(f"scp-mkdir-{tag}")
        denied = podman("run", "--name", names[-1], "--security-opt", f"seccomp={out}", image,
                        "/bin/mkdir", "/tmp/new")
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
        # with the capability an escape needs, the learned profile still denies it
        names.append(f"scp-unshare-{tag}")
        unshare = podman("run", "--name", names[-1], "--cap-add", "SYS_ADMIN", "--security-opt",
                         f"seccomp={out}", image, "/bin/unshare", "-m", "true")
        assert unshare.returncode != 0 and "Operation not permitted" in unshare.stderr, unshare

        # the same image making mkdir without enforcement: the worker raises the alert
        # (it lives 2 s: the producer must see the container to name its image)
        names.append(f"scp-rogue-{tag}")
        rogue = podman("run", "--name", names[-1], image, "/bin/sh", "-c", "sleep 2; mkdir /tmp/new")
        assert rogue.returncode == 0, rogue.stderr
        alerts = read_topic(settings, "alerts", "alert", timeout=120, until=lambda got: any(
            a["image_name"] == image and "mkdir" in a["fields"]["syscalls"] for a in got))
        assert any(a["rule_id"] == "seccomp-violation" and "mkdir" in a["fields"]["syscalls"]
                   for a in alerts), alerts
        # learned from LEARN_RUNS containers, the set is frozen: the violation is not learned
        time.sleep(5)
        assert "mkdir" not in {s["name"] for s in read_profiles(settings)[image]["syscalls"]}
    finally:
        for n in names:
            podman("rm", "-f", n)
        podman("rmi", image)
