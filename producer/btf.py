"""Struct member offsets of the RUNNING kernel, read from its BTF.

The kernel headers bcc compiles against may belong to another kernel, so the
probes read raw memory at offsets this module takes from /sys/kernel/btf/vmlinux
and hands to bcc as ``-D`` cflags. Only the part of the BTF format that member
offsets need is parsed (kernel Documentation/bpf/btf.rst).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eunomia.errors import EunomiaError

__all__ = ["BTF", "BtfError", "kernel_offsets", "offset_cflags"]

VMLINUX = Path("/sys/kernel/btf/vmlinux")

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19
_MODIFIERS = {_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG}


class BtfError(EunomiaError):
    """The kernel's BTF is missing or lacks a member the probes need."""


@dataclass(slots=True)
class _Type:
    kind: int
    name: str
    size_or_type: int
    members: list[tuple[str, int, int]] | None = None  # (name, type id, bit offset)
    elem: int = 0  # array element type
    nelems: int = 0


class BTF:
    """Types of one BTF blob, indexed by name for structs and unions."""

    def __init__(self, data: bytes) -> None:
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != 0xEB9F:
            raise BtfError("not a BTF blob (bad magic)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        base = hdr_len
        strings = data[base + str_off: base + str_off + str_len]

        def name_at(off: int) -> str:
            end = strings.index(b"\0", off)
            return strings[off:end].decode()

        self.types: list[_Type] = [_Type(0, "void", 0)]
        self.by_name: dict[str, int] = {}
        pos, end = base + type_off, base + type_off + type_len
        while pos < end:
            name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            t = _Type(kind, "", size_or_type)
            if kind in (_STRUCT, _UNION):
                t.name = name_at(name_off)
                t.members = []
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", data, pos + 12 * i)
                    bit_off = m_off & 0xFFFFFF if kflag else m_off
                    t.members.append((name_at(m_name), m_type, bit_off))
                pos += 12 * vlen
                if t.name:
                    self.by_name.setdefault(t.name, len(self.types))
            elif kind == _ARRAY:
                t.elem, _idx, t.nelems = struct.unpack_from("<III", data, pos)
                pos += 12
            elif kind in (_INT, _VAR, _DECL_TAG):
                pos += 4
            elif kind in (_ENUM, _FUNC_PROTO):
                pos += 8 * vlen
            elif kind in (_DATASEC, _ENUM64):
                pos += 12 * vlen
            elif kind == _TYPEDEF:
                t.name = name_at(name_off)
            self.types.append(t)

    def _resolve(self, tid: int) -> _Type:
        t = self.types[tid]
        while t.kind in _MODIFIERS:
            t = self.types[t.size_or_type]
        return t

    def sizeof(self, tid: int) -> int:
        t = self._resolve(tid)
        if t.kind == _ARRAY:
            return self.sizeof(t.elem) * t.nelems
        if t.kind == _PTR:
            return 8
        return t.size_or_type

    def _find(self, tid: int, member: str) -> tuple[int, int] | None:
        """(byte offset, type id) of ``member``, looking through anonymous
        structs and unions as C does."""
        t = self._resolve(tid)
        for name, mtype, bit_off in t.members or ():
            if name == member:
                return bit_off // 8, mtype
            if not name and self._resolve(mtype).kind in (_STRUCT, _UNION):
                inner = self._find(mtype, member)
                if inner is not None:
                    return bit_off // 8 + inner[0], inner[1]
        return None

    def offsetof(self, struct_name: str, path: str) -> int:
        """Byte offset of a dotted member path, e.g. ``sock.__sk_common.skc_family``."""
        tid = self.by_name.get(struct_name)
        if tid is None:
            raise BtfError(f"kernel BTF has no struct {struct_name}")
        total = 0
        for part in path.split("."):
            found = self._find(tid, part)
            if found is None:
                raise BtfError(f"kernel BTF: struct {struct_name} has no member {path}")
            total += found[0]
            tid = found[1]
        return total

    def struct_size(self, struct_name: str) -> int:
        tid = self.by_name.get(struct_name)
        if tid is None:
            raise BtfError(f"kernel BTF has no struct {struct_name}")
        return self.sizeof(tid)


# macro name -> (struct, member path); the probes use only these
OFFSETS: dict[str, tuple[str, str]] = {
    "TASK_REAL_PARENT": ("task_struct", "real_parent"),
    "TASK_GROUP_LEADER": ("task_struct", "group_leader"),
    "TASK_TGID": ("task_struct", "tgid"),
    "TASK_PID": ("task_struct", "pid"),
    "TASK_START_BOOTTIME": ("task_struct", "start_boottime"),
    "TASK_NSPROXY": ("task_struct", "nsproxy"),
    "TASK_REAL_CRED": ("task_struct", "real_cred"),
    "TASK_MM": ("task_struct", "mm"),
    "TASK_EXIT_CODE": ("task_struct", "exit_code"),
    "TASK_THREAD_PID": ("task_struct", "thread_pid"),
    "TASK_FILES": ("task_struct", "files"),
    "TASK_COMM": ("task_struct", "comm"),
    "TASK_CGROUPS": ("task_struct", "cgroups"),
    "NSPROXY_UTS": ("nsproxy", "uts_ns"),
    "NSPROXY_IPC": ("nsproxy", "ipc_ns"),
    "NSPROXY_MNT": ("nsproxy", "mnt_ns"),
    "NSPROXY_NET": ("nsproxy", "net_ns"),
    "NSPROXY_CGROUP": ("nsproxy", "cgroup_ns"),
    "UTS_NS_INUM": ("uts_namespace", "ns.inum"),
    "IPC_NS_INUM": ("ipc_namespace", "ns.inum"),
    "MNT_NS_INUM": ("mnt_namespace", "ns.inum"),
    "NET_NS_INUM": ("net", "ns.inum"),
    "CGROUP_NS_INUM": ("cgroup_namespace", "ns.inum"),
    "PID_NS_INUM": ("pid_namespace", "ns.inum"),
    "USER_NS_INUM": ("user_namespace", "ns.inum"),
    "CRED_USER_NS": ("cred", "user_ns"),
    "PID_LEVEL": ("pid", "level"),
    "PID_NUMBERS": ("pid", "numbers"),
    "UPID_NS": ("upid", "ns"),
    "UPID_NR": ("upid", "nr"),
    "MM_EXE_FILE": ("mm_struct", "exe_file"),
    "FILE_F_PATH_DENTRY": ("file", "f_path.dentry"),
    "DENTRY_D_NAME_NAME": ("dentry", "d_name.name"),
    "INODE_I_MODE": ("inode", "i_mode"),
    "INODE_I_SB": ("inode", "i_sb"),
    "SB_S_MAGIC": ("super_block", "s_magic"),
    "MM_ARG_START": ("mm_struct", "arg_start"),
    "MM_ARG_END": ("mm_struct", "arg_end"),
    "FILES_FDT": ("files_struct", "fdt"),
    "FDT_FD": ("fdtable", "fd"),
    "FDT_MAX_FDS": ("fdtable", "max_fds"),
    "FILE_PRIVATE_DATA": ("file", "private_data"),
    "SOCKET_SK": ("socket", "sk"),
    "SK_FAMILY": ("sock", "__sk_common.skc_family"),
    "SK_NUM": ("sock", "__sk_common.skc_num"),
    "SK_DPORT": ("sock", "__sk_common.skc_dport"),
    "SK_RCV_SADDR": ("sock", "__sk_common.skc_rcv_saddr"),
    "SK_DADDR": ("sock", "__sk_common.skc_daddr"),
    "SK_V6_RCV_SADDR": ("sock", "__sk_common.skc_v6_rcv_saddr"),
    "SK_V6_DADDR": ("sock", "__sk_common.skc_v6_daddr"),
    "SK_PROTOCOL": ("sock", "sk_protocol"),
    "SIGNAL_OOM_SCORE_ADJ": ("signal_struct", "oom_score_adj"),
    "TASK_SIGNAL": ("task_struct", "signal"),
    "CSS_SET_DFL_CGRP": ("css_set", "dfl_cgrp"),
    "CGROUP_KN": ("cgroup", "kn"),
    "KERNFS_NODE_ID": ("kernfs_node", "id"),
    "CRED_UID": ("cred", "uid"),
    "CRED_GID": ("cred", "gid"),
    "MM_TOTAL_VM": ("mm_struct", "total_vm"),
    "MM_RSS_STAT": ("mm_struct", "rss_stat"),
    "MM_PGTABLES_BYTES": ("mm_struct", "pgtables_bytes"),
    "PERCPU_COUNTER_COUNT": ("percpu_counter", "count"),
    "FILE_F_INODE": ("file", "f_inode"),
    "INODE_I_INO": ("inode", "i_ino"),
    "TASK_SELF_EXEC_ID": ("task_struct", "self_exec_id"),
    "PT_REGS_ORIG_AX": ("pt_regs", "orig_ax"),
    "PT_REGS_DI": ("pt_regs", "di"),
    "PT_REGS_SI": ("pt_regs", "si"),
    "PT_REGS_DX": ("pt_regs", "dx"),
}
SIZES: dict[str, str] = {"UPID": "upid", "PERCPU_COUNTER": "percpu_counter"}
# overlayfs may be a module whose types are not in vmlinux: without them an exe
# on overlay is never reported as from the upper layer (the offset reads 0)
OPTIONAL_OFFSETS: dict[str, tuple[str, str]] = {
    "OVL_INODE_VFS_INODE": ("ovl_inode", "vfs_inode"),
    "OVL_INODE_UPPERDENTRY": ("ovl_inode", "__upperdentry"),
}


@cache
def load(path: Path = VMLINUX) -> BTF:
    try:
        return BTF(path.read_bytes())
    except OSError as exc:
        raise BtfError(f"cannot read kernel BTF at {path} ({exc.strerror}): the kernel needs "
                       "CONFIG_DEBUG_INFO_BTF") from exc


@cache
def kernel_offsets(path: Path = VMLINUX) -> dict[str, int]:
    """Every offset macro the probes use, for the running kernel."""
    btf = load(path)
    out = {f"OFF_{name}": btf.offsetof(s, m) for name, (s, m) in OFFSETS.items()}
    out.update({f"SIZEOF_{name}": btf.struct_size(s) for name, s in SIZES.items()})
    for name, (s, m) in OPTIONAL_OFFSETS.items():
        try:
            out[f"OFF_{name}"] = btf.offsetof(s, m)
        except BtfError:
            out["OFF_OVL_INODE_VFS_INODE"] = out["OFF_OVL_INODE_UPPERDENTRY"] = 0
            break
    return out


def offset_cflags(path: Path = VMLINUX) -> list[str]:
    return [f"-D{k}={v}" for k, v in sorted(kernel_offsets(path).items())]
