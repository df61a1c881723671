"""``eunomia worker seccomp``: enriched syscall counts -> per-image allowlists on
the compacted ``seccomp.profiles`` topic, and violation alerts once frozen.

``seccomp-route`` re-keys observations by image onto ``seccomp.by-image``;
``seccomp-fold`` owns the ``images`` table there, so any number of workers keep
state partition-safe. A batch is acknowledged only once its output and table
changes are on the broker.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

import faust
from faust.types import TP

from eunomia.config import Settings
from eunomia.processors.runtime.app import flush_tables, partitioned_table
from eunomia.processors.runtime.worker import Worker
from eunomia.processors.seccomp.observation import (
    decode_observation,
    encode_observation,
    observation,
    violation_alert,
)
from eunomia.processors.seccomp.profile import (
    Observation,
    approve,
    fold,
    freeze_due,
    mark_published,
    new_state,
    profile_record,
    publish_due,
    relearn,
    violations,
)
from eunomia.schemas import CodecError
from eunomia.syscall_names import SyscallTableError

__all__ = ["SeccompWorker"]

log = logging.getLogger(__name__)
# bad input, and records no profile can hold: dead letters, never a crash
ROUTE_ERRORS = (CodecError, SyscallTableError, KeyError, TypeError, ValueError)


class SeccompWorker(Worker):
    """``learn_period_s``/``learn_containers``: how long and from how many
    containers an image learns before its set freezes (None: never freezes)."""

    def __init__(self, settings: Settings, *, debounce_s: float = 5.0, max_wait_s: float = 60.0,
                 learn_period_s: float | None = 600.0, learn_containers: int = 3,
                 tick_s: float = 0.5, batch: int = 500, **app_options: Any) -> None:
        super().__init__("seccomp", settings, **app_options)
        self.batch = batch
        self.learn_period_ns = None if learn_period_s is None else int(learn_period_s * 1e9)
        self.learn_containers = learn_containers
        self.debounce_ns, self.max_wait_ns = int(debounce_s * 1e9), int(max_wait_s * 1e9)
        self.images = partitioned_table(self.app, "images", help="learned syscall state per image")
        self.source = self.topic("enriched.events")
        self.by_image = self.topic("seccomp.by-image", internal=True,
                                   partitions=settings.topics.partitions)
        self.by_image_topic = settings.topic("seccomp.by-image")
        self.profiles_topic = settings.topic("seccomp.profiles")
        self.route_agent = self.app.agent(self.source, name="seccomp-route")(self.route)
        self.fold_agent = self.app.agent(self.by_image, name="seccomp-fold")(self.fold_images)
        self.app.timer(tick_s)(self.publish_quiet)
        self.app.on_before_shutdown.connect(self.on_shutdown)

    async def route(self, stream: faust.StreamT) -> None:
        """Agent: observations of a batch, re-keyed by image, on the broker before
        the batch is acked."""
        decode = self.decoder("enriched_event")
        async for events in stream.take_events(self.batch, within=0.05):
            admitted = await self.guard.admit(events)
            for _msg, obs in self.dlq.decoded(admitted, lambda m: observation(decode(m)), ROUTE_ERRORS):
                if obs is not None:
                    await self.by_image.send(key=obs.image.encode(), value=encode_observation(obs))
            await self.out.flush()
            await flush_tables(self.app)

    async def fold_images(self, stream: faust.StreamT) -> None:
        """Agent: fold observations into their image's state. Alerts and profiles
        are acknowledged before the state that says they were sent: a kill in
        between repeats them (identical ids) instead of losing them."""
        async for events in stream.take_events(self.batch, within=0.05):
            for ev in await self.guard.admit(events):
                control = json.loads(ev.message.value).get("control")
                if control is not None:
                    self.control(control, ev.message.key.decode(), json.loads(ev.message.value),
                                 ev.message.partition)
                else:
                    self.fold_one(decode_observation(ev.message.value), ev.message.partition)
            await self.out.flush()
            await flush_tables(self.app)

    def fold_one(self, obs: Observation, partition: int) -> None:
        now = time.time_ns()
        state = self.images.get(obs.image) or new_state(obs.image, obs.image_id, obs.arch)
        state["first_ns"] = state.get("first_ns") or obs.ts_ns
        state["frozen"] = freeze_due(state, obs.ts_ns, self.learn_period_ns, self.learn_containers,
                                     obs.container)
        bad = violations(state, obs)
        if bad:
            self.emit_alert(violation_alert(state, obs, bad))
        if state["frozen"]:
            obs = replace(obs, names=tuple(n for n in obs.names if n in state["syscalls"]))
        fold(state, obs, now)
        if publish_due(state, now, self.debounce_ns, self.max_wait_ns):
            self.publish(state, now)
        state["partition"] = partition
        self.images.write_partition = partition
        self.images[obs.image] = state

    def control(self, command: str, image: str, body: dict[str, Any], partition: int) -> None:
        """An operator's decision on an image: approve syscalls, or relearn."""
        state = self.images.get(image)
        if state is None:
            log.warning("seccomp %s for unknown image %s ignored", command, image)
            return
        now = time.time_ns()
        if command == "approve":
            added = approve(state, list(body.get("names") or []), now, now)
            log.info("seccomp %s: approved %s", image, ", ".join(added) or "nothing new")
        elif command == "relearn":
            relearn(state)
            log.info("seccomp %s: learning again", image)
        else:
            log.warning("unknown seccomp control %r for %s ignored", command, image)
            return
        if publish_due(state, now, 0, self.max_wait_ns):
            self.publish(state, now)
        self.images.write_partition = partition
        self.images[image] = state

    def publish(self, state: dict[str, Any], now: int) -> None:
        version = mark_published(state, now)
        rec = profile_record(state, time.time_ns())
        self.out.produce(self.profiles_topic, state["image"].encode(),
                         self.codec.encode("seccomp_profile", rec))
        log.info("seccomp profile %s v%d: %d syscalls", state["image"], version, len(state["published"]))

    async def publish_quiet(self) -> None:
        """Timer: publish due profiles of images on partitions this worker actively
        owns, writing their changelog partition as the fold agent would."""
        actives = self.app.assignor.assigned_actives()
        now = time.time_ns()
        for image, state in list(self.images.items()):
            p = state.get("partition")
            if p is None or TP(self.by_image_topic, p) not in actives:
                continue
            if publish_due(state, now, self.debounce_ns, self.max_wait_ns):
                self.publish(state, now)
                self.images.write_partition = p
                self.images[image] = state
        await self.out.flush()

    async def on_shutdown(self, sender: Any, **kw: Any) -> None:
        self.out.flush_blocking(30)
