"""Roles and their least ACLs (``eunomia.kafka.acls``): what each role is granted,
derived from the topic layout and prefix; that the workers' faust apps use only
names the grants cover; the authorizer's decision; and what ``apply`` would add
and remove."""

from __future__ import annotations

import importlib

import pytest

from eunomia.config import AclSettings, Settings, TopicSettings
from eunomia.errors import ConfigError
from eunomia.kafka.acls import (
    CLUSTER,
    ROLES,
    Acl,
    allowed,
    changes,
    internal_prefix,
    plan,
    quotas,
    refusals,
    resolve_principals,
    siem_group,
    worker_group,
)
from eunomia.kafka.topics import TOPICS, WORKERS

PREFIX = "acl."


def _settings(**acls: object) -> Settings:
    return Settings(topics=TopicSettings(prefix=PREFIX), acls=AclSettings(**acls))


def _rights(settings: Settings, role: str) -> set[tuple[str, str, str, str]]:
    principals = resolve_principals(settings)
    return {(a.operation, a.resource, a.pattern, a.name) for a in plan(settings, principals, [role])}


def _can(settings: Settings, principal: str, resource: str, name: str, op: str) -> bool:
    return allowed(plan(settings, resolve_principals(settings)), principal, resource, name, op)


def test_producer_writes_its_four_topics_and_nothing_else() -> None:
    s = _settings()
    assert _rights(s, "producer") == {("write", "topic", "literal", f"{PREFIX}{t}")
                                      for t in ("raw.events", "raw.syscalls", "containers",
                                                "producer.health")}


def test_each_worker_reads_inputs_writes_outputs_and_owns_its_prefix() -> None:
    s = _settings()
    io = {"enrich": ({"raw.events", "raw.syscalls", "containers"}, {"enriched.events", "dlq"}),
          "rules": ({"enriched.events"}, {"alerts", "alerts.ocsf", "dlq"}),
          "seccomp": ({"enriched.events", "seccomp.by-image"},
                      {"seccomp.by-image", "seccomp.profiles", "alerts", "dlq"}),
          "health": ({"raw.events", "producer.health"}, {"alerts", "dlq"})}
    for worker, (reads, writes) in io.items():
        want = {("read", "topic", "literal", PREFIX + t) for t in reads}
        want |= {("write", "topic", "literal", PREFIX + t) for t in writes}
        want.add(("read", "group", "literal", f"{PREFIX}{worker}"))
        want |= {(op, "topic", "prefixed", f"{PREFIX}{worker}-") for op in ("read", "write", "create")}
        if worker == "seccomp":  # its faust app declares the topic it re-keys through
            want.add(("create", "topic", "literal", f"{PREFIX}seccomp.by-image"))
        assert _rights(s, worker) == want, worker


def test_siem_reads_alerts_with_its_own_group() -> None:
    s = _settings()
    assert siem_group(s) == f"{PREFIX}siem"
    assert _rights(s, "siem") == {("read", "topic", "literal", f"{PREFIX}alerts"),
                                  ("read", "topic", "literal", f"{PREFIX}alerts.ocsf"),
                                  ("read", "group", "literal", f"{PREFIX}siem")}
    assert ("read", "group", "literal", "splunk-1") in _rights(_settings(siem_group="splunk-1"), "siem")


def test_admin_creates_topics_and_manages_acls_and_quotas() -> None:
    assert _rights(_settings(), "admin") == {
        ("create", "topic", "prefixed", PREFIX), ("describe", "topic", "prefixed", PREFIX),
        *{(op, "cluster", "literal", CLUSTER)
          for op in ("describe", "alter", "describe_configs", "alter_configs")}}


def test_every_topic_has_a_writer_and_every_role_name_is_a_role() -> None:
    for spec in TOPICS:
        assert spec.writers, spec.name
        assert set(spec.writers) | set(spec.readers) <= set(ROLES), spec.name


def test_a_workers_prefix_covers_no_pipeline_topic() -> None:
    # "acl.enrich" is a prefix of "acl.enriched.events": the trailing "-" keeps them apart
    s = _settings()
    for worker in WORKERS:
        assert internal_prefix(s, worker).endswith("-")
        for spec in TOPICS:
            assert not s.topic(spec.name).startswith(internal_prefix(s, worker)), (worker, spec.name)


