"""The brokers' side of ``eunomia acls``: read and change ACLs through the Admin API
of confluent-kafka, and read what the authorizer does without one (``super.users``,
``allow.everyone.if.no.acl.found``) from a broker's configuration.

A refused request is one line naming the principal and what it lacks
(``AccessDenied``), never a traceback. The cluster operations the principal may
do are asked first: a broker answers a DescribeAcls it refuses with an empty
list, which would read as "no ACLs at all", and a change is refused before any
part of it is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from eunomia.config import Settings
from eunomia.errors import AccessDenied, BrokerUnavailable
from eunomia.kafka.acls import Acl
from eunomia.kafka.reach import ClientErrors, metadata

__all__ = ["AclAdmin", "Authorizer"]

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.BROKER,
              "transactional_id": ResourceType.TRANSACTIONAL_ID}
_NAMES = {v: k for k, v in _RESOURCES.items()}
_DENIED = (KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED,
           KafkaError.GROUP_AUTHORIZATION_FAILED)


@dataclass(frozen=True)
class Authorizer:
    """What the brokers' authorizer does beyond the ACLs, as far as a broker tells:
    ``super.users`` is never among a broker's described configs, so super users
    cannot be known here."""

    enabled: bool  # an authorizer is configured at all
    allow_if_no_acl: bool  # allow.everyone.if.no.acl.found (false when not described)


def _binding(acl: Acl) -> AclBinding:
    return AclBinding(_RESOURCES[acl.resource], acl.name, ResourcePatternType[acl.pattern.upper()],
                      acl.principal, acl.host, AclOperation[acl.operation.upper()],
                      AclPermissionType[acl.permission.upper()])


def _filter(acl: Acl) -> AclBindingFilter:
    return AclBindingFilter(_RESOURCES[acl.resource], acl.name, ResourcePatternType[acl.pattern.upper()],
                            acl.principal, acl.host, AclOperation[acl.operation.upper()],
                            AclPermissionType[acl.permission.upper()])


def _acl(b: AclBinding) -> Acl | None:
    resource = _NAMES.get(b.restype)
    if resource is None or b.resource_pattern_type not in (ResourcePatternType.LITERAL,
                                                           ResourcePatternType.PREFIXED):
        return None  # a kind of resource the project never grants on
    return Acl(b.principal, resource, b.resource_pattern_type.name.lower(), b.name,
               b.operation.name.lower(), b.permission_type.name.lower(), b.host)


class AclAdmin:
    """An Admin API client for the configured brokers and principal."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._errors = ClientErrors()
        self.admin = AdminClient(self._errors.config(settings))
        self._md = metadata(self.admin, self._errors, settings, timeout=timeout)
        self._cluster_ops: set[str] | None = None

    @property
    def who(self) -> str:
        return f"User:{self.settings.kafka.sasl_username or 'ANONYMOUS'}"

    def _refused(self, err: KafkaError | str, what: str) -> AccessDenied:
        name = err if isinstance(err, str) else err.name()
        return AccessDenied(f"Kafka refused {self.who} {what} ({name}): run it with the "
                            f"admin role's credentials")

    def require(self, operation: str, what: str) -> None:
        """Raise ``AccessDenied`` unless the principal may do ``operation`` on the cluster."""
        if self._cluster_ops is None:
            try:
                desc = self.admin.describe_cluster(include_authorized_operations=True,
                                                   request_timeout=self.timeout).result()
            except KafkaException as exc:
                raise BrokerUnavailable(f"describing the cluster failed: {exc.args[0].str()}") from None
            self._cluster_ops = {op.name.lower() for op in desc.authorized_operations or ()}
        if operation not in self._cluster_ops:
            raise self._refused(f"CLUSTER_AUTHORIZATION_FAILED: no {operation.upper()} on the cluster",
                                what)

    def describe(self) -> list[Acl]:
        """Every ACL on the cluster (of the kinds of resource the project uses)."""
        self.require("describe", "reading the ACLs")
        flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
        try:
            bindings = self.admin.describe_acls(flt, request_timeout=self.timeout).result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in _DENIED:
                raise self._refused(err, "reading the ACLs") from None
            if err.code() == KafkaError.SECURITY_DISABLED:
                raise BrokerUnavailable(f"Kafka at {self.settings.kafka.bootstrap_servers} has no "
                                        "authorizer: ACLs do nothing there (see `eunomia kafka start "
                                        "--secure`)") from None
            raise BrokerUnavailable(f"reading ACLs failed: {err.str()}") from None
        return sorted(a for a in map(_acl, bindings) if a is not None)

    def create(self, acls: Iterable[Acl]) -> None:
        acls = list(acls)
        if not acls:
            return
        self.require("alter", "creating ACLs")
        for binding, fut in self.admin.create_acls([_binding(a) for a in acls],
                                                   request_timeout=self.timeout).items():
            self._result(fut, f"creating ACL {binding}")

    def delete(self, acls: Iterable[Acl]) -> None:
        """Delete exactly these ACLs (each filter matches one binding)."""
        acls = list(acls)
        if not acls:
            return
        self.require("alter", "deleting ACLs")
        for flt, fut in self.admin.delete_acls([_filter(a) for a in acls],
                                               request_timeout=self.timeout).items():
            self._result(fut, f"deleting ACL {flt}")

    def _result(self, fut: object, what: str) -> object:
        try:
            return fut.result()  # type: ignore[attr-defined]
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in _DENIED:
                raise self._refused(err, what) from None
            raise BrokerUnavailable(f"{what} failed: {err.str()}") from None

    def authorizer(self) -> Authorizer:
        """The authorizer settings one broker describes."""
        broker = str(min(self._md.brokers))
        res = ConfigResource(ResourceType.BROKER, broker)
        try:
            configs = self.admin.describe_configs([res], request_timeout=self.timeout)[res].result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in _DENIED:
                raise self._refused(err, "reading the broker configuration") from None
            raise BrokerUnavailable(f"reading broker {broker}'s configuration failed: {err.str()}") from None

        def value(name: str) -> str:
            entry = configs.get(name)
            return (entry.value or "") if entry is not None else ""

        return Authorizer(bool(value("authorizer.class.name")),
                          value("allow.everyone.if.no.acl.found").lower() == "true")
