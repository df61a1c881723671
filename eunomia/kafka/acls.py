"""Roles and their least Kafka ACLs, derived from the topic layout (which roles
write and read each topic in ``topics.TOPICS``), the topic prefix and the group
names, never from a second hand-written list: producer, one role per worker (its
inputs, outputs and the ``<app id>-`` topics its faust app owns), siem and admin.
Pure: plans, differences and the authorizer's decision; ``acl_admin`` talks to
the brokers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from eunomia.config import Settings
from eunomia.errors import ConfigError
from eunomia.kafka.topics import TOPICS, WORKERS

__all__ = ["CLUSTER", "ROLES", "Acl", "Quota", "Refusal", "allowed", "changes", "default_principal",
           "internal_prefix", "needs", "plan", "quotas", "refusals", "resolve_principals", "siem_group",
           "worker_group"]

ROLES: tuple[str, ...] = ("producer", *WORKERS, "siem", "admin")
CLUSTER = "kafka-cluster"  # the one name of Kafka's cluster resource
# operations a grant implies besides itself (Kafka's authorizer)
IMPLIED = {"describe": ("read", "write", "delete", "alter"), "describe_configs": ("alter_configs",)}
PRINCIPAL = re.compile(r"^[A-Za-z][\w.-]*:[^\s:]+$")


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL binding as Kafka stores it (host ``*``)."""

    principal: str  # "User:eunomia-producer"
    resource: str  # topic | group | cluster
    pattern: str  # literal | prefixed
    name: str
    operation: str  # read | write | create | describe | alter | describe_configs | alter_configs
    permission: str = "allow"  # allow | deny
    host: str = "*"

    def __str__(self) -> str:
        star = "*" if self.pattern == "prefixed" else ""
        return f"{self.principal} {self.permission} {self.operation} {self.resource}:{self.name}{star}"


@dataclass(frozen=True, order=True)
class Quota:
    """The client quota of one producer principal (quota entity ``user``)."""

    user: str
    producer_byte_rate: int
    request_percentage: float

    def configs(self) -> dict[str, float]:
        return {"producer_byte_rate": float(self.producer_byte_rate),
                "request_percentage": float(self.request_percentage)}


@dataclass(frozen=True, order=True)
class Refusal:
    """A request a role needs that the broker's ACLs would refuse."""

    role: str
    principal: str
    resource: str
    name: str
    operation: str

    def __str__(self) -> str:
        return (f"{self.role} ({self.principal}) would be refused {self.operation} on "
                f"{self.resource} {self.name}")


def worker_group(settings: Settings, worker: str) -> str:
    """The consumer group of a worker: its faust app id (``processors.runtime.app.create_app``)."""
    return f"{settings.topics.prefix}{worker}"


def internal_prefix(settings: Settings, worker: str) -> str:
    """The name prefix of the topics a worker's faust app owns (changelogs and the like)."""
    return f"{worker_group(settings, worker)}-"


def siem_group(settings: Settings) -> str:
    return settings.acls.siem_group or f"{settings.topics.prefix}siem"


def default_principal(role: str) -> str:
    return f"User:eunomia-{role}"


def resolve_principals(settings: Settings, overrides: Mapping[str, Sequence[str]] | None = None
                       ) -> dict[str, tuple[str, ...]]:
    """Role -> principals: ``overrides`` (command line), else the configuration, else the default."""
    configured = {**settings.acls.principals, **(overrides or {})}
    for role in configured:
        if role not in ROLES:
            raise ConfigError(f"acls.principals: unknown role {role!r} (roles: {', '.join(ROLES)})")
    out: dict[str, tuple[str, ...]] = {}
    for role in ROLES:
        names = tuple(dict.fromkeys(configured.get(role) or [default_principal(role)]))
        for p in names:
            if not PRINCIPAL.match(p):
                raise ConfigError(f"role {role}: principal {p!r} is not of the form User:<name>")
        out[role] = names
    return out


