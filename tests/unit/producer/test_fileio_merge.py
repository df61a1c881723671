"""Which file I/O keys get a path: pure logic of producer/fileio.py."""

from __future__ import annotations

import os
from types import SimpleNamespace

from eunomia.producer.fileio import merge_fileio, resolve_fd_path, sum_per_cpu


def _cpu(**kw: int) -> SimpleNamespace:
    base = dict(reads=0, read_bytes=0, writes=0, write_bytes=0, ino=0, exec_gen=0)
    return SimpleNamespace(**{**base, **kw})


def test_per_cpu_values_sum_and_keep_inode_and_latest_generation() -> None:
    s = sum_per_cpu(
        [_cpu(writes=2, write_bytes=20, ino=7, exec_gen=1), _cpu(), _cpu(writes=1, write_bytes=5, exec_gen=2)]
    )
    assert s == {"reads": 0, "read_bytes": 0, "writes": 3, "write_bytes": 25, "ino": 7, "exec_gen": 2}


def test_only_keys_of_the_latest_program_are_resolved() -> None:
    # runc's exec fifo on fd 3 (generation 1), then the workload's file on fd 3
    # after exec (generation 2) with the same inode number: the fifo's bytes
    # must not be counted on the file's path
    asked: list[tuple[int, int]] = []

    def resolve(fd: int, ino: int) -> str:
        asked.append((fd, ino))
        return "/data.bin"

    stats = {
        (3, 0xA): {"writes": 1, "write_bytes": 1, "ino": 99, "exec_gen": 1},
        (3, 0xB): {"writes": 3, "write_bytes": 300, "ino": 99, "exec_gen": 2},
    }
    out = merge_fileio(stats, resolve)
    assert asked == [(3, 99)]
    fifo, data = out
    assert fifo == {
        "fd": 3,
        "path": None,
        "path_resolved": False,
        "reads": 0,
        "read_bytes": 0,
        "writes": 1,
        "write_bytes": 1,
    }
    assert data["path"] == "/data.bin" and data["write_bytes"] == 300


def test_fd_path_needs_the_same_process_and_inode(tmp_path) -> None:
    f = tmp_path / "x"
    f.write_text("x")
    with f.open() as fh:
        fd = fh.fileno()
        ino = os.fstat(fd).st_ino
        assert resolve_fd_path(os.getpid(), fd, 0, ino) == str(f)
        assert resolve_fd_path(os.getpid(), fd, 0, ino + 1) is None
        assert resolve_fd_path(os.getpid(), fd, 1, ino) is None  # another start time