@pytest.mark.parametrize("worker", WORKERS)
def test_the_workers_faust_app_uses_only_names_its_role_may(worker: str) -> None:
    """The consumer group, the tables' changelogs, the assignor's topic and every topic an
    agent reads are the names the role's grants cover (drift between the workers and
    the topic layout fails here)."""
    s = _settings()
    module = importlib.import_module(f"eunomia.processors.workers.{worker}")
    app = getattr(module, f"{worker.capitalize()}Worker")(s).app
    principal = resolve_principals(s)[worker][0]
    assert app.conf.id == worker_group(s, worker)
    assert _can(s, principal, "group", app.conf.id, "read")
    internal = [t.changelog_topic.get_topic_name() for t in app.tables.values()]
    internal.append(app._leader_assignor._leader_topic_name)
    assert internal[:-1], "a stateful worker has tables"
    for name in internal:
        for op in ("read", "write", "create"):
            assert _can(s, principal, "topic", name, op), (name, op)
    read = {name for agent in app.agents.values() for name in agent.channel.topics}
    assert read
    for name in read:
        assert _can(s, principal, "topic", name, "read"), name


def test_forbidden_actions_are_not_granted() -> None:
    s = _settings()
    p = resolve_principals(s)
    producer, rules, siem = p["producer"][0], p["rules"][0], p["siem"][0]
    assert not _can(s, producer, "topic", f"{PREFIX}alerts", "write")
    assert not _can(s, producer, "topic", f"{PREFIX}raw.events", "read")
    assert not _can(s, producer, "group", f"{PREFIX}enrich", "read")
    assert not _can(s, rules, "topic", f"{PREFIX}raw.events", "write")
    assert not _can(s, rules, "topic", f"{PREFIX}enrich-lineage-changelog", "write")
    assert not _can(s, rules, "topic", f"{PREFIX}enriched.events", "write")
    assert not _can(s, siem, "topic", f"{PREFIX}alerts", "write")
    assert not _can(s, siem, "topic", f"{PREFIX}raw.events", "read")
    for op in ("read", "write", "create", "describe"):
        assert not _can(s, "User:stranger", "topic", f"{PREFIX}raw.events", op)
    # but each may describe what it reads or writes (READ and WRITE imply DESCRIBE)
    assert _can(s, producer, "topic", f"{PREFIX}raw.events", "describe")
    assert _can(s, siem, "group", f"{PREFIX}siem", "describe")


def test_principals_from_configuration_and_command_line() -> None:
    s = _settings(principals={"producer": ["User:host-a", "User:host-b"]})
    p = resolve_principals(s)
    assert p["producer"] == ("User:host-a", "User:host-b")
    assert p["rules"] == ("User:eunomia-rules",)
    assert resolve_principals(s, {"producer": ["User:host-c"]})["producer"] == ("User:host-c",)
    acls = plan(s, p, ["producer"])
    assert {a.principal for a in acls} == {"User:host-a", "User:host-b"} and len(acls) == 8
    assert [(q.user, q.producer_byte_rate) for q in quotas(s, p)] == [
        ("host-a", 8 * 1024 * 1024), ("host-b", 8 * 1024 * 1024)]
    with pytest.raises(ConfigError, match="unknown role 'auditor'"):
        resolve_principals(_settings(principals={"auditor": ["User:x"]}))
    with pytest.raises(ConfigError, match="not of the form User:<name>"):
        resolve_principals(_settings(principals={"siem": ["splunk"]}))


def test_quotas_follow_the_settings() -> None:
    s = _settings(producer_byte_rate=65536, producer_request_percentage=5)
    (q,) = quotas(s, resolve_principals(s))
    assert q.user == "eunomia-producer"
    assert q.configs() == {"producer_byte_rate": 65536.0, "request_percentage": 5.0}


