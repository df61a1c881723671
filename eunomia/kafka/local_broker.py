"""The local Apache Kafka (KRaft) the project runs when no broker is given.

One combined broker+controller on 127.0.0.1, or three of them for fault tests.
Each node has a directory with its properties, data, logs and a pid file;
``status`` trusts a pid file only when that pid is still a ``kafka.Kafka`` JVM,
so a crashed broker never leaves a lock that blocks the next start.

``secure=True`` runs it as production should: SASL_SSL only, the KRaft
authorizer with no access without an ACL, and a SCRAM user per role
(``local_secure``); a secure cluster has its own data directory.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from eunomia.errors import LocalKafkaError
from eunomia.kafka.jars import deploy_dir, ensure_jars
from eunomia.kafka.local_secure import SecureMaterial, ensure_material

__all__ = ["LocalKafka", "NodeStatus"]

CONTROLLER_OFFSET = 100  # controller port = broker port + 100


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    port: int
    pid: int | None
    running: bool


class LocalKafka:
    """A project-managed Kafka cluster of 1 or 3 nodes on loopback."""

    def __init__(self, data_dir: Path, cache_dir: Path, *, port: int = 9092, brokers: int = 1,
                 version: str = "4.4.0", heap: str = "512m",
                 extra_properties: dict[str, str] | None = None, secure: bool = False) -> None:
        if brokers not in (1, 3):
            raise LocalKafkaError(f"--brokers must be 1 or 3, got {brokers}")
        self.data_dir = Path(data_dir) / f"cluster-{port}{'-secure' if secure else ''}"
        self.secure = secure
        self._material: SecureMaterial | None = None
        self.cache_dir = Path(cache_dir)
        self.port = port
        self.brokers = brokers
        self.version = version
        self.heap = heap
        self.extra = extra_properties or {}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + i}" for i in range(self.brokers))

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    @property
    def material(self) -> SecureMaterial:
        """TLS files and SCRAM users of a secure cluster (created on first use)."""
        if not self.secure:
            raise LocalKafkaError("this local Kafka is not secure (start it with --secure)")
        if self._material is None:
            self._material = ensure_material(self.data_dir / "secure", self.bootstrap)
        return self._material

    def client_config(self, user: str | None = None) -> dict[str, object]:
        """confluent-kafka settings to reach the cluster (as ``user``, the admin by default)."""
        if not self.secure:
            return {"bootstrap.servers": self.bootstrap}
        from eunomia.kafka.local_secure import role_user

        return self.material.librdkafka(self.bootstrap, user or role_user("admin"))

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Start every node not running yet and wait until the cluster answers."""
        libs = ensure_jars(self.cache_dir, self.version)
        cluster_id = self._cluster_id()
        for node_id in range(1, self.brokers + 1):
            self.start_node(node_id, libs=libs, cluster_id=cluster_id)
        self.wait_ready(timeout)

    def start_node(self, node_id: int, *, libs: Path | None = None,
                   cluster_id: str | None = None) -> None:
        if self._pid(node_id) is not None:
            return
        libs = libs or ensure_jars(self.cache_dir, self.version)
        cluster_id = cluster_id or self._cluster_id()
        ndir = self.node_dir(node_id)
        (ndir / "logs").mkdir(parents=True, exist_ok=True)
        props = ndir / "server.properties"
        # owner-only: a secure node's properties hold the broker's own password
        fd = os.open(props, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._properties(node_id))
        os.chmod(props, 0o600)
        if not (ndir / "data" / "meta.properties").exists():
            # --cluster-id=ID: a base64 id may start with "-" and read as an option
            users = self.material.format_args() if self.secure else []
            self._java(libs, ndir, ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                    "-c", str(props), "--ignore-formatted", *users], wait=True)
        proc = self._java(libs, ndir, ["kafka.Kafka", str(props)], wait=False)
        (ndir / "kafka.pid").write_text(str(proc.pid))

    def wait_ready(self, timeout: float = 90.0) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({**self.client_config(), "log_level": 0, "logger": _quiet_logger()})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node_id in range(1, self.brokers + 1):
                if self._pid(node_id) is None:
                    raise LocalKafkaError(
                        f"Kafka node {node_id} exited during start-up: {self._log_tail(node_id)}")
            try:
                md = admin.list_topics(timeout=2)
                if len(md.brokers) >= self.brokers:
                    return
            except Exception:
                pass
            time.sleep(0.5)
        raise LocalKafkaError(f"Kafka at {self.bootstrap} not ready after {timeout:.0f}s: "
                              f"{self._log_tail(1)}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once (one by one, the last nodes wait for a
        controller quorum that is already gone), then SIGKILL what remains."""
        procs = []
        for node_id in range(1, self.brokers + 1):
            pid = self._pid(node_id)
            if pid is not None:
                try:
                    proc = psutil.Process(pid)
                    proc.terminate()
                    procs.append(proc)
                except psutil.NoSuchProcess:
                    pass
        _gone, alive = psutil.wait_procs(procs, timeout=timeout)
        for proc in alive:
            proc.kill()
        psutil.wait_procs(alive, timeout=10)
        for node_id in range(1, self.brokers + 1):
            (self.node_dir(node_id) / "kafka.pid").unlink(missing_ok=True)

    def stop_node(self, node_id: int, *, timeout: float = 30.0, kill: bool = False) -> None:
        pid = self._pid(node_id)
        pidfile = self.node_dir(node_id) / "kafka.pid"
        if pid is not None:
            try:
                proc = psutil.Process(pid)
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                proc.wait(timeout)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            except psutil.NoSuchProcess:
                pass
        pidfile.unlink(missing_ok=True)

    def status(self) -> list[NodeStatus]:
        return [NodeStatus(n, self.port + n - 1, self._pid(n), self._pid(n) is not None)
                for n in range(1, self.brokers + 1)]

    # -- internals ---------------------------------------------------------
    def _cluster_id(self) -> str:
        path = self.data_dir / "cluster.id"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return path.read_text().strip()

    def _properties(self, node_id: int) -> str:
        bport = self.port + node_id - 1
        cport = bport + CONTROLLER_OFFSET
        voters = ",".join(f"{n}@127.0.0.1:{self.port + n - 1 + CONTROLLER_OFFSET}"
                          for n in range(1, self.brokers + 1))
        rf = 3 if self.brokers == 3 else 1
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{bport},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{bport}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                              "SASL_SSL:SASL_SSL,SSL:SSL",
            "log.dirs": str(self.node_dir(node_id) / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(rf),
            "min.insync.replicas": "2" if rf == 3 else "1",
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": "2" if rf == 3 else "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        if self.secure:
            props.update(self.material.properties(f"SASL_SSL://127.0.0.1:{bport}",
                                                  f"SASL_SSL://127.0.0.1:{bport}", cport))
        props.update(self.extra)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, libs: Path, ndir: Path, args: list[str], *, wait: bool
              ) -> subprocess.Popen[bytes]:
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if "JAVA_HOME" in os.environ \
            else "java"
        cmd = [java, f"-Xmx{self.heap}", f"-Xms{self.heap}" if not wait else "-Xms64m",
               "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={deploy_dir() / 'log4j2.yaml'}",
               f"-Dkafka.logs.dir={ndir / 'logs'}", "-cp", f"{libs}/*", *args]
        out = open(ndir / "logs" / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError:
            raise LocalKafkaError("java not found: Kafka needs Java 17 or newer") from None
        finally:
            out.close()
        if wait and proc.wait() != 0:
            raise LocalKafkaError(f"formatting Kafka storage failed: {self._log_tail_dir(ndir)}")
        return proc

    def _pid(self, node_id: int) -> int | None:
        pidfile = self.node_dir(node_id) / "kafka.pid"
        try:
            pid = int(pidfile.read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and "kafka.Kafka" in proc.cmdline():
                return pid
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        pidfile.unlink(missing_ok=True)  # stale: its process is gone
        return None

    def _log_tail(self, node_id: int) -> str:
        return self._log_tail_dir(self.node_dir(node_id))

    @staticmethod
    def _log_tail_dir(ndir: Path) -> str:
        for name in ("stdout.log", "server.log"):
            path = ndir / "logs" / name
            if path.exists():
                lines = [ln for ln in path.read_text(errors="replace").splitlines()
                         if "ERROR" in ln or "Exception" in ln]
                if lines:
                    return lines[-1][:300]
        return f"see {ndir / 'logs'}"


def _quiet_logger():
    import logging

    logger = logging.getLogger("eunomia.kafka.admin")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
