"""Syscall numbers to names per architecture, from libseccomp's own table.

runc turns a profile's names back into numbers with libseccomp, so a name taken
from it is exactly what runc will load; it is called through ``ctypes`` (no
binding package). A number it does not know resolves to ``None``: callers keep
such numbers apart rather than guess a name runc could not enforce either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

from eunomia.errors import EunomiaError

__all__ = ["SUB_ARCHES", "SyscallTableError", "number", "resolve", "scmp_arches"]


class SyscallTableError(EunomiaError):
    """libseccomp is missing or the architecture is unknown to it."""


# Kernel ``uname -m`` -> the OCI names of that architecture and the 32-bit
# sub-architectures its kernel also runs (what Docker's default profile lists in
# archMap), so a profile also covers 32-bit binaries in the image.
SUB_ARCHES: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "i686": ("SCMP_ARCH_X86",),
    "i386": ("SCMP_ARCH_X86",),
    "armv7l": ("SCMP_ARCH_ARM",),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}

# uname -m -> libseccomp's architecture name (seccomp_arch_resolve_name)
_LIB_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "i686": "x86", "i386": "x86",
             "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@cache
def _lib() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise SyscallTableError(f"libseccomp not found ({exc}); install libseccomp2") from None
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p  # malloc'd char*
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.free.argtypes = [ctypes.c_void_p]
    return lib, libc


@cache
def _token(arch: str) -> int:
    name = _LIB_ARCH.get(arch, arch)
    tok = _lib()[0].seccomp_arch_resolve_name(name.encode())
    if tok == 0:
        raise SyscallTableError(f"architecture {arch!r} is unknown to libseccomp")
    return int(tok)


@cache
def resolve(arch: str, nr: int) -> str | None:
    """Name of syscall ``nr`` on ``arch``, or None when libseccomp does not know it."""
    lib, libc = _lib()
    ptr = lib.seccomp_syscall_resolve_num_arch(_token(arch), int(nr))
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        libc.free(ptr)


@cache
def number(arch: str, name: str) -> int | None:
    """Number of syscall ``name`` on ``arch`` (None: no such syscall there)."""
    nr = _lib()[0].seccomp_syscall_resolve_name_arch(_token(arch), name.encode())
    return None if nr < 0 else int(nr)


def scmp_arches(arch: str) -> list[str]:
    """OCI ``architectures`` for a host of ``arch``, its own first."""
    try:
        return list(SUB_ARCHES[arch])
    except KeyError:
        raise SyscallTableError(f"no seccomp architectures known for {arch!r}") from None
