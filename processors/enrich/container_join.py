"""The containers side of the stream-table join, as pure logic.

``ContainerDirectory`` holds the latest record per ``host_id/cgroup_id`` from the
compacted ``containers`` topic; ``identify`` turns it, or failing that the
cgroup path, into an enriched event's container fields, or says "unknown yet"
so the caller holds the event.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from eunomia.cgroups import parse_cgroup_path

__all__ = ["ContainerDirectory", "Identity", "container_key", "identify"]

K8S_NAME = "io.kubernetes.pod.name"
K8S_NAMESPACE = "io.kubernetes.pod.namespace"
K8S_UID = "io.kubernetes.pod.uid"

# (container fields, orchestrator fields or None, container id for the output key)
Identity = tuple[dict[str, Any], dict[str, Any] | None, str]


def container_key(host_id: str, cgroup_id: int) -> str:
    """Key of the containers topic and of held events."""
    return f"{host_id}/{cgroup_id}"


class ContainerDirectory:
    """Latest container record per ``host_id/cgroup_id``; small enough to hold whole.
    A removed container is remembered a little longer (``retired``) so late events
    of a container that just exited are still enriched."""

    def __init__(self, retired_max: int = 4096) -> None:
        self.live: dict[str, dict[str, Any]] = {}
        self.retired: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.retired_max = retired_max
        self._identity: dict[str, Identity] = {}

    def apply(self, key: str, record: dict[str, Any] | None) -> None:
        """One message of the containers topic (``record`` None: tombstone)."""
        self._identity.pop(key, None)
        if record is None:
            old = self.live.pop(key, None)
            if old is not None:
                self.retired[key] = old
                while len(self.retired) > self.retired_max:
                    self.retired.popitem(last=False)
            return
        self.retired.pop(key, None)
        self.live[key] = record

    def get(self, key: str) -> dict[str, Any] | None:
        rec = self.live.get(key)
        return rec if rec is not None else self.retired.get(key)

    def identity(self, key: str) -> Identity | None:
        """The enriched fields of a known container (cached: it is per event)."""
        ident = self._identity.get(key)
        if ident is None:
            rec = self.get(key)
            if rec is None:
                return None
            ident = _from_record(rec)
            self._identity[key] = ident
        return ident


def _from_record(rec: dict[str, Any]) -> Identity:
    labels = dict(rec.get("labels") or {})
    ns = rec.get("pod_namespace") or labels.get(K8S_NAMESPACE)
    pod = rec.get("pod_name") or labels.get(K8S_NAME)
    uid = rec.get("pod_uid") or labels.get(K8S_UID)
    orch = {"namespace": ns, "pod_name": pod, "pod_uid": uid} if (ns or pod or uid) else None
    cid = rec["container_id"] or "host"
    container = {"id": cid, "name": rec.get("name"), "image_name": rec.get("image"),
                 "image_id": rec.get("image_id"), "runtime": rec.get("runtime"),
                 "labels": labels, "cgroup_id": rec["cgroup_id"],
                 "cgroup_path": rec.get("cgroup_path"), "metadata_complete": True}
    return container, orch, cid


def identify(directory: ContainerDirectory, key: str, cgroup_id: int, cgroup_path: str | None,
             *, final: bool) -> Identity | None:
    """Container fields of an event; ``None`` means "hold it, metadata may come".

    Host processes never wait. With ``final`` (grace period over) the cgroup path
    gives what it can and ``metadata_complete`` is false.
    """
    ident = directory.identity(key)
    if ident is not None:
        return ident
    parsed = parse_cgroup_path(cgroup_path) if cgroup_path else None
    if cgroup_path and parsed is None:  # a host cgroup
        return ({"id": "host", "name": None, "image_name": None, "image_id": None,
                 "runtime": None, "labels": {}, "cgroup_id": cgroup_id,
                 "cgroup_path": cgroup_path, "metadata_complete": True}, None, "host")
    if not final:
        return None
    cid = parsed.container_id if parsed is not None else f"cgroup-{cgroup_id}"
    orch = {"namespace": None, "pod_name": None, "pod_uid": parsed.pod_uid} \
        if parsed is not None and parsed.pod_uid else None
    return ({"id": cid, "name": None, "image_name": None, "image_id": None,
             "runtime": parsed.runtime if parsed else None, "labels": {}, "cgroup_id": cgroup_id,
             "cgroup_path": cgroup_path, "metadata_complete": False}, orch, cid)
