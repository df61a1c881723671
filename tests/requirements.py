"""Skip-or-fail for tests that need root, BPF, podman or Kafka.

Locally such a test skips with a one-line reason; with ``EUNOMIA_REQUIRE_ALL=1``
(set by ``.ci/run``) the same condition fails the test, so CI proves it ran.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ALL = os.environ.get("EUNOMIA_REQUIRE_ALL", "") not in ("", "0", "false")


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required but unavailable (EUNOMIA_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


def require_bpf() -> None:
    require_root()
    require(os.path.isdir("/sys/kernel/tracing/events") or
            os.path.isdir("/sys/kernel/debug/tracing/events"), "needs tracefs")
    try:
        import bcc  # noqa: F401
    except ImportError:
        require(False, "needs bcc Python bindings (python3-bpfcc linked into the venv)")


def require_podman() -> None:
    require_root()
    require(shutil.which("podman") is not None, "needs podman")
