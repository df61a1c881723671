"""Numbers to names through libseccomp, per architecture."""

from __future__ import annotations

import pytest

from eunomia.syscall_names import SyscallTableError, number, resolve, scmp_arches


def test_x86_64_and_its_32_bit_sub_architecture_differ():
    assert resolve("x86_64", 0) == "read"
    assert resolve("x86_64", 83) == "mkdir"
    assert resolve("x86", 0) == "restart_syscall"  # i386 numbering
    assert number("x86", "mkdir") == 39
    assert resolve("aarch64", 63) == "read"


def test_unknown_numbers_resolve_to_none_not_a_guess():
    assert resolve("x86_64", 99999) is None
    assert number("x86_64", "no_such_call") is None


def test_arches_and_errors():
    assert scmp_arches("x86_64") == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    with pytest.raises(SyscallTableError):
        scmp_arches("pdp11")
    with pytest.raises(SyscallTableError):
        resolve("pdp11", 0)
