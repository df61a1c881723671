"""Polling for a condition a subprocess or the broker makes true eventually."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(pred: Callable[[], T], what: str, timeout: float = 90.0) -> T:
    """``pred()``'s first truthy value; the test fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")
