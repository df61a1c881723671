"""The Python decoder's view of bpf/events.h must be the C compiler's.

producer/layout.py parses the header and lays the structs out by the C rules;
a mistake there (a member added with other alignment, an array sized by a
macro the parser misreads) would shift every field after it and decode
garbage silently. The C compiler is the judge: it compiles the same header and
prints offsetof/sizeof of every member for several -D knob values.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from eunomia.producer.decoder import KINDS, Decoder
from eunomia.producer.layout import header_text, parse_enums, parse_structs
from eunomia.schemas import AvroCodec
from tests.requirements import require

KNOBS = [
    {"PATH_MAX_LEN": 256, "ARGV_SIZE": 512, "STR_ARG_LEN": 128},
    {"PATH_MAX_LEN": 64, "ARGV_SIZE": 2048, "STR_ARG_LEN": 16},
    {"PATH_MAX_LEN": 1024, "ARGV_SIZE": 64, "STR_ARG_LEN": 256},
]


def _c_program(knobs: dict[str, int]) -> str:
    lays = parse_structs(**knobs)
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <stdint.h>",
             "typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;",
             "typedef int8_t s8; typedef int16_t s16; typedef int32_t s32; typedef int64_t s64;",
             '#include "events.h"', "int main(void) {"]
    for name, lay in lays.items():
        lines.append(f'printf("{name} %zu %zu\\n", sizeof(struct {name}), _Alignof(struct {name}));')
        for m in lay.members:
            lines.append(f'printf("{name}.{m.name} %zu %zu\\n", offsetof(struct {name}, {m.name}), '
                         f'sizeof(((struct {name} *)0)->{m.name}));')
    for enum in parse_enums().values():
        for k in enum:
            lines.append(f'printf("{k} %d\\n", (int){k});')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: f"path{k['PATH_MAX_LEN']}-argv{k['ARGV_SIZE']}")
def test_layout_matches_the_c_compiler(tmp_path: Path, knobs: dict[str, int]) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    require(cc is not None, "needs a C compiler (gcc) to check bpf/events.h against the decoder")
    (tmp_path / "events.h").write_text(header_text())
    (tmp_path / "layout.c").write_text(_c_program(knobs))
    defines = [f"-D{k}={v}" for k, v in knobs.items()]
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", *defines, "-I", str(tmp_path), "-o",
                    str(tmp_path / "layout"), str(tmp_path / "layout.c")], check=True)
    out = subprocess.run([str(tmp_path / "layout")], check=True, capture_output=True, text=True).stdout
    c_view = {name: tuple(int(x) for x in rest) for name, *rest in (ln.split() for ln in out.splitlines())}

    py_view: dict[str, tuple[int, ...]] = {}
    for name, lay in parse_structs(**knobs).items():
        py_view[name] = (lay.size, lay.align)
        for m in lay.members:
            py_view[f"{name}.{m.name}"] = (m.offset, m.size * m.count)
    for enum in parse_enums().values():
        for k, v in enum.items():
            py_view[k] = (v,)
    assert py_view == c_view


STRUCT_OF_KIND = {"exec": "ev_exec", "execveat": "ev_exec", "fork": "ev_fork", "exit": "ev_exit",
                  "open": "ev_file", "unlink": "ev_file", "rename": "ev_file", "chmod": "ev_file",
                  "connect": "ev_net", "accept": "ev_net", "bind": "ev_net", "listen": "ev_net",
                  "signal": "ev_signal", "oom_kill": "ev_oom"}


@pytest.mark.parametrize("kind", sorted(KINDS.values()))
def test_every_kernel_kind_decodes_to_a_valid_raw_event(kind: str) -> None:
    """A record laid out from the header alone (not by the decoder) decodes
    and passes the raw_event schema, for every kind the kernel can send."""
    lays = parse_structs()
    lay = lays[STRUCT_OF_KIND.get(kind, "ev_priv")]
    buf = bytearray(lay.size)
    kind_id = next(k for k, v in KINDS.items() if v == kind)
    struct.pack_into("<H", buf, lay.offset("hdr.kind"), kind_id)
    struct.pack_into("<H", buf, lay.offset("hdr.size"), lay.size)
    struct.pack_into("<I", buf, lay.offset("hdr.pid"), 4242)
    buf[lay.offset("hdr.comm"):lay.offset("hdr.comm") + 4] = b"test"
    rec = Decoder("host-a", "boot-a", cgroup_path=lambda _cg: None).decode(bytes(buf))
    assert (rec["kind"], rec["pid"], rec["comm"]) == (kind, 4242, "test")
    rec["seq"] = 1
    assert AvroCodec().decode(AvroCodec().encode("raw_event", rec), "raw_event")["kind"] == kind


def test_the_parser_rejects_what_it_cannot_lay_out() -> None:
    text = header_text().replace("u32 child_tid;", "unsigned long child_tid;")
    with pytest.raises(ValueError, match="ev_fork"):
        parse_structs(text)
