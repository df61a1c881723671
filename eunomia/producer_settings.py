"""Options of ``eunomia producer`` (``producer:`` in the YAML file,
``EUNOMIA_PRODUCER__*`` in the environment).

Defaults watch what an attacker in a container touches first: credentials are
reported on any open, system directories on writes only, so an ordinary host
does not flood the bus.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

__all__ = ["GROUP_NAMES", "ProducerSettings"]

GROUP_NAMES = ("process", "file", "network", "priv", "syscalls", "signal", "oom", "fileio")


def _power_of_two(name: str, v: int, lo: int, hi: int) -> int:
    if v < lo or v > hi or v & (v - 1):
        raise ValueError(f"{name} must be a power of two between {lo} and {hi}, got {v}")
    return v


class ProducerSettings(BaseModel):
    # fileio is opt-in: it runs on every read and write of the host
    probes: list[str] = Field(default_factory=lambda: ["process", "file", "network", "priv",
                                                       "syscalls", "signal", "oom"])
    # loaded groups switched off; a SIGHUP that changes this list switches them in
    # place (programs stay attached: no restart, nothing in flight lost)
    disabled_probes: list[str] = Field(default_factory=list)
    # signal group: publish every generated signal instead of only those that
    # cross a container or process-tree boundary or are fatal
    signal_all: bool = False
    # any open under these is reported
    read_prefixes: list[str] = Field(default_factory=lambda: [
        "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/ssh_host_", "/root/.ssh/",
        "/var/run/secrets/kubernetes.io/", "/run/secrets/kubernetes.io/"])
    # opens with write intent under these are reported
    write_prefixes: list[str] = Field(default_factory=lambda: [
        "/etc/", "/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/lib/", "/usr/local/bin/",
        "/lib/", "/boot/", "/root/", "/var/spool/cron/"])
    path_max: int = 256
    argv_size: int = 512
    str_arg_len: int = Field(default=128, ge=16, le=256)
    ringbuf_pages: int = 2048
    interval_s: float = Field(default=1.0, gt=0.05, le=60)
    spool_dir: Path = Path("/var/lib/eunomia/spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    docker_host: str | None = None  # default: DOCKER_HOST, else the usual sockets
    containers: bool = True
    proc_snapshot: bool = True
    metrics_port: int | None = None  # default: the top-level metrics_port

    @field_validator("probes", "disabled_probes")
    @classmethod
    def _known_probes(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in GROUP_NAMES]
        if bad:
            raise ValueError(f"unknown probe group(s) {bad}; known: {', '.join(GROUP_NAMES)}")
        return list(dict.fromkeys(v))

    @field_validator("read_prefixes", "write_prefixes")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/") or len(p.encode()) > 64:
                raise ValueError(f"path prefix {p!r} must be absolute and at most 64 bytes")
        return v

    @field_validator("path_max")
    @classmethod
    def _path_max(cls, v: int) -> int:
        return _power_of_two("path_max", v, 64, 1024)

    @field_validator("argv_size")
    @classmethod
    def _argv_size(cls, v: int) -> int:
        return _power_of_two("argv_size", v, 64, 2048)

    @field_validator("ringbuf_pages")
    @classmethod
    def _ringbuf_pages(cls, v: int) -> int:
        return _power_of_two("ringbuf_pages", v, 16, 65536)
