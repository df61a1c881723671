"""``eunomia seccomp export|list``.

export and list read the compacted ``seccomp.profiles`` topic from the start
to its end offsets: the latest record per image is the current profile.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from eunomia.errors import EunomiaError

__all__ = ["ProfileNotFound", "read_profiles", "register"]


class ProfileNotFound(EunomiaError):
    """No profile has been published for the requested image."""


def read_profiles(settings: Any, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """image -> latest seccomp_profile record (highest version wins)."""
    from confluent_kafka import Consumer, TopicPartition

    from eunomia.schemas import CodecError, codec_for

    name = settings.topic("seccomp.profiles")
    from eunomia.kafka.reach import ClientErrors, metadata

    errors = ClientErrors()
    consumer = Consumer({**errors.config(settings), "group.id": f"eunomia-cli-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    codec = codec_for(settings)
    latest: dict[str, dict[str, Any]] = {}
    try:
        meta = metadata(consumer, errors, settings, name, timeout=timeout)
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None:
            return {}
        ends: dict[int, int] = {}
        tps = []
        for p in topic.partitions:
            lo, hi = _watermarks(consumer, TopicPartition(name, p), timeout)
            if hi > lo:
                ends[p] = hi
                tps.append(TopicPartition(name, p, lo))
        if not tps:
            return {}
        consumer.assign(tps)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
            if msg.value() is None:  # tombstone: the image's profile was deleted
                latest.pop(msg.key().decode(), None)
                continue
            try:
                rec = codec.decode(msg.value(), expect="seccomp_profile")
            except CodecError:
                continue
            old = latest.get(rec["image"])
            if old is None or rec["version"] >= old["version"]:
                latest[rec["image"]] = rec
    finally:
        consumer.close()
    return latest


def _watermarks(consumer: Any, tp: Any, timeout: float) -> tuple[int, int]:
    """Watermarks, retried while a just-created partition has no leader yet."""
    from confluent_kafka import KafkaException

    from eunomia.errors import BrokerUnavailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=timeout)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"offsets of {tp.topic}[{tp.partition}]: "
                                        f"{exc.args[0].str()}") from None
            time.sleep(0.2)


def _find(profiles: dict[str, dict[str, Any]], image: str) -> dict[str, Any]:
    if image in profiles:
        return profiles[image]
    for rec in profiles.values():
        if rec["image_id"] and (rec["image_id"] == image or rec["image_id"].startswith(image)):
            return rec
    known = ", ".join(sorted(profiles)) or "none"
    raise ProfileNotFound(f"no seccomp profile published for {image!r} (known: {known})")


def _settings() -> Any:
    from eunomia.config import load_settings

    return load_settings()


def _control(image: str, body: dict[str, Any]) -> None:
    """A control record for the seccomp worker that owns ``image``'s state."""
    from confluent_kafka import Producer

    settings = _settings()
    p = Producer(settings.kafka.librdkafka())
    p.produce(settings.topic("seccomp.by-image"), json.dumps(body).encode(), image.encode())
    if p.flush(30):
        raise EunomiaError(f"could not deliver the seccomp control record for {image} in 30 s")


def register(app: typer.Typer, _worker_app: typer.Typer) -> None:
    seccomp_app = typer.Typer(no_args_is_help=True, help="Learned per-image seccomp allowlists.")
    app.add_typer(seccomp_app, name="seccomp")

    @seccomp_app.command("export")
    def export(image: str = typer.Argument(..., help="image name (as published) or image id"),
               fmt: str = typer.Option("oci", "--format", help="oci (Docker/podman JSON) or spo "
                                       "(Security Profiles Operator SeccompProfile YAML)"),
               out: Path | None = typer.Option(None, "--out", help="write here instead of stdout"),
               namespace: str | None = typer.Option(None, "--namespace", help="spo: namespace")) -> None:
        """Print or write the latest profile of IMAGE."""
        from eunomia.config import load_settings
        from eunomia.errors import ConfigError
        from eunomia.processors.seccomp.profile import render_spo

        if fmt not in ("oci", "spo"):
            raise ConfigError(f"--format must be oci or spo, got {fmt!r}")
        rec = _find(read_profiles(load_settings()), image)
        if fmt == "oci":
            text = rec["profile_json"] + "\n"
        else:
            import yaml

            oci = json.loads(rec["profile_json"])
            spo = render_spo(oci["syscalls"][0]["names"], rec["arch"], rec["image"], namespace,
                             rec["version"])
            text = yaml.safe_dump(spo, sort_keys=False)
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text)

    @seccomp_app.command("approve")
    def approve(image: str = typer.Argument(..., help="image name as published"),
                syscalls: list[str] = typer.Argument(..., help="syscall names to allow")) -> None:
        """Allow SYSCALLS in IMAGE's frozen profile (a violation judged benign)."""
        from eunomia.errors import ConfigError
        from eunomia.syscall_names import number

        rec = _find(read_profiles(_settings()), image)
        unknown = [n for n in syscalls if number(rec["arch"], n) is None]
        if unknown:
            raise ConfigError(f"unknown syscall name(s) for {rec['arch']}: {', '.join(unknown)}")
        _control(rec["image"], {"control": "approve", "names": sorted(set(syscalls))})
        typer.echo(f"approved for {rec['image']}: {', '.join(sorted(set(syscalls)))}")

    @seccomp_app.command("relearn")
    def relearn(image: str = typer.Argument(..., help="image name as published")) -> None:
        """Start a new learning period for IMAGE: its set grows again, then freezes."""
        rec = _find(read_profiles(_settings()), image)
        _control(rec["image"], {"control": "relearn"})
        typer.echo(f"{rec['image']} learns again")

    @seccomp_app.command("list")
    def list_(quiet: float = typer.Option(300.0, "--quiet-period", help="seconds without growth "
                                          "after which an image counts as stable")) -> None:
        """Images with published profiles, their syscall counts and learning state."""
        from rich.console import Console
        from rich.table import Table

        from eunomia.config import load_settings
        from eunomia.processors.seccomp.profile import is_learning

        table = Table("image", "version", "learned", "allowed", "hosts", "containers", "state")
        now = time.time_ns()
        for image, rec in sorted(read_profiles(load_settings()).items()):
            allowed = len(json.loads(rec["profile_json"])["syscalls"][0]["names"])
            state = "learning" if is_learning(rec["grew_ns"], now, int(quiet * 1e9)) else "stable"
            table.add_row(image, str(rec["version"]), str(len(rec["syscalls"])), str(allowed),
                          str(len(rec["hosts"])), str(len(rec["containers"])), state)
        Console().print(table)
