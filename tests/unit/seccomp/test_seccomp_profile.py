"""The pure per-image fold, debounce, violation and rendering logic."""

from __future__ import annotations

import json

from eunomia.processors.seccomp.profile import (
    RUNC_AFTER_SECCOMP,
    Observation,
    allowlist,
    approve,
    fold,
    freeze_due,
    is_learning,
    mark_published,
    new_state,
    profile_record,
    publish_due,
    relearn,
    render_oci,
    render_spo,
    violations,
)
from eunomia.schemas import AvroCodec

S = 1_000_000_000


def obs(names, ts=10 * S, host="h1", container="c1", image="img:1") -> Observation:
    return Observation(image=image, image_id="sha256:ab", host=host, container=container,
                       arch="x86_64", ts_ns=ts, event_id=f"{host}:{ts}", names=tuple(names))


def test_fold_is_a_union_with_first_and_last_seen_across_hosts():
    st = new_state("img:1", None, "x86_64")
    assert fold(st, obs(["read", "write"], ts=10 * S), now_wall_ns=1) == ["read", "write"]
    assert fold(st, obs(["write", "openat"], ts=20 * S, host="h2", container="c2"), 2) == ["openat"]
    assert fold(st, obs(["read"], ts=5 * S), 3) == []  # late event: widens first_seen only
    assert st["syscalls"] == {"read": [5 * S, 10 * S], "write": [10 * S, 20 * S],
                              "openat": [20 * S, 20 * S]}
    assert st["hosts"] == ["h1", "h2"] and st["containers"] == ["c1", "c2"]
    assert st["grew_ns"] == 20 * S and st["image_id"] == "sha256:ab"


def test_debounce_waits_for_quiet_but_not_forever():
    st = new_state("img:1", None, "x86_64")
    assert not publish_due(st, 100 * S, 5 * S, 60 * S)  # nothing learned yet
    fold(st, obs(["read"]), now_wall_ns=100 * S)
    assert not publish_due(st, 104 * S, 5 * S, 60 * S)
    assert publish_due(st, 105 * S, 5 * S, 60 * S)
    for t in range(101, 161):  # keeps growing every second
        fold(st, obs([f"sys{t}"]), now_wall_ns=t * S)
        if t < 160:
            assert not publish_due(st, t * S, 5 * S, 60 * S)
    assert publish_due(st, 160 * S, 5 * S, 60 * S)  # max wait reached
    assert mark_published(st, 160 * S) == 1
    assert not publish_due(st, 1000 * S, 5 * S, 60 * S)
    assert st["published"] == allowlist(st)


def test_violations_only_once_frozen_and_published_and_once_per_container():
    st = new_state("img:1", None, "x86_64")
    fold(st, obs(["read", "write"]), 1)
    assert violations(st, obs(["mkdir"])) == []  # still learning, nothing published
    mark_published(st, 2)
    assert violations(st, obs(["mkdir"])) == []  # published, but still learning
    st["frozen"] = True
    assert violations(st, obs(["read", "mkdir", "futex"])) == ["mkdir"]  # futex: runc's baseline
    assert violations(st, obs(["mkdir"])) == []
    assert violations(st, obs(["mkdir"], container="c2")) == ["mkdir"]


def test_learning_until_quiet_period_passes():
    assert is_learning(100 * S, 150 * S, 60 * S)
    assert not is_learning(100 * S, 160 * S, 60 * S)


def test_oci_profile_denies_with_eperm_on_all_x86_arches():
    prof = render_oci(["write", "read", "read"], "x86_64")
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert prof["syscalls"] == [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]


def test_spo_resource_carries_the_same_allowlist():
    spo = render_spo(["read"], "aarch64", "Quay.io/org/app:1.2", "prod", version=3)
    assert spo["kind"] == "SeccompProfile"
    assert spo["metadata"]["name"] == "quay.io-org-app-1.2"
    assert spo["metadata"]["namespace"] == "prod"
    assert spo["spec"]["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert spo["spec"]["syscalls"][0]["names"] == ["read"]


def test_profile_record_fits_the_schema_and_embeds_the_runtime_baseline():
    st = new_state("img:1", "sha256:ab", "x86_64")
    fold(st, obs(["sendfile", "read"]), 1)
    mark_published(st, 2)
    rec = profile_record(st, 3)
    back = AvroCodec().decode(AvroCodec().encode("seccomp_profile", rec), expect="seccomp_profile")
    names = json.loads(back["profile_json"])["syscalls"][0]["names"]
    assert set(names) == {"sendfile", "read"} | RUNC_AFTER_SECCOMP
    assert [s["name"] for s in back["syscalls"]] == ["read", "sendfile"]
    assert back["version"] == 1


def test_learning_period_needs_both_time_and_containers():
    st = new_state("img:1", None, "x86_64")
    st["first_ns"] = 100 * S
    fold(st, obs(["read"]), 1)
    assert not freeze_due(st, 150 * S, 60 * S, 1)  # too early
    assert freeze_due(st, 160 * S, 60 * S, 1)
    assert not freeze_due(st, 1000 * S, 60 * S, 2)  # one container so far
    fold(st, obs(["read"], container="c2"), 1)
    assert not freeze_due(st, 1000 * S, 60 * S, 2, "c2")  # c2 is not frozen in its own run
    assert freeze_due(st, 1000 * S, 60 * S, 2, "c3")
    assert not freeze_due(st, 10**6 * S, None, 1)  # learning for ever
    st["frozen"] = True
    assert freeze_due(st, 0, 60 * S, 9)  # frozen stays frozen until a relearn
    relearn(st)
    assert not st["frozen"] and not freeze_due(st, 10 * S, 60 * S, 1)


def test_an_approved_call_joins_the_set_and_alerts_again_if_revoked():
    st = new_state("img:1", None, "x86_64")
    fold(st, obs(["read"]), 1)
    mark_published(st, 2)
    st["frozen"] = True
    assert violations(st, obs(["mkdir", "chmod"])) == ["chmod", "mkdir"]
    assert approve(st, ["mkdir"], 5 * S, 3) == ["mkdir"]
    assert publish_due(st, 3, 0, 60 * S)
    mark_published(st, 3)
    assert "mkdir" in st["published"] and "chmod" not in st["published"]
    assert violations(st, obs(["mkdir", "chmod"])) == []  # chmod alerted already for c1
    assert approve(st, ["mkdir"], 6 * S, 4) == []