def _grants(settings: Settings, role: str) -> list[tuple[str, str, str, str]]:
    """(resource, pattern, name, operation) a role needs, before principals."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    out: list[tuple[str, str, str, str]] = []
    for spec in TOPICS:
        name = settings.topic(spec.name)
        if role in spec.readers:
            out.append(("topic", "literal", name, "read"))
        if role in spec.writers:
            out.append(("topic", "literal", name, "write"))
        if role == spec.declared_by:
            out.append(("topic", "literal", name, "create"))
    if role in WORKERS:
        out.append(("group", "literal", worker_group(settings, role), "read"))
        out += [("topic", "prefixed", internal_prefix(settings, role), op)
                for op in ("read", "write", "create")]
    elif role == "siem":
        out.append(("group", "literal", siem_group(settings), "read"))
    elif role == "admin":
        out += [("topic", "prefixed", settings.topics.prefix, op) for op in ("create", "describe")]
        out += [("cluster", "literal", CLUSTER, op)
                for op in ("describe", "alter", "describe_configs", "alter_configs")]
    return out


def plan(settings: Settings, principals: Mapping[str, Sequence[str]],
         roles: Iterable[str] = ROLES) -> list[Acl]:
    """The ACLs of ``roles``, one per (principal, right), sorted."""
    out = {Acl(p, *grant) for role in roles for grant in _grants(settings, role)
           for p in principals[role]}
    return sorted(out)


def quotas(settings: Settings, principals: Mapping[str, Sequence[str]]) -> list[Quota]:
    """One quota per producer principal (its user name is the quota entity)."""
    a = settings.acls
    return sorted(Quota(p.split(":", 1)[1], a.producer_byte_rate, a.producer_request_percentage)
                  for p in principals["producer"])


def _owned(acl: Acl, settings: Settings, planned: set[tuple[str, str, str]], principals: set[str]) -> bool:
    """Whether an ACL on the broker is the project's to remove: it is on a resource named
    under the topic prefix or on one the plan names, or it is a cluster ACL of a planned
    principal. An ACL on someone else's resource is never touched."""
    if acl.resource == "cluster":
        return acl.principal in principals
    return acl.name.startswith(settings.topics.prefix) or (acl.resource, acl.pattern, acl.name) in planned


def changes(settings: Settings, desired: Iterable[Acl], existing: Iterable[Acl],
            keep_principals: Iterable[str] = ()) -> tuple[list[Acl], list[Acl]]:
    """(to add, to remove) to turn ``existing`` into ``desired`` on the project's resources.

    ``keep_principals``: principals of roles this run does not manage (``--role``);
    their ACLs stay as they are."""
    if not settings.topics.prefix:
        raise ConfigError("topics.prefix is empty: the ACLs of the project are those under its "
                          "prefix, and an empty prefix is the whole cluster")
    want, have = set(desired), set(existing)
    planned = {(a.resource, a.pattern, a.name) for a in want}
    keep = set(keep_principals)
    principals = {a.principal for a in want}
    remove = {a for a in have - want
              if a.principal not in keep and _owned(a, settings, planned, principals)}
    return sorted(want - have), sorted(remove)


def _matches(acl: Acl, principal: str, resource: str, name: str, operation: str, permission: str) -> bool:
    if acl.resource != resource or acl.permission != permission:
        return False
    if acl.principal not in (principal, "User:*"):
        return False
    if acl.pattern == "prefixed":
        if not name.startswith(acl.name):
            return False
    elif acl.name not in (name, "*"):
        return False
    if acl.operation in (operation, "all"):
        return True
    return permission == "allow" and acl.operation in IMPLIED.get(operation, ())


def allowed(acls: Iterable[Acl], principal: str, resource: str, name: str, operation: str, *,
            super_users: Iterable[str] = (), allow_if_no_acl: bool = False) -> bool:
    """Kafka's decision (``StandardAuthorizer``): super users may do anything; a DENY
    wins over any ALLOW; READ, WRITE, ALTER and DELETE imply DESCRIBE and ALTER_CONFIGS
    implies DESCRIBE_CONFIGS; a resource no ACL matches at all is open only with
    ``allow.everyone.if.no.acl.found``."""
    if principal in set(super_users):
        return True
    acls = list(acls)
    if any(_matches(a, principal, resource, name, operation, "deny") for a in acls):
        return False
    if any(_matches(a, principal, resource, name, operation, "allow") for a in acls):
        return True
    if allow_if_no_acl:
        on_resource = [a for a in acls if a.resource == resource and (
            name.startswith(a.name) if a.pattern == "prefixed" else a.name in (name, "*"))]
        return not on_resource
    return False


def needs(settings: Settings, role: str) -> list[tuple[str, str, str]]:
    """(resource, name, operation): concrete requests a role makes; a prefixed right is
    checked on a topic its holder really uses (the faust app's leader topic, each
    pipeline topic for the admin)."""
    out = []
    for resource, pattern, name, op in _grants(settings, role):
        if pattern == "literal":
            out.append((resource, name, op))
        elif role in WORKERS:
            out.append((resource, f"{name}__assignor-__leader", op))
        else:
            out += [(resource, settings.topic(spec.name), op) for spec in TOPICS]
    return out


def refusals(settings: Settings, principals: Mapping[str, Sequence[str]], acls: Iterable[Acl], *,
             super_users: Iterable[str] = (), allow_if_no_acl: bool = False,
             roles: Iterable[str] = ROLES) -> list[Refusal]:
    """Every request of every role's principal that the broker's ``acls`` would refuse."""
    acls = list(acls)
    supers = set(super_users)
    out = []
    for role in roles:
        for principal in principals[role]:
            for resource, name, op in needs(settings, role):
                if not allowed(acls, principal, resource, name, op, super_users=supers,
                               allow_if_no_acl=allow_if_no_acl):
                    out.append(Refusal(role, principal, resource, name, op))
    return out
