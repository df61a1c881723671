"""Container metadata for the compacted ``containers`` topic, keyed
``<host_id>/<cgroup_id>`` (the v2 cgroup id BPF sees) so processors can join raw
events to containers.

With a runtime API (docker SDK; podman's compatible socket) it lists containers
and follows the event stream: ``start`` publishes a record, removal a tombstone.
Without one it says so once and recognises containers by cgroup path.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eunomia.cgroups import parse_cgroup_path
from eunomia.producer.cgroup_resolver import cgroup_id, pid_cgroup_path

__all__ = ["ContainerTracker"]

log = logging.getLogger(__name__)

_DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/podman/podman.sock")
_GONE = {"die", "destroy", "remove", "died", "cleanup"}
OnRecord = Callable[[str, dict[str, Any] | None], None]


class ContainerTracker:
    """Publishes container records and tombstones through ``on_record(key, record)``.

    ``on_record`` is called from the tracker's own thread (and from ``start``): give
    the record to the thread that owns the Publisher (e.g. a queue.SimpleQueue the
    agent loop empties), since a Publisher is not thread-safe.
    """

    def __init__(self, host_id: str, docker_host: str | None, on_record: OnRecord, *,
                 rescan_interval: float = 2.0, api_retry_s: float = 30.0) -> None:
        self.host_id = host_id
        self.docker_host = docker_host
        self.on_record = on_record
        self.rescan_interval = rescan_interval
        self.api_retry_s = api_retry_s
        self.source = "none"
        self._client: Any = None
        self._runtime = "docker"
        self._events: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._by_container: dict[str, int] = {}  # container id -> cgroup id
        self._paths: dict[int, str] = {}  # cgroup id -> cgroup path
        self._looking: set[str] = set()  # container ids being looked up
        # cgroups seen by the kernel before start() connected to the API (the
        # agent attaches probes and takes its /proc snapshot first): looked up
        # once connected, or a container that ran meanwhile would get no record
        self._early: dict[int, str] | None = {}

    # -- public --------------------------------------------------------------
    def start(self) -> None:
        """Connect, list and follow on the tracker's own thread: a runtime API
        slow to answer (podman's service starting cold) must not hold the
        agent's loop, which would leave the ring buffer unread meanwhile.
        ``connected`` is set once the first listing is published."""
        self._thread = threading.Thread(target=self._run, name="containers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = self._connect()
        with self._lock:
            self._client = client
            early, self._early = self._early or {}, None
        if client is None:
            self.source = "cgroup"
            self._rescan()
            self.connected.set()
            client = self._rescan_loop()
            if client is None:
                return
            log.warning("the container runtime API answers now: names, images and labels follow")
            with self._lock:
                self._client = client
        self.source = "api"
        since = int(time.time())
        try:
            for c in client.containers.list():
                self._publish_api(c.attrs)
        except Exception as exc:  # the event stream below retries; say it once
            log.warning("listing containers failed (%s)", str(exc).splitlines()[0][:200])
        for cg, path in early.items():
            self.observe(cg, path)
        self.connected.set()
        self._follow(since)

    def stop(self) -> None:
        self._stop.set()
        if self._events is not None:
            try:
                self._events.close()
            except Exception:  # the stream may already be closed by the server
                pass
        if self._thread is not None:
            self._thread.join(5)
        if self._client is not None:
            self._client.close()

    def observe(self, cgroup_id_: int, path: str | None) -> None:
        """A kernel event came from this cgroup. If its path names a container the
        tracker has no record of (it started, and may have exited, before the API's
        event stream said so), look it up now on another thread; the event's own
        cgroup id is used, so the record joins even when the container is gone."""
        if not path:
            return
        match = parse_cgroup_path(path)
        if match is None:  # a host cgroup
            return
        with self._lock:
            if self._early is not None:  # not connected yet
                self._early.setdefault(cgroup_id_, path)
                return
            if self._client is None:
                return
            if match.container_id in self._by_container or match.container_id in self._looking:
                return
            self._looking.add(match.container_id)
        threading.Thread(target=self._lookup, args=(match.container_id, cgroup_id_, path),
                         name="containers-lookup", daemon=True).start()

    def _lookup(self, cid: str, cg: int, path: str) -> None:
        try:
            self._publish_api(self._client.api.inspect_container(cid), known=(cg, path))
        except Exception as exc:  # removed before we asked: the cgroup path is all there is
            log.debug("container %s not found by the API: %s", cid[:12], exc)
        finally:
            with self._lock:
                self._looking.discard(cid)

    def cgroup_path(self, cgroup_id_: int) -> str | None:
        with self._lock:
            return self._paths.get(cgroup_id_)

    def known(self) -> dict[str, int]:
        """Container id -> cgroup id of the containers currently tracked."""
        with self._lock:
            return dict(self._by_container)

    # -- runtime API ---------------------------------------------------------
    def _connect(self, quiet: bool = False) -> Any:
        import docker

        warn = log.debug if quiet else log.warning
        url = self.docker_host or os.environ.get("DOCKER_HOST")
        if not url:
            url = next((f"unix://{p}" for p in _DEFAULT_SOCKETS if Path(p).exists()), None)
        if not url:
            warn("no container runtime API socket found (%s); recognising containers "
                 "by cgroup path only", ", ".join(_DEFAULT_SOCKETS))
            return None
        try:
            client = docker.DockerClient(base_url=url, timeout=10)
            version = client.version()
        except Exception as exc:
            warn("no container runtime API at %s (%s); recognising containers by cgroup "
                 "path only", url, str(exc).splitlines()[0][:200])
            return None
        names = " ".join(c.get("Name", "") for c in version.get("Components", []))
        self._runtime = "podman" if "podman" in names.lower() else "docker"
        return client

    def _follow(self, since: int) -> None:
        while not self._stop.is_set():
            try:
                self._events = self._client.events(decode=True, since=since,
                                                   filters={"type": "container"})
                for ev in self._events:
                    since = int(ev.get("time", since))
                    self._on_event(ev)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("container event stream broke (%s); reconnecting", exc)
                self._stop.wait(1.0)

    def _on_event(self, ev: dict[str, Any]) -> None:
        action = (ev.get("Action") or ev.get("status") or "").split(":")[0]
        cid = ev.get("id") or ev.get("Actor", {}).get("ID")
        if not cid:
            return
        if action == "start":
            try:
                self._publish_api(self._client.api.inspect_container(cid))
            except Exception as exc:  # removed again before we looked
                log.debug("container %s vanished before inspect: %s", cid[:12], exc)
        elif action in _GONE:
            self._tombstone(cid)

    def _publish_api(self, a: dict[str, Any], known: tuple[int, str] | None = None) -> None:
        state = a.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not pid and known is None:
            return  # not running: no cgroup to join on
        cfg = a.get("Config") or {}
        labels = {str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()}
        path = (pid_cgroup_path(pid) if pid else None) or (known[1] if known else None)
        match = parse_cgroup_path(path) if path else None
        runtime = self._runtime if "io.kubernetes.pod.uid" not in labels else "kubernetes"
        rec = self._record(
            container_id=a["Id"], name=(a.get("Name") or "").lstrip("/") or None,
            image=cfg.get("Image") or a.get("ImageName"), image_id=a.get("Image"),
            labels=labels, runtime=runtime, state=str(state.get("Status") or "running"),
            init_pid=pid, cgroup_path=path, source="api",
            pod_name=labels.get("io.kubernetes.pod.name"),
            pod_namespace=labels.get("io.kubernetes.pod.namespace"),
            pod_uid=labels.get("io.kubernetes.pod.uid") or (match.pod_uid if match else None))
        if known is not None and (not rec["cgroup_id"] or rec["cgroup_path"] == known[1]):
            rec["cgroup_id"] = known[0]  # the kernel's id, valid even after the cgroup is gone
        if not rec["cgroup_id"]:
            return  # exited before we could see its cgroup: nothing to join on
        self._emit(a["Id"], rec)

    # -- cgroup fallback -----------------------------------------------------
    def _rescan_loop(self) -> Any:
        """Recognise containers by cgroup path until stopped, asking for the
        runtime API again every ``api_retry_s`` (it may start after the agent,
        as a socket-activated podman service does); returns its client then."""
        next_try = time.monotonic() + self.api_retry_s
        while not self._stop.wait(self.rescan_interval):
            try:
                self._rescan()
            except Exception:  # a bug here must not kill the agent; keep the trace
                log.exception("cgroup rescan failed")
            if time.monotonic() >= next_try:
                next_try = time.monotonic() + self.api_retry_s
                client = self._connect(quiet=True)
                if client is not None:
                    return client
        return None

    def _rescan(self) -> None:
        """Find container cgroups among running processes; tombstone the vanished."""
        seen: dict[str, tuple[int, str, Any]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            path = pid_cgroup_path(pid)
            match = parse_cgroup_path(path) if path else None
            if match is None:
                continue
            best = seen.get(match.container_id)
            if best is None or pid < best[0]:  # the lowest pid is the closest to init
                seen[match.container_id] = (pid, path, match)
        for cid, (pid, path, match) in seen.items():
            with self._lock:
                if cid in self._by_container:
                    continue
            self._emit(cid, self._record(
                container_id=cid, runtime=match.runtime, init_pid=pid, cgroup_path=path,
                pod_uid=match.pod_uid, source="cgroup"))
        for cid in set(self.known()) - set(seen):
            self._tombstone(cid)

    # -- records -------------------------------------------------------------
    def _record(self, *, container_id: str, runtime: str, init_pid: int, cgroup_path: str | None,
                source: str, **extra: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "host_id": self.host_id, "ts_ns": time.time_ns(), "container_id": container_id,
            "name": None, "image": None, "image_id": None, "labels": {}, "runtime": runtime,
            "state": "running", "init_pid": init_pid, "cgroup_path": cgroup_path,
            "cgroup_id": cgroup_id(cgroup_path), "pod_name": None, "pod_namespace": None,
            "pod_uid": None, "source": source}
        rec.update(extra)
        return rec

    def _emit(self, cid: str, rec: dict[str, Any]) -> None:
        cg = rec["cgroup_id"]
        with self._lock:
            old = self._by_container.get(cid)
            self._by_container[cid] = cg
            if rec["cgroup_path"]:
                self._paths[cg] = rec["cgroup_path"]
        if old is not None and old != cg:
            self.on_record(self._key(old), None)
        self.on_record(self._key(cg), rec)

    def _tombstone(self, cid: str) -> None:
        with self._lock:
            cg = self._by_container.pop(cid, None)
            if cg is None:
                return
            self._paths.pop(cg, None)
        self.on_record(self._key(cg), None)

    def _key(self, cg: int) -> str:
        return f"{self.host_id}/{cg}"
