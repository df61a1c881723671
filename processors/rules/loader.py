"""Rule files (or rule data) -> a ``RuleSet``: read every file, collect lists,
macros and rules, then compile; every problem of every file becomes a
``Diagnostic`` (with code and position) instead of stopping at the first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eunomia.processors.rules.build import RuleBuilder
from eunomia.processors.rules.condition import Node
from eunomia.processors.rules.errors import Diagnostic, RuleLoadError
from eunomia.processors.rules.items import Item, parse_at
from eunomia.processors.rules.model import RuleSet
from eunomia.processors.rules.yamlpos import Source

__all__ = ["lint_files", "load_data", "load_files", "load_text", "pack_files"]

LIST_KEYS = {"list", "items"}
MACRO_KEYS = {"macro", "condition"}


@dataclass
class Collected:
    lists: dict[str, list[str]] = field(default_factory=dict)
    macros: dict[str, tuple[Node, Source, yaml.ScalarNode]] = field(default_factory=dict)
    rules: list[Item] = field(default_factory=list)
    diags: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _read(source: Source, out: Collected) -> None:
    try:
        root = yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        out.diags.append(source.diag("E001", mark.line if mark else 0, mark.column if mark else 0,
                                     detail=exc.problem or str(exc)))
        return
    if root is None:
        return
    if not isinstance(root, yaml.SequenceNode):
        out.diags.append(source.at("E002", root))
        return
    for node in root.value:
        if not isinstance(node, yaml.MappingNode):
            out.diags.append(source.at("E003", node))
            continue
        keys: dict[str, yaml.Node] = {}
        key_nodes: dict[str, yaml.Node] = {}
        for k, v in node.value:
            keys[str(k.value)] = v
            key_nodes[str(k.value)] = k
        item = Item(source, node, keys, key_nodes)
        kinds = [k for k in ("list", "macro", "rule") if k in keys]
        if len(kinds) != 1:
            out.diags.append(source.at("E003", node))
            continue
        {"list": _collect_list, "macro": _collect_macro, "rule": _collect_rule}[kinds[0]](item, out)


def _unknown_keys(item: Item, allowed: set[str], out: Collected) -> None:
    for k in item.keys:
        if k not in allowed:
            out.diags.append(item.source.at("E005", item.key_nodes[k], key=k))


def _scalar(item: Item, key: str, out: Collected, required: bool = True) -> str | None:
    node = item.keys.get(key)
    if node is None:
        if required:
            out.diags.append(item.source.at("E004", item.node, key=key))
        return None
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        out.diags.append(item.source.at("E006", node, key=key, expected="a non-empty string"))
        return None
    return str(node.value)


def _collect_list(item: Item, out: Collected) -> None:
    _unknown_keys(item, LIST_KEYS, out)
    name = _scalar(item, "list", out)
    node = item.keys.get("items")
    if node is None:
        out.diags.append(item.source.at("E004", item.node, key="items"))
        return
    if not isinstance(node, yaml.SequenceNode) or not all(
            isinstance(n, yaml.ScalarNode) for n in node.value):
        out.diags.append(item.source.at("E006", node, key="items", expected="a list of strings"))
        return
    if name is None:
        return
    if name in out.lists:
        out.diags.append(item.source.at("E014", item.keys["list"], kind="list", name=name))
        return
    values: list[str] = []
    for n in node.value:  # a list may include an earlier list by name (Falco)
        values.extend(out.lists.get(n.value, [n.value]) if n.style is None else [n.value])
    out.lists[name] = values


def _collect_macro(item: Item, out: Collected) -> None:
    _unknown_keys(item, MACRO_KEYS, out)
    name = _scalar(item, "macro", out)
    cond = _scalar(item, "condition", out)
    if name is None or cond is None:
        return
    if name in out.macros:
        out.diags.append(item.source.at("E014", item.keys["macro"], kind="macro", name=name))
        return
    node = item.keys["condition"]
    assert isinstance(node, yaml.ScalarNode)
    ast = parse_at(item.source, node, out.diags)
    if ast is not None:
        out.macros[name] = (ast, item.source, node)


def _collect_rule(item: Item, out: Collected) -> None:
    out.rules.append(item)


def _compile(col: Collected) -> RuleSet:
    builder = RuleBuilder(col.lists, col.macros, col.diags)
    rules = []
    seen: dict[str, Item] = {}
    for item in col.rules:
        rule = builder.build(item)
        if rule is None:
            continue
        if rule.id in seen:
            col.diags.append(item.source.at("E014", item.keys["rule"], kind="rule", name=rule.id))
            continue
        seen[rule.id] = item
        rules.append(rule)
    warnings = [d for d in col.diags if not d.is_error]
    return RuleSet(rules, warnings, col.files)


def _load(sources: Iterable[Source]) -> tuple[RuleSet, list[Diagnostic]]:
    col = Collected()
    for src in sources:
        col.files.append(src.name)
        _read(src, col)
    ruleset = _compile(col)
    return ruleset, col.diags


def _sources(paths: Iterable[str | Path]) -> tuple[list[Source], list[Diagnostic]]:
    sources, diags = [], []
    for p in paths:
        try:
            sources.append(Source(str(p), Path(p).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            diags.append(Diagnostic("E026", f"cannot read rule file: {exc}", str(p), 1, 1))
    return sources, diags


def lint_files(paths: Iterable[str | Path]) -> list[Diagnostic]:
    """Every error and warning of the files, in file order."""
    sources, diags = _sources(paths)
    return diags + _load(sources)[1]


def load_files(paths: Iterable[str | Path]) -> RuleSet:
    """Load rule files; raises ``RuleLoadError`` with all diagnostics if any is an error."""
    sources, diags = _sources(paths)
    ruleset, more = _load(sources)
    diags += more
    if any(d.is_error for d in diags):
        raise RuleLoadError(diags)
    return ruleset


def load_text(text: str, name: str = "<rules>") -> RuleSet:
    ruleset, diags = _load([Source(name, text)])
    if any(d.is_error for d in diags):
        raise RuleLoadError(diags)
    return ruleset


def load_data(data: Mapping[str, Any] | Sequence[Mapping[str, Any]], name: str = "<rules>") -> RuleSet:
    """Load rules given as Python data: one item (a dict) or a list of them, as a
    rule file's YAML would parse, for tools that generate rules (converters,
    tests). The data is rendered as YAML and loaded as a file, so it gets the
    same checks, and diagnostics point into that rendering (with its snippet)."""
    items = [data] if isinstance(data, Mapping) else data
    if isinstance(items, str | bytes) or not isinstance(items, Sequence) or not all(
            isinstance(i, Mapping) for i in items):
        raise TypeError(f"rule data must be a dict or a list of dicts, got {type(data).__name__}")
    try:
        text = yaml.safe_dump([dict(i) for i in items], sort_keys=False, allow_unicode=True,
                              width=2**31 - 1)
    except yaml.YAMLError as exc:  # a value YAML cannot hold (an object, a set, ...)
        raise TypeError(f"rule data holds a value that is not plain data: {exc}") from None
    return load_text(text, name)


def pack_files() -> list[Path]:
    """The default rule pack shipped with the package, one file per maturity level."""
    return sorted((Path(__file__).parent / "pack").glob("*.yaml"))
