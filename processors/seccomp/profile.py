"""Per-image seccomp allowlists: the state fold, debounce, freeze and rendering.
Pure, so the worker, the CLI and the tests drive the same functions. Learned is
what the workload calls from its exec on (the producer does not count runc's
init); added is ``RUNC_AFTER_SECCOMP``, the calls runc makes between loading the
filter and exec'ing the workload, without which a learned profile cannot start
the container.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from eunomia.syscall_names import scmp_arches

__all__ = [
    "EPERM",
    "MAX_ALERTED",
    "RUNC_AFTER_SECCOMP",
    "Observation",
    "allowlist",
    "approve",
    "fold",
    "freeze_due",
    "is_learning",
    "mark_published",
    "new_state",
    "profile_record",
    "publish_due",
    "relearn",
    "render_oci",
    "render_spo",
    "violations",
]

EPERM = 1
MAX_ALERTED = 512  # distinct (container, syscall) alerts remembered per image

RUNC_AFTER_SECCOMP: frozenset[str] = frozenset({
    # finalizeNamespace: close inherited fds (/proc/self/fd must be procfs)
    "openat", "getdents64", "fstatfs", "fcntl", "close", "newfstatat",
    # setupUser: stat stdio and /dev/null, then drop to the configured ids
    "fstat", "setgroups", "setgid", "setuid", "getppid",
    # capabilities and the cwd check, then the exec fifo handshake
    "capget", "capset", "prctl", "chdir", "getcwd", "read", "write",
    # the exec itself (runc checks the binary with faccessat2 first)
    "execve", "faccessat2",
    # Go runtime of runc's threads: scheduler, signals, memory, exit
    "futex", "nanosleep", "sched_yield", "rt_sigreturn", "rt_sigprocmask", "rt_sigaction",
    "sigaltstack", "mmap", "munmap", "madvise", "mprotect", "getpid", "gettid", "tgkill",
    "exit_group", "exit",
})


@dataclass(frozen=True)
class Observation:
    """What one enriched syscall_counts record tells about an image."""

    image: str
    image_id: str | None
    host: str
    container: str
    arch: str
    ts_ns: int
    event_id: str
    names: tuple[str, ...]
    unresolved: tuple[int, ...] = ()
    pid: int = 0
    process: str = ""
    exec_id: str = ""


def new_state(image: str, image_id: str | None, arch: str) -> dict[str, Any]:
    return {"image": image, "image_id": image_id, "arch": arch, "syscalls": {},
            "unresolved": [], "hosts": [], "containers": [], "grew_ns": 0,
            "changed_wall_ns": 0, "dirty_since_wall_ns": 0, "version": 0,
            "published": [], "published_wall_ns": 0, "alerted": {}, "first_ns": 0,
            "frozen": False}


def _add_sorted(items: list[Any], value: Any) -> None:
    if value not in items:
        items.append(value)
        items.sort()


def fold(state: dict[str, Any], obs: Observation, now_wall_ns: int) -> list[str]:
    """Add one observation; returns the syscall names new to the image."""
    if obs.image_id and not state.get("image_id"):
        state["image_id"] = obs.image_id
    _add_sorted(state["hosts"], obs.host)
    _add_sorted(state["containers"], obs.container)
    for nr in obs.unresolved:
        _add_sorted(state["unresolved"], nr)
    seen = state["syscalls"]
    new: list[str] = []
    for name in obs.names:
        span = seen.get(name)
        if span is None:
            seen[name] = [obs.ts_ns, obs.ts_ns]
            new.append(name)
        else:
            span[0] = min(span[0], obs.ts_ns)
            span[1] = max(span[1], obs.ts_ns)
    if new:
        state["grew_ns"] = max(state["grew_ns"], obs.ts_ns)
        state["changed_wall_ns"] = now_wall_ns
        if not state["dirty_since_wall_ns"]:
            state["dirty_since_wall_ns"] = now_wall_ns
    return sorted(new)


def publish_due(state: dict[str, Any], now_wall_ns: int, debounce_ns: int, max_wait_ns: int) -> bool:
    """Publish once the set stopped growing for ``debounce_ns``, or at the latest
    ``max_wait_ns`` after the first unpublished growth (a container that keeps
    finding new syscalls still gets a profile)."""
    since = state["dirty_since_wall_ns"]
    if not since:
        return False
    return (now_wall_ns - state["changed_wall_ns"] >= debounce_ns
            or now_wall_ns - since >= max_wait_ns)


def allowlist(state: dict[str, Any]) -> list[str]:
    """Learned names plus what runc needs after it loads the filter."""
    return sorted(set(state["syscalls"]) | RUNC_AFTER_SECCOMP)


def mark_published(state: dict[str, Any], now_wall_ns: int) -> int:
    state["version"] += 1
    state["published"] = allowlist(state)
    state["published_wall_ns"] = now_wall_ns
    state["dirty_since_wall_ns"] = 0
    return int(state["version"])


def freeze_due(state: dict[str, Any], ts_ns: int, period_ns: int | None, containers: int,
               current: str = "") -> bool:
    """The learning period is over at event time ``ts_ns``: ``period_ns`` since the
    image's first observation and at least ``containers`` containers other than
    the ``current`` one seen (both), so a container is never frozen in the middle
    of the run that counts it. ``period_ns`` None never freezes (learn for ever)."""
    if state.get("frozen") or period_ns is None:
        return bool(state.get("frozen"))
    first = state.get("first_ns") or ts_ns
    others = sum(1 for c in state["containers"] if c != current)
    return ts_ns - first >= period_ns and others >= containers


def approve(state: dict[str, Any], names: list[str], ts_ns: int, now_wall_ns: int) -> list[str]:
    """Add ``names`` to a (frozen) image's set by an operator's decision; the
    profile is republished as if it had grown."""
    new = [n for n in sorted(set(names)) if n not in state["syscalls"]]
    for n in new:
        state["syscalls"][n] = [ts_ns, ts_ns]
    if new:
        state["changed_wall_ns"] = now_wall_ns
        state["dirty_since_wall_ns"] = state["dirty_since_wall_ns"] or now_wall_ns
    for container, done in list(state["alerted"].items()):
        state["alerted"][container] = [n for n in done if n not in names]
    return new


def relearn(state: dict[str, Any]) -> None:
    """Start a new learning period: the set grows again until it freezes anew."""
    state["frozen"] = False
    state["first_ns"] = 0


def violations(state: dict[str, Any], obs: Observation) -> list[str]:
    """Syscalls of ``obs`` outside the published profile not yet alerted for
    this container (each pair alerts once; bounded memory per image). Only a
    frozen (stable) profile has violations: while it learns, new calls are
    the workload's normal behaviour."""
    if not state["version"] or not state.get("frozen"):
        return []
    allowed = set(state["published"])
    alerted = state["alerted"]
    done = set(alerted.get(obs.container, ()))
    out = sorted(n for n in set(obs.names) if n not in allowed and n not in done)
    if out and sum(len(v) for v in alerted.values()) < MAX_ALERTED:
        alerted[obs.container] = sorted(done | set(out))
    return out


