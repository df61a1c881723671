"""Reading a rule item's YAML nodes: typed values, field keys and durations,
each problem a diagnostic at its file position rather than an exception."""

from __future__ import annotations

import re
from typing import Any

import yaml

from eunomia.processors.rules.compile import CompileIssue, Compiler
from eunomia.processors.rules.condition import Node
from eunomia.processors.rules.errors import Diagnostic
from eunomia.processors.rules.fields import field_spec, getter
from eunomia.processors.rules.items import parse_at
from eunomia.processors.rules.model import KeySpec
from eunomia.processors.rules.yamlpos import Source

__all__ = ["NodeReader", "parse_duration"]

_DUR = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_UNIT_NS = {"ms": 10**6, "s": 10**9, None: 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


def parse_duration(text: str) -> int | None:
    m = _DUR.match(str(text).strip())
    if not m:
        return None
    return int(m.group(1)) * _UNIT_NS[m.group(2)]



class NodeReader:
    """Node checks shared by every part of a rule; problems go to ``diags``."""

    def __init__(self, lists: dict[str, list[str]],
                 macros: dict[str, tuple[Node, Source, yaml.ScalarNode]], diags: list[Diagnostic]) -> None:
        self.compiler = Compiler(lists, {k: v[0] for k, v in macros.items()})
        self.macros = macros
        self.lists = lists
        self.diags = diags

    def _err(self, src: Source, code: str, node: yaml.Node | None, **kw: Any) -> None:
        d = src.at(code, node, **kw)
        if d not in self.diags:
            self.diags.append(d)

    def _drain(self, src: Source, node: yaml.Node) -> bool:
        """Turn compiler issues into diagnostics at their position; True if there were any."""
        issues: list[CompileIssue] = self.compiler.issues
        self.compiler.issues = []
        for i in issues:
            if i.macro is not None and i.macro in self.macros:
                _, msrc, mnode = self.macros[i.macro]
                d = msrc.in_scalar(i.code, mnode, i.pos, **i.kw)
            elif isinstance(node, yaml.ScalarNode):
                d = src.in_scalar(i.code, node, i.pos, **i.kw)
            else:
                d = src.at(i.code, node, **i.kw)
            if d not in self.diags:
                self.diags.append(d)
        return bool(issues)

    def _cond(self, src: Source, node: yaml.Node | None) -> Node | None:
        """Parse and expand a condition scalar; None if it has errors."""
        if node is None:
            return None
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self._err(src, "E006", node, key="condition", expected="a non-empty string")
            return None
        ast = parse_at(src, node, self.diags)
        if ast is None:
            return None
        expanded = self.compiler.expand(ast, ())
        return None if self._drain(src, node) else expanded

    def _mapping(self, src: Source, node: yaml.Node | None, key: str, allowed: set[str]
                 ) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self._err(src, "E006", node, key=key, expected="a mapping")
            return None
        out = {}
        for k, v in node.value:
            if k.value not in allowed:
                self._err(src, "E005", k, key=k.value)
            out[str(k.value)] = v
        return out

    def _strings(self, src: Source, node: yaml.Node | None, key: str) -> list[str] | None:
        if node is None:
            return []
        if isinstance(node, yaml.ScalarNode) and node.value:
            return [str(node.value)]
        if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.ScalarNode) for n in node.value):
            return [str(n.value) for n in node.value]
        self._err(src, "E006", node, key=key, expected="a list of strings")
        return None

    def _keyspec(self, src: Source, node: yaml.Node | None, key: str) -> KeySpec | None:
        names = self._strings(src, node, key)
        if names is None:
            return None
        ok = True
        for n in names:
            if field_spec(n) is None:
                self._err(src, "E011", node, field=n)
                ok = False
        if not ok or not names:
            return None
        return KeySpec(tuple(names), tuple(getter(n) for n in names),
                       tuple(field_spec(n).multi for n in names))  # type: ignore[union-attr]

    def _duration(self, src: Source, node: yaml.Node | None, key: str, required: bool = True) -> int | None:
        if node is None:
            return None
        ns = parse_duration(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
        if ns is None or ns <= 0:
            self._err(src, "E015", node, value=getattr(node, "value", ""))
        return ns