def test_changes_add_the_missing_and_remove_only_the_projects_stale_acls() -> None:
    s = _settings()
    p = resolve_principals(s)
    want = plan(s, p)
    stale = Acl("User:eunomia-producer", "topic", "literal", f"{PREFIX}raw.events", "read")
    gone_host = Acl("User:old-host", "topic", "literal", f"{PREFIX}raw.events", "write")
    foreign = Acl("User:eunomia-producer", "topic", "literal", "billing.events", "read")
    broad = Acl("User:ops", "topic", "prefixed", "acl", "read")  # shorter than the prefix: not ours
    others_cluster = Acl("User:ops", "cluster", "literal", CLUSTER, "alter")
    admins_extra = Acl("User:eunomia-admin", "cluster", "literal", CLUSTER, "idempotent_write")
    have = [*want[5:], stale, gone_host, foreign, broad, others_cluster, admins_extra]
    add, remove = changes(s, want, have)
    assert add == want[:5]
    assert set(remove) == {stale, gone_host, admins_extra}
    # principals of roles this run does not manage keep their ACLs
    _, remove = changes(s, want, have, keep_principals=["User:eunomia-producer"])
    assert set(remove) == {gone_host, admins_extra}
    assert changes(s, want, want) == ([], [])


def test_an_empty_prefix_is_refused_by_apply() -> None:
    s = Settings(topics=TopicSettings(prefix=""))
    with pytest.raises(ConfigError, match="prefix is empty"):
        changes(s, plan(s, resolve_principals(s)), [])


def test_authorizer_decision() -> None:
    t = "acl.raw.events"
    lit = Acl("User:a", "topic", "literal", t, "read")
    assert allowed([lit], "User:a", "topic", t, "read")
    assert allowed([lit], "User:a", "topic", t, "describe")  # implied
    assert not allowed([lit], "User:a", "topic", t, "write")
    assert not allowed([lit], "User:b", "topic", t, "read")
    assert not allowed([lit], "User:a", "group", t, "read")
    pre = Acl("User:a", "topic", "prefixed", "acl.raw.", "write")
    assert allowed([pre], "User:a", "topic", "acl.raw.syscalls", "write")
    assert not allowed([pre], "User:a", "topic", "acl.rawx", "write")
    assert allowed([Acl("User:*", "topic", "literal", "*", "all")], "User:z", "topic", t, "create")
    assert allowed([Acl("User:a", "cluster", "literal", CLUSTER, "alter_configs")], "User:a",
                   "cluster", CLUSTER, "describe_configs")
    deny = Acl("User:a", "topic", "prefixed", "acl.", "read", permission="deny")
    assert not allowed([lit, deny], "User:a", "topic", t, "read")
    # as in Kafka, a DENY covers its own operation only (implication is for ALLOW)
    assert allowed([lit, deny], "User:a", "topic", t, "describe")
    assert allowed([lit, deny], "User:root", "topic", t, "read", super_users=["User:root"])
    # no ACL on the resource at all: open only when the broker says so
    assert not allowed([], "User:a", "topic", t, "read")
    assert allowed([], "User:a", "topic", t, "read", allow_if_no_acl=True)
    assert not allowed([Acl("User:b", "topic", "literal", t, "read")], "User:a", "topic", t, "read",
                       allow_if_no_acl=True)


def test_refusals_name_exactly_what_is_missing() -> None:
    s = _settings()
    p = resolve_principals(s)
    full = plan(s, p)
    assert refusals(s, p, full) == []
    missing = Acl("User:eunomia-siem", "group", "literal", f"{PREFIX}siem", "read")
    (r,) = refusals(s, p, [a for a in full if a != missing])
    assert (r.role, r.principal, r.resource, r.name, r.operation) == (
        "siem", "User:eunomia-siem", "group", f"{PREFIX}siem", "read")
    assert "would be refused read on group acl.siem" in str(r)
    nothing = refusals(s, p, [])
    assert {r.role for r in nothing} == set(ROLES)
    # a worker's prefixed right is checked on a topic its faust app really uses
    assert ("rules", f"{PREFIX}rules-__assignor-__leader", "create") in {
        (r.role, r.name, r.operation) for r in nothing}
