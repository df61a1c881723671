"""Kafka over TLS with SASL/SCRAM-SHA-512, configured only through settings.

The test makes its own CA and server certificate, starts its own broker with a
SASL_SSL listener (PEM keystore) next to the loopback PLAINTEXT listener the
brokers and controller use among themselves, and creates a SCRAM user. Then,
through the SASL_SSL listener only: ``eunomia topics create`` (CLI), the
producer's Publisher, and a real ``eunomia worker enrich`` reading raw.events and
writing enriched.events. A wrong password fails fast with one line; the
password never appears in any output or log.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from eunomia.config import KafkaSettings, LocalKafkaSettings, Settings, TopicSettings
from eunomia.kafka.local_broker import LocalKafka
from eunomia.producer.publisher import Publisher
from eunomia.schemas import AvroCodec
from tests.requirements import require
from tests.support import raw_records
from tests.support.ports import free_port_block

USER, PASSWORD = "eunomia-ci", f"s3cret-{uuid.uuid4().hex}"
CODEC = AvroCodec()


def _certificates(d: Path) -> tuple[Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it; returns
    (ca.pem, server.pem with the PKCS#8 key and the chain, Kafka's PEM keystore)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eunomia test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path, server = d / "ca.pem", d / "server.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    server.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
                       + cert.public_bytes(pem) + ca.public_bytes(pem))
    return ca_path, server


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, KafkaSettings]]:
    require(os.system("command -v java >/dev/null") == 0, "needs Java 17 for the local Kafka broker")
    d = tmp_path_factory.mktemp("sasl")
    ca, server = _certificates(d)
    port, sasl_port = free_port_block(), free_port_block()
    cport = port + 100
    extra = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},"
                     f"SASL_SSL://127.0.0.1:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
        "listener.name.sasl_ssl.ssl.keystore.location": str(server),
    }
    s = LocalKafkaSettings()
    kafka = LocalKafka(d / "kafka", s.cache_dir, port=port, heap="384m", extra_properties=extra)
    kafka.start()
    try:
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        up = UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          PASSWORD.encode())
        for fut in admin.alter_user_scram_credentials([up]).values():
            fut.result(30)
        time.sleep(1)  # credentials reach the broker's SCRAM cache through the metadata log
        yield kafka, KafkaSettings(bootstrap_servers=f"127.0.0.1:{sasl_port}", security_protocol="SASL_SSL",
                                   sasl_mechanism="SCRAM-SHA-512", sasl_username=USER,
                                   sasl_password=PASSWORD, ssl_cafile=ca)
    finally:
        kafka.stop()


def _env(kafka: KafkaSettings, prefix: str, password: str | None = None) -> dict[str, str]:
    return {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "EUNOMIA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "EUNOMIA_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "EUNOMIA_KAFKA__SASL_USERNAME": USER,
            "EUNOMIA_KAFKA__SASL_PASSWORD": password or PASSWORD,
            "EUNOMIA_KAFKA__SSL_CAFILE": str(kafka.ssl_cafile),
            "EUNOMIA_TOPICS__PREFIX": prefix, "EUNOMIA_TOPICS__PARTITIONS": "3",
            "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _read(kafka: KafkaSettings, topic: str, n: int, timeout: float = 120) -> list:
    c = Consumer({**kafka.librdkafka(), "group.id": f"t-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=30).topics[topic]
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            out += [m for m in c.consume(1000, 0.5) if not m.error()]
    finally:
        c.close()
    return out


def test_pipeline_through_sasl_ssl(secure_broker: tuple[LocalKafka, KafkaSettings], tmp_path: Path) -> None:
    _, kafka = secure_broker
    prefix = f"s{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka=kafka, topics=TopicSettings(prefix=prefix, partitions=3))
    outputs: list[str] = []

    cli = subprocess.run([sys.executable, "-m", "eunomia", "topics", "create"], env=_env(kafka, prefix),
                         capture_output=True, text=True, timeout=120)
    outputs += [cli.stdout, cli.stderr]
    assert cli.returncode == 0, cli.stderr

    log = tmp_path / "enrich.log"
    with log.open("wb") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "eunomia", "worker", "enrich", "--grace", "1"],
                                  env=_env(kafka, prefix), stdout=fh, stderr=subprocess.STDOUT,
                                  cwd=tmp_path)
    try:
        recs, events = raw_records.workload(300, hosts=2, containers=3)
        pub = Publisher(settings, spool_dir=tmp_path / "spool", spool_max_bytes=64 * 1024 * 1024)
        for r in recs:
            pub.publish("containers", f"{r['host_id']}/{r['cgroup_id']}".encode(),
                        CODEC.encode("container", r))
        for e in events:
            pub.publish("raw.events", e["host_id"].encode(), CODEC.encode("raw_event", e), seq=e["seq"])
        assert pub.flush(60) == 0
        pub.close(10)
        assert len(_read(kafka, settings.topic("raw.events"), len(events))) == len(events)

        enriched = _read(kafka, settings.topic("enriched.events"), len(events), timeout=240)
        assert worker.poll() is None, log.read_text()[-3000:]
        assert len(enriched) == len(events), log.read_text()[-3000:]
        names = {CODEC.decode(m.value(), "enriched_event")["container"]["name"] for m in enriched}
        assert names <= {r["name"] for r in recs} and names
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    outputs.append(log.read_text(errors="replace"))
    assert not [o for o in outputs if PASSWORD in o], "the password was logged"


def test_wrong_password_fails_fast_with_one_line(secure_broker: tuple[LocalKafka, KafkaSettings]) -> None:
    _, kafka = secure_broker
    wrong = f"wrong-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "eunomia", "topics", "create"],
                         env=_env(kafka, "sw.", password=wrong), capture_output=True, text=True,
                         timeout=120)
    elapsed = time.monotonic() - t0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    print(f"\nwrong password: exit {res.returncode} after {elapsed:.1f}s: {lines}")
    assert res.returncode == 1
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "authentication" in lines[0].lower(), lines[0]
    assert wrong not in res.stdout + res.stderr and PASSWORD not in res.stdout + res.stderr