def is_learning(grew_ns: int, now_ns: int, quiet_ns: int) -> bool:
    """Still learning: the set grew within the quiet period."""
    return now_ns - grew_ns < quiet_ns


def render_oci(names: list[str], arch: str) -> dict[str, Any]:
    """OCI/Docker seccomp JSON: deny with EPERM unless listed."""
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "architectures": scmp_arches(arch),
            "syscalls": [{"names": sorted(set(names)), "action": "SCMP_ACT_ALLOW"}]}


def _k8s_name(image: str) -> str:
    """A DNS-1123 subdomain from an image reference (registry/repo:tag)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", image.lower()).strip("-.")
    return (name or "image")[:253]


def render_spo(names: list[str], arch: str, image: str, namespace: str | None = None,
               version: int = 0) -> dict[str, Any]:
    """A Security Profiles Operator ``SeccompProfile`` resource (v1beta1)."""
    meta: dict[str, Any] = {"name": _k8s_name(image),
                            "annotations": {"eunomia.io/image": image,
                                            "eunomia.io/profile-version": str(version)}}
    if namespace:
        meta["namespace"] = namespace
    oci = render_oci(names, arch)
    return {"apiVersion": "security-profiles-operator.x-k8s.io/v1beta1", "kind": "SeccompProfile",
            "metadata": meta,
            "spec": {"defaultAction": oci["defaultAction"], "architectures": oci["architectures"],
                     "syscalls": oci["syscalls"]}}


def profile_record(state: dict[str, Any], now_ns: int) -> dict[str, Any]:
    """The ``seccomp_profile`` Avro record of the published state."""
    return {"image": state["image"], "image_id": state["image_id"], "version": state["version"],
            "ts_ns": now_ns, "grew_ns": state["grew_ns"], "arch": state["arch"],
            "syscalls": [{"name": n, "first_seen_ns": s[0], "last_seen_ns": s[1]}
                         for n, s in sorted(state["syscalls"].items())],
            "hosts": list(state["hosts"]), "containers": list(state["containers"]),
            "profile_json": json.dumps(render_oci(state["published"], state["arch"]),
                                       indent=2, sort_keys=True)}
