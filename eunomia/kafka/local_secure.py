"""What a ``--secure`` local broker needs: TLS material, one SCRAM user per role,
and the properties for SASL_SSL only with the KRaft ``StandardAuthorizer`` and
no access without an ACL. Everything lives in one owner-only directory (CA,
server key, users, a settings file per role) and is reused on restart, so a
restarted broker keeps its users.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eunomia.kafka.acls import ROLES

__all__ = ["BROKER_USER", "SecureMaterial", "ensure_material", "role_user"]

BROKER_USER = "eunomia-broker"
MECHANISM = "SCRAM-SHA-512"


def role_user(role: str) -> str:
    """The SCRAM user of ``role`` on a local secure broker (and its default principal)."""
    return f"eunomia-{role}"


@dataclass(frozen=True)
class SecureMaterial:
    dir: Path
    ca: Path
    keystore: Path
    passwords: dict[str, str]  # SCRAM user -> password

    def client_file(self, role: str) -> Path:
        return self.dir / "clients" / f"{role}.yaml"

    def kafka_settings(self, bootstrap: str, user: str) -> dict[str, Any]:
        """The ``kafka:`` section of the settings for ``user`` (password included)."""
        return {"bootstrap_servers": bootstrap, "security_protocol": "SASL_SSL",
                "sasl_mechanism": MECHANISM, "sasl_username": user,
                "sasl_password": self.passwords[user], "ssl_cafile": str(self.ca)}

    def librdkafka(self, bootstrap: str, user: str) -> dict[str, Any]:
        return {"bootstrap.servers": bootstrap, "security.protocol": "sasl_ssl",
                "sasl.mechanism": MECHANISM, "sasl.username": user,
                "sasl.password": self.passwords[user], "ssl.ca.location": str(self.ca)}

    def format_args(self) -> list[str]:
        """StorageTool arguments that create every SCRAM user when storage is formatted."""
        out = []
        for user, password in sorted(self.passwords.items()):
            out += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        return out

    def properties(self, client_listeners: str, advertised: str, controller_port: int) -> dict[str, str]:
        """Broker properties: SASL_SSL for clients and brokers, SASL/PLAIN for the controller."""
        pw = self.passwords[BROKER_USER]
        supers = ";".join(f"User:{u}" for u in (BROKER_USER, role_user("admin")))
        return {
            "listeners": f"{client_listeners},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": advertised,
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{BROKER_USER}" password="{pw}" user_{BROKER_USER}="{pw}";',
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{BROKER_USER}" password="{pw}";',
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "listener.name.sasl_ssl.ssl.truststore.type": "PEM",
            "listener.name.sasl_ssl.ssl.truststore.location": str(self.ca),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": supers,
        }


def ensure_material(directory: Path, bootstrap: str) -> SecureMaterial:
    """Create (or reuse) the CA, server certificate, users and client files in ``directory``."""
    d = Path(directory)
    (d / "clients").mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    ca, keystore = d / "ca.pem", d / "server.pem"
    if not (ca.exists() and keystore.exists()):
        _certificates(ca, keystore)
    users_file = d / "users.json"
    passwords: dict[str, str] = json.loads(users_file.read_text()) if users_file.exists() else {}
    for user in (BROKER_USER, *(role_user(r) for r in ROLES)):
        passwords.setdefault(user, secrets.token_urlsafe(24))
    _write_private(users_file, json.dumps(passwords, indent=2) + "\n")
    material = SecureMaterial(d, ca, keystore, passwords)
    for role in ROLES:
        kafka = material.kafka_settings(bootstrap, role_user(role))
        _write_private(material.client_file(role), yaml.safe_dump({"kafka": kafka}, sort_keys=False))
    return material


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _certificates(ca_path: Path, keystore: Path) -> None:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: ``ca_path``
    gets the CA, ``keystore`` the PKCS#8 key, the certificate and the CA (Kafka's PEM keystore)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    valid = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=365))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eunomia local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    _write_private(ca_path, ca.public_bytes(pem).decode())
    _write_private(keystore, (key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
                              + cert.public_bytes(pem) + ca.public_bytes(pem)).decode())
