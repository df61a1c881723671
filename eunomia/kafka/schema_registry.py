"""A local Schema Registry speaking the Confluent REST API, for tests and demos.

Confluent's own registry cannot be fetched here, so this runs Apicurio Registry
(in-memory storage) and serves its Confluent-compatible API on 127.0.0.1. Its
distribution is fetched once with Maven into the user's cache, renamed into
place when complete (as the Kafka jars are), so a broken fetch never looks done.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from eunomia.errors import EunomiaError

__all__ = ["DEFAULT_VERSION", "LocalRegistryError", "LocalSchemaRegistry", "default_cache_dir",
           "ensure_registry"]

# 3.0.x runs on Java 17, the JDK the local Kafka already needs; 3.3.x needs Java 21.
DEFAULT_VERSION = "3.0.9"
CCOMPAT_PATH = "/apis/ccompat/v7"


class LocalRegistryError(EunomiaError):
    """The local Schema Registry could not be fetched, started or stopped."""


def default_cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "eunomia" / "schema-registry"


def _runner(home: Path) -> Path | None:
    """The jar to ``java -jar``: fast-jar layout (3.1+) or legacy runner (3.0)."""
    fast = home / "quarkus-run.jar"
    if fast.is_file():
        return fast
    return next(iter(sorted(home.glob("*-runner.jar"))), None)


def ensure_registry(cache_dir: Path | None = None, version: str = DEFAULT_VERSION) -> Path:
    """Directory of the unpacked registry distribution, fetching it on first use."""
    cache_dir = Path(cache_dir or default_cache_dir())
    home = cache_dir / f"apicurio-registry-{version}"
    if _runner(home) is not None:
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalRegistryError(
            "Maven (mvn) is needed once to fetch the schema registry: apt-get install maven")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="fetch.", dir=cache_dir))
    try:
        artifact = f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
        proc = subprocess.run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
                               f"-DoutputDirectory={tmp}"], capture_output=True, text=True,
                              cwd=tmp)
        archives = list(tmp.glob("*.tar.gz"))
        if proc.returncode != 0 or not archives:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise LocalRegistryError(
                f"fetching Apicurio Registry {version} with Maven failed: {' | '.join(tail)}")
        dist = tmp / "dist"
        with tarfile.open(archives[0]) as tar:
            tar.extractall(dist, filter="data")
        if _runner(dist) is None:
            raise LocalRegistryError(f"Apicurio Registry {version} archive has no runnable jar")
        try:
            dist.rename(home)
        except OSError:  # another process won the race; its copy is as good
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return home


class LocalSchemaRegistry:
    """One Apicurio Registry JVM on 127.0.0.1 with in-memory storage.

    Nothing survives a restart, which is what tests want: every session starts
    from an empty registry and ids are never reused across runs by accident.
    """

    def __init__(self, work_dir: Path, *, port: int, cache_dir: Path | None = None,
                 version: str = DEFAULT_VERSION, heap: str = "256m") -> None:
        self.work_dir = Path(work_dir)
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self.port = port
        self.version = version
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL for ``SchemaRegistryClient`` (and ``schema_registry_url``)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "registry.log"

    def start(self, timeout: float = 120.0) -> None:
        """Fetch once, start the JVM and wait until the Confluent API answers."""
        if self._proc is not None and self._proc.poll() is None:
            return
        runner = _runner(ensure_registry(self.cache_dir, self.version))
        assert runner is not None
        self.work_dir.mkdir(parents=True, exist_ok=True)
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if "JAVA_HOME" in os.environ \
            else "java"
        cmd = [java, f"-Xmx{self.heap}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
               "-Djava.awt.headless=true", f"-Djava.io.tmpdir={self.work_dir}",
               "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
               "-Dquarkus.management.host=127.0.0.1", "-Dquarkus.management.port=0",
               f"-Dapicurio.storage.snapshot.location={self.work_dir}",
               f"-Dapicurio.import.work-dir={self.work_dir}",
               "-jar", str(runner)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.work_dir,
                                          start_new_session=True)
        except FileNotFoundError:
            raise LocalRegistryError("java not found: the schema registry needs Java 17") from None
        finally:
            log.close()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise LocalRegistryError(
                    f"schema registry exited during start-up: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise LocalRegistryError(
            f"schema registry at {self.url} not ready after {timeout:.0f}s: {self._log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> LocalSchemaRegistry:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _log_tail(self) -> str:
        if self.log_path.exists():
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                     if "ERROR" in ln or "Exception" in ln or "Error:" in ln]
            if lines:
                return lines[-1][:300]
        return f"see {self.log_path}"
