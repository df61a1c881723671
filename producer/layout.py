"""The wire layout of bpf/events.h, computed from the header itself.

The C header is the single definition of every record: this module parses its
enums and structs and lays them out with the C rules, so the decoder never
carries a hand-copied struct; a test compares every offset with the C compiler's.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

__all__ = ["Layout", "Member", "header_text", "parse_enums", "parse_structs"]

SCALARS = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s8": "b", "s16": "h", "s32": "i",
           "s64": "q", "char": "c"}
_ENUM = re.compile(r"enum\s+(\w+)\s*\{(.*?)\};", re.S)
_STRUCT = re.compile(r"^struct\s+(\w+)\s*\{\n(.*?)^\};", re.S | re.M)
_MEMBER = re.compile(r"^\s*(struct\s+\w+|\w+)\s+(\w+)(?:\[(\w+)\])?;\s*$")


@dataclass(frozen=True)
class Member:
    name: str
    ctype: str
    offset: int
    size: int
    count: int  # array length, 1 for a scalar


@dataclass
class Layout:
    name: str
    size: int
    align: int
    members: list[Member] = field(default_factory=list)

    def offset(self, path: str) -> int:
        return self.member(path).offset

    def member(self, path: str) -> Member:
        for m in self.members:
            if m.name == path:
                return m
        raise KeyError(f"struct {self.name} has no member {path}")

    def scalars(self) -> tuple[struct.Struct, list[str]]:
        """A little-endian Struct over every scalar member (arrays skipped), with
        explicit padding, and the member names in unpack order."""
        fmt, names, pos = "<", [], 0
        for m in self.members:
            if m.count != 1 or m.ctype == "char":
                continue
            fmt += "x" * (m.offset - pos) + SCALARS[m.ctype]
            names.append(m.name)
            pos = m.offset + m.size
        return struct.Struct(fmt), names


def header_text() -> str:
    return resources.files("eunomia.bpf").joinpath("events.h").read_text()


def _kernel_side_stripped(text: str) -> str:
    return text.split("#ifdef EUNOMIA_KERNEL", 1)[0]


def parse_enums(text: str | None = None) -> dict[str, dict[str, int]]:
    text = _kernel_side_stripped(text or header_text())
    out: dict[str, dict[str, int]] = {}
    for name, body in _ENUM.findall(text):
        values = {}
        for item in body.split(","):
            item = item.strip()
            if item:
                k, v = (s.strip() for s in item.split("="))
                values[k] = int(v, 0)
        out[name] = values
    return out


def _macros(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"#define\s+(\w+)\s+(\d+)\s*$", text, re.M)}


@cache
def _parse(text: str, overrides: tuple[tuple[str, int], ...]) -> dict[str, Layout]:
    text = _kernel_side_stripped(text)
    macros = {**_macros(text), **dict(overrides)}
    layouts: dict[str, Layout] = {}
    for sname, body in _STRUCT.findall(text):
        lay = Layout(sname, 0, 1)
        pos = 0
        for line in body.splitlines():
            if not line.strip():
                continue
            m = _MEMBER.match(line)
            if not m:
                raise ValueError(f"events.h: struct {sname}: cannot parse member {line.strip()!r}")
            ctype, mname, dim = m.groups()
            count = 1 if dim is None else (int(dim) if dim.isdigit() else macros[dim])
            if ctype.startswith("struct"):
                inner = layouts[ctype.split()[1]]
                size, align = inner.size, inner.align
                pos = -(-pos // align) * align
                for im in inner.members:
                    lay.members.append(Member(f"{mname}.{im.name}", im.ctype, pos + im.offset,
                                              im.size, im.count))
                pos += size
            else:
                size = struct.calcsize(SCALARS[ctype])
                align = size
                pos = -(-pos // align) * align
                lay.members.append(Member(mname, ctype, pos, size, count))
                pos += size * count
            lay.align = max(lay.align, align)
        lay.size = -(-pos // lay.align) * lay.align
        layouts[sname] = lay
    return layouts


def parse_structs(text: str | None = None, **macros: int) -> dict[str, Layout]:
    """Layouts of every struct; ``macros`` override the header's array sizes
    (the same values the loader passes as -D)."""
    return _parse(text or header_text(), tuple(sorted(macros.items())))
