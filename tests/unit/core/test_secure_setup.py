"""The pieces of the secure set-up that need no broker: the local secure broker's
material and properties, and the client properties and output of Kafka's
``kafka-configs`` tool that ``eunomia acls apply`` sets quotas with."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from eunomia.config import KafkaSettings
from eunomia.kafka.acls import ROLES, Quota
from eunomia.kafka.local_secure import BROKER_USER, ensure_material, role_user
from eunomia.kafka.quota_admin import _number, command_config, parse_user_quotas


def test_material_is_private_complete_and_reused(tmp_path: Path) -> None:
    m = ensure_material(tmp_path / "secure", "127.0.0.1:9999")
    assert set(m.passwords) == {BROKER_USER, *(role_user(r) for r in ROLES)}
    assert len(set(m.passwords.values())) == len(m.passwords)
    for path in [m.ca, m.keystore, m.dir / "users.json", *(m.client_file(r) for r in ROLES)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(m.dir.stat().st_mode) == 0o700
    client = yaml.safe_load(m.client_file("siem").read_text())["kafka"]
    assert client["sasl_username"] == "eunomia-siem" and client["security_protocol"] == "SASL_SSL"
    assert client["sasl_password"] == m.passwords["eunomia-siem"]
    assert KafkaSettings(**client).librdkafka()["ssl.ca.location"] == str(m.ca)
    again = ensure_material(tmp_path / "secure", "127.0.0.1:9999")
    assert again.passwords == m.passwords and again.ca.read_text() == m.ca.read_text()


def test_broker_properties_enforce_acls_and_authenticate_its_own_traffic(tmp_path: Path) -> None:
    m = ensure_material(tmp_path, "127.0.0.1:9999")
    props = m.properties("SASL_SSL://127.0.0.1:9999", "SASL_SSL://127.0.0.1:9999", 10099)
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:{BROKER_USER};User:eunomia-admin"
    assert "PLAINTEXT:" not in props["listener.security.protocol.map"]  # no unauthenticated listener
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9999,CONTROLLER://127.0.0.1:10099"
    args = m.format_args()
    assert args.count("--add-scram") == len(m.passwords)
    assert f"SCRAM-SHA-512=[name=eunomia-producer,password={m.passwords['eunomia-producer']}]" in args


def test_kafka_configs_client_properties() -> None:
    k = KafkaSettings(bootstrap_servers="h:1", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_username="eunomia-admin", sasl_password='p"w\\x', ssl_cafile=Path("/ca.pem"))
    lines = command_config(k).splitlines()
    assert "security.protocol=SASL_SSL" in lines and "sasl.mechanism=SCRAM-SHA-512" in lines
    # the JAAS string quotes the password, and the properties file escapes its backslashes
    assert ('sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
            'username="eunomia-admin" password="p\\\\"w\\\\\\\\x";') in lines
    assert "ssl.truststore.type=PEM" in lines and "ssl.truststore.location=/ca.pem" in lines
    assert command_config(KafkaSettings()) == "security.protocol=PLAINTEXT\n"


def test_kafka_configs_output_and_exact_values() -> None:
    out = ("Quota configs for user-principal 'host-a' are request_percentage=25.0, "
           "producer_byte_rate=8388608.0\n"
           "SCRAM credential configs for user-principal 'host-a' are SCRAM-SHA-512=iterations=4096\n"
           "Quota configs for user-principal 'host-b' are producer_byte_rate=1024.0\n")
    assert parse_user_quotas(out) == {"host-a": {"request_percentage": 25.0, "producer_byte_rate": 8388608.0},
                                      "host-b": {"producer_byte_rate": 1024.0}}
    q = Quota("host-a", 8388608, 12.5)
    assert [_number(v) for v in q.configs().values()] == ["8388608", "12.5"]
