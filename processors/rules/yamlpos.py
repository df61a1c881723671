"""Positions in YAML source: turn a node (and an offset inside a scalar) into
file:line:column plus a snippet with a caret."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from eunomia.processors.rules.errors import Diagnostic, message

__all__ = ["Source"]


@dataclass
class Source:
    name: str
    text: str

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()

    def diag(self, code: str, line0: int, col0: int, **kw: object) -> Diagnostic:
        """A diagnostic at a 0-based line/column."""
        snippet = ""
        if 0 <= line0 < len(self.lines):
            src = self.lines[line0]
            snippet = f"{src}\n{' ' * min(col0, len(src))}^"
        return Diagnostic(code, message(code, **kw), self.name, line0 + 1, col0 + 1, snippet)

    def at(self, code: str, node: yaml.Node | None, **kw: object) -> Diagnostic:
        if node is None:
            return self.diag(code, 0, 0, **kw)
        return self.diag(code, node.start_mark.line, node.start_mark.column, **kw)

    def in_scalar(self, code: str, node: yaml.ScalarNode, offset: int, **kw: object) -> Diagnostic:
        """A diagnostic at character ``offset`` of a scalar's value (best effort for
        folded and multi-line scalars: each source line counts as its text plus one)."""
        line0, col0 = self._locate(node, offset)
        return self.diag(code, line0, col0, **kw)

    def _locate(self, node: yaml.ScalarNode, offset: int) -> tuple[int, int]:
        sm = node.start_mark
        block = node.style in ("|", ">")
        line = sm.line + 1 if block else sm.line
        start = None if block else sm.column + (1 if node.style in ('"', "'") else 0)
        remaining = offset
        while line < len(self.lines):
            src = self.lines[line]
            begin = start if start is not None else len(src) - len(src.lstrip())
            content = src[begin:]
            if remaining <= len(content):
                return line, begin + remaining
            remaining -= len(content) + 1
            line += 1
            start = None
        return sm.line, sm.column
