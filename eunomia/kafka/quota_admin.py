"""Client quotas through Kafka's own ``kafka-configs`` tool (``ConfigCommand``).

confluent-kafka's AdminClient has no client-quota calls (librdkafka implements
neither DescribeClientQuotas nor AlterClientQuotas), so the tool of the Kafka
release the project runs does it, from the local install's jars (fetched once,
``eunomia.kafka.jars``), with the configured credentials in a private
``--command-config`` file. Each run is one JVM (several seconds), so current
quotas are read in one run and only principals whose quota differs are altered.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from eunomia.config import KafkaSettings, Settings
from eunomia.errors import AccessDenied, BrokerUnavailable, LocalKafkaError
from eunomia.kafka.acls import Quota
from eunomia.kafka.jars import ensure_jars

__all__ = ["QuotaTool", "command_config", "parse_user_quotas"]

TOOL = "org.apache.kafka.tools.ConfigCommand"
_LINE = re.compile(r"^Quota configs for user-principal '(?P<user>[^']*)' are (?P<configs>.*)$")


def parse_user_quotas(text: str) -> dict[str, dict[str, float]]:
    """``--describe --entity-type users`` output -> user -> quota configs."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m is None:
            continue
        configs = {}
        for item in m["configs"].split(","):
            key, _, value = item.strip().partition("=")
            if key and value:
                configs[key] = float(value)
        out[m["user"]] = configs
    return out


def _number(v: float) -> str:
    """A quota value as the tool reads it, exactly (``:g`` would round 8388608 to 8.38861e+06)."""
    return str(int(v)) if v == int(v) else repr(v)


def _prop(value: str) -> str:
    """A value for a Java properties file (backslash is its escape character)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def command_config(kafka: KafkaSettings) -> str:
    """The Java client properties equivalent to ``kafka`` (the tool's ``--command-config``)."""
    lines = [f"security.protocol={kafka.security_protocol}"]
    if kafka.sasl_mechanism:
        lines.append(f"sasl.mechanism={kafka.sasl_mechanism}")
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule"
                  if kafka.sasl_mechanism == "PLAIN" else
                  "org.apache.kafka.common.security.scram.ScramLoginModule")

        def quoted(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        jaas = (f"{module} required username={quoted(kafka.sasl_username or '')} "
                f"password={quoted(password)};")
        lines.append(f"sasl.jaas.config={_prop(jaas)}")
    if kafka.ssl_cafile:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={_prop(str(kafka.ssl_cafile))}"]
    if kafka.ssl_certfile:
        key = Path(kafka.ssl_keyfile or kafka.ssl_certfile).read_text()
        lines += ["ssl.keystore.type=PEM",
                  f"ssl.keystore.certificate.chain={_prop(Path(kafka.ssl_certfile).read_text())}",
                  f"ssl.keystore.key={_prop(key)}"]
    return "".join(line + "\n" for line in lines)


class QuotaTool:
    """Reads and sets user quotas with ``kafka-configs`` as the configured principal."""

    def __init__(self, settings: Settings, timeout: float = 120.0) -> None:
        self.settings = settings
        self.timeout = timeout
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if "JAVA_HOME" in os.environ \
            else shutil.which("java")
        if not java:
            raise LocalKafkaError("java not found: client quotas are set with Kafka's own "
                                  "kafka-configs tool, which needs Java 17 or newer")
        self.java = java
        lk = settings.local_kafka
        self.libs = ensure_jars(lk.cache_dir, lk.version)

    def describe(self) -> dict[str, dict[str, float]]:
        """User -> quota configs, for every user that has a quota."""
        return parse_user_quotas(self._run(["--describe", "--entity-type", "users"]))

    def set(self, quota: Quota) -> None:
        configs = ",".join(f"{k}={_number(v)}" for k, v in quota.configs().items())
        self._run(["--alter", "--entity-type", "users", "--entity-name", quota.user,
                   "--add-config", configs])

    def _run(self, args: list[str]) -> str:
        kafka = self.settings.kafka
        with tempfile.TemporaryDirectory(prefix="eunomia-quotas-") as tmp:
            conf = Path(tmp) / "client.properties"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(command_config(kafka))
            cmd = [self.java, "-Xmx256m", "-Djava.awt.headless=true", "-cp", f"{self.libs}/*", TOOL,
                   "--bootstrap-server", kafka.bootstrap_servers, "--command-config", str(conf), *args]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise BrokerUnavailable(f"kafka-configs got no answer from {kafka.bootstrap_servers} "
                                        f"in {self.timeout:.0f}s") from None
        if proc.returncode != 0:
            out = proc.stdout + proc.stderr
            causes = [ln.strip() for ln in out.splitlines() if "Exception" in ln or "rror" in ln]
            cause = causes[-1] if causes else (out.strip().splitlines() or ["no output"])[-1]
            if "Authorization" in cause:
                raise AccessDenied(f"Kafka refused User:{kafka.sasl_username} changing client quotas: "
                                   f"{cause[:300]}")
            raise BrokerUnavailable(f"kafka-configs {args[0]} failed: {cause[:300]}")
        return proc.stdout
