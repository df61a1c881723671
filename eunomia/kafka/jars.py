"""Fetch Apache Kafka's jars once, with Maven, into a cache outside the repo.

The pom in ``deploy/kafka`` names the broker and its logging binding; Maven
resolves the dependency tree. A finished cache is a directory renamed into place,
so an interrupted fetch never leaves a half-filled cache that looks complete.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from eunomia.errors import LocalKafkaError

__all__ = ["deploy_dir", "ensure_jars"]


def deploy_dir() -> Path:
    """``deploy/kafka`` of the source tree this package was installed from."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "deploy" / "kafka" / "pom.xml"
        if candidate.is_file():
            return candidate.parent
    raise LocalKafkaError("deploy/kafka/pom.xml not found: run from a source checkout")


def ensure_jars(cache_dir: Path, version: str) -> Path:
    """Return the directory of Kafka's jars, fetching them on first use."""
    libs = cache_dir / version / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is needed once to fetch Kafka's jars: apt-get install maven")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs.", dir=libs.parent))
    cmd = [mvn, "-q", "-B", "-f", str(deploy_dir() / "pom.xml"), f"-Dkafka.version={version}",
           "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise LocalKafkaError(f"fetching Kafka {version} with Maven failed: {' | '.join(tail)}")
    try:
        tmp.rename(libs)
    except OSError:  # another process won the race; its copy is as good
        shutil.rmtree(tmp, ignore_errors=True)
    return libs
