"""One rule item (YAML nodes) -> a compiled ``Rule``, appending diagnostics for
everything wrong with it rather than stopping at the first problem."""

from __future__ import annotations

import re
from typing import Any

import yaml

from eunomia.processors.rules.compile import event_kinds
from eunomia.processors.rules.condition import And, Cmp, Node, Not, Or, Value
from eunomia.processors.rules.fields import field_spec, getter
from eunomia.processors.rules.items import Item, fingerprint
from eunomia.processors.rules.model import LEVEL_SEVERITY, PRIORITY, Rule, Step
from eunomia.processors.rules.node_reader import NodeReader, parse_duration

__all__ = ["TEMPLATE_FIELD", "RuleBuilder", "parse_duration"]

RULE_KEYS = {"rule", "id", "desc", "condition", "output", "priority", "level", "tags", "enabled",
             "exceptions", "fields", "sequence", "threshold", "distinct", "temporal", "temporal_ordered"}
FORMS = ("sequence", "threshold", "distinct", "temporal", "temporal_ordered")
FORM_KEYS = {
    "sequence": {"by", "maxspan", "until", "steps"},
    "threshold": {"group-by", "timespan", "count"},
    "distinct": {"group-by", "timespan", "count", "field"},
    "temporal": {"group-by", "timespan", "steps"},
    "temporal_ordered": {"group-by", "timespan", "steps"},
}
STEP_KEYS = {"name", "condition", "by", "runs", "missing", "within"}
UNTIL_KEYS = {"condition", "by"}
EXC_KEYS = {"name", "fields", "comps", "values"}
EXC_OPS = ("=", "!=", "in", "startswith", "endswith", "contains", "glob")
COUNT_OPS = ("gt", "gte", "lt", "lte", "eq")
TEMPLATE_FIELD = re.compile(r"%([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_\-]+)+)")
def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class RuleBuilder(NodeReader):
    """Builds rules; the node checks it shares with every form are ``NodeReader``'s."""

    # -- the rule -------------------------------------------------------------
    def build(self, item: Item) -> Rule | None:
        src, k = item.source, item.keys
        before = sum(d.is_error for d in self.diags)
        for key, knode in item.key_nodes.items():
            if key not in RULE_KEYS:
                self._err(src, "E005", knode, key=key)
        name = self._text(item, "rule")
        desc = self._text(item, "desc")
        output = self._text(item, "output")
        rid = str(k["id"].value) if isinstance(k.get("id"), yaml.ScalarNode) else _slug(name or "")
        level, sev = self._level(item)
        tags = self._strings(src, k.get("tags"), "tags") or []
        self._tag_warnings(item, tags)
        out_fields = self._output_fields(item, output)
        if "condition" not in k:
            self._err(src, "E004", item.node, key="condition")
        base = self._cond(src, k.get("condition"))
        exc = self._exceptions(item)
        filt = And(tuple(n for n in (base, exc) if n is not None))
        forms = [f for f in FORMS if f in k]
        if len(forms) > 1:
            self._err(src, "E023", item.node)
        rule = Rule(id=rid, name=name or rid, desc=desc or "", level=level, severity_id=sev, tags=tags,
                    output=output or "", output_fields=out_fields, form=forms[0] if forms else "single",
                    kinds=None, fingerprint="", source=f"{src.name}:{item.node.start_mark.line + 1}")
        enabled = k.get("enabled")
        rule.enabled = not (isinstance(enabled, yaml.ScalarNode) and enabled.value in ("false", "no"))
        parts: list[Any] = [rule.form, repr(filt), output, level, sev, tuple(tags), tuple(out_fields)]
        if rule.form == "single":
            rule.predicate = self.compiler._build(filt)
            rule.kinds = event_kinds(filt)
        elif rule.form == "sequence":
            self._sequence(item, rule, filt, parts)
        elif rule.form in ("threshold", "distinct"):
            self._window(item, rule, filt, parts)
        else:
            self._temporal(item, rule, filt, parts)
        if sum(d.is_error for d in self.diags) > before:
            return None
        rule.fingerprint = fingerprint(*parts)
        return rule

    def _text(self, item: Item, key: str) -> str | None:
        node = item.keys.get(key)
        if node is None:
            self._err(item.source, "E004", item.node, key=key)
            return None
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self._err(item.source, "E006", node, key=key, expected="a non-empty string")
            return None
        return str(node.value).strip()

    def _level(self, item: Item) -> tuple[str, int]:
        src, k = item.source, item.keys
        lvl, pri = k.get("level"), k.get("priority")
        if lvl is None and pri is None:
            self._err(src, "E004", item.node, key="level")
            return "event", 1
        sev = None
        level = None
        if pri is not None:
            got = PRIORITY.get(str(getattr(pri, "value", "")).upper())
            if got is None:
                self._err(src, "E016", pri, value=getattr(pri, "value", ""))
            else:
                level, sev = got
        if lvl is not None:
            value = str(getattr(lvl, "value", "")).lower()
            if value not in LEVEL_SEVERITY:
                self._err(src, "E016", lvl, value=value)
            else:
                level = value
                sev = sev if pri is not None else LEVEL_SEVERITY[value]
        return level or "event", sev or 1

    def _tag_warnings(self, item: Item, tags: list[str]) -> None:
        node = item.keys.get("tags") or item.keys["rule"]
        if not tags or not tags[0].startswith("maturity_"):
            self._err(item.source, "W001", node)
        if not any(t.startswith("mitre_") for t in tags) or not any(re.match(r"T\d{4}", t) for t in tags):
            self._err(item.source, "W002", node)

    def _output_fields(self, item: Item, output: str | None) -> list[str]:
        names = list(dict.fromkeys(TEMPLATE_FIELD.findall(output or "")))
        extra = self._strings(item.source, item.keys.get("fields"), "fields") or []
        for n in names + extra:
            if field_spec(n) is None:
                self._err(item.source, "E017", item.keys.get("output") or item.node, field=n)
        return list(dict.fromkeys(names + extra))

    def _exceptions(self, item: Item) -> Node | None:
        src, node = item.source, item.keys.get("exceptions")
        if node is None:
            return None
        if not isinstance(node, yaml.SequenceNode):
            self._err(src, "E006", node, key="exceptions", expected="a list")
            return None
        alts: list[Node] = []
        for exn in node.value:
            m = self._mapping(src, exn, "exceptions", EXC_KEYS)
            if m is None:
                continue
            name = str(getattr(m.get("name"), "value", "exception"))
            fields = self._strings(src, m.get("fields"), "fields") or []
            comps = self._strings(src, m.get("comps"), "comps") or ["="] * len(fields)
            for c in comps:
                if c not in EXC_OPS:
                    self._err(src, "E025", m.get("comps"), value=c, ops=", ".join(EXC_OPS))
            values = m.get("values")
            if not fields or len(comps) != len(fields) or not isinstance(values, yaml.SequenceNode):
                self._err(src, "E024", exn, name=name, n=len(fields))
                continue
            for tup in values.value:
                row = tup.value if isinstance(tup, yaml.SequenceNode) else [tup]
                if len(row) != len(fields):
                    self._err(src, "E024", tup, name=name, n=len(fields))
                    continue
                conj: list[Node] = []
                for f, c, v in zip(fields, comps, row, strict=True):
                    vals = v.value if isinstance(v, yaml.SequenceNode) else [v]
                    conj.append(Cmp(f, c, tuple(Value(str(x.value), x.style is not None
                                                      or str(x.value) not in self.lists, 0)
                                                for x in vals), 0))
                alts.append(And(tuple(conj)))
        if not alts:
            return None
        expanded = self.compiler.expand(Not(Or(tuple(alts))), ())
        return None if self._drain(src, node) else expanded

    def _form_map(self, item: Item, form: str) -> dict[str, yaml.Node] | None:
        return self._mapping(item.source, item.keys[form], form, FORM_KEYS[form])

    def _steps(self, item: Item, node: yaml.Node | None, filt: Node, parts: list[Any]) -> list[Step]:
        src = item.source
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self._err(src, "E006", node or item.node, key="steps", expected="a non-empty list")
            return []
        steps: list[Step] = []
        for i, sn in enumerate(node.value):
            m = self._mapping(src, sn, "steps", STEP_KEYS)
            if m is None:
                continue
            if "condition" not in m:
                self._err(src, "E004", sn, key="condition")
                continue
            cond = self._cond(src, m["condition"])
            by = self._keyspec(src, m.get("by"), "by") if "by" in m else None
            runs = 1
            if "runs" in m:
                rv = str(getattr(m["runs"], "value", ""))
                if not rv.isdigit() or int(rv) < 1:
                    self._err(src, "E006", m["runs"], key="runs", expected="a positive integer")
                else:
                    runs = int(rv)
            missing = str(getattr(m.get("missing"), "value", "false")) in ("true", "yes")
            within = self._duration(src, m.get("within"), "within") if "within" in m else None
            if cond is None:
                continue
            full = And((filt, cond))
            pred = self.compiler._build(full)
            name = str(getattr(m.get("name"), "value", f"step{i + 1}"))
            parts.append((name, repr(full), by.fields if by else (), runs, missing, within))
            for _ in range(runs):
                steps.append(Step(name, pred, event_kinds(full), by, missing, within))
        return steps

    def _sequence(self, item: Item, rule: Rule, filt: Node, parts: list[Any]) -> None:
        src = item.source
        m = self._form_map(item, "sequence")
        if m is None:
            return
        rule.by = self._keyspec(src, m.get("by"), "by") if "by" in m else None
        rule.maxspan_ns = self._duration(src, m.get("maxspan"), "maxspan") if "maxspan" in m else None
        if "maxspan" not in m:
            self._err(src, "W004", item.keys["sequence"])
        if "until" in m:
            self._until(item, rule, m["until"], parts)
        steps = self._steps(item, m.get("steps"), filt, parts)
        rule.steps = steps
        if len(steps) < 2 and steps:
            self._err(src, "E006", m.get("steps"), key="steps", expected="a list of at least two steps")
        for i, s in enumerate(steps):
            if s.missing and (i == 0 or i != len(steps) - 1):
                self._err(src, "E021", m.get("steps"))
                break
        widths = {len(s.by.fields) if s.by else 0 for s in steps}
        if len(widths) > 1:
            self._err(src, "E022", m.get("steps"))
        elif rule.until_by is not None and steps and widths != {len(rule.until_by.fields)}:
            self._err(src, "E027", m["until"], n=widths.pop())
        self._copartition_warning(item, (rule.by.fields if rule.by else ())
                                  + (steps[0].by.fields if steps and steps[0].by else ()))
        parts.append((rule.by.fields if rule.by else (), rule.maxspan_ns))
        rule.kinds = _union([s.kinds for s in steps] + ([rule.until_kinds] if rule.until else []))

    def _until(self, item: Item, rule: Rule, node: yaml.Node, parts: list[Any]) -> None:
        """``until: <condition>``, or ``until: {condition: ..., by: [...]}`` with the
        until's own join keys (EQL's ``until [...] by f``)."""
        src = item.source
        cond_node: yaml.Node | None = node
        if isinstance(node, yaml.MappingNode):
            m = self._mapping(src, node, "until", UNTIL_KEYS) or {}
            cond_node = m.get("condition")
            if cond_node is None:
                self._err(src, "E004", node, key="condition")
            if "by" in m:
                rule.until_by = self._keyspec(src, m["by"], "by")
        until = self._cond(src, cond_node)
        if until is None:
            return
        rule.until = self.compiler._build(until)
        rule.until_kinds = event_kinds(until)
        parts.append(("until", repr(until)))
        if rule.until_by is not None:  # only then: fingerprints of older rules stay as they were
            parts.append(("until by", rule.until_by.fields))

    def _group(self, item: Item, rule: Rule, m: dict[str, yaml.Node], form: str, parts: list[Any]) -> None:
        rule.by = self._keyspec(item.source, m.get("group-by"), "group-by") if "group-by" in m else None
        if "timespan" not in m:
            self._err(item.source, "E004", item.keys[form], key="timespan")
        else:
            rule.timespan_ns = self._duration(item.source, m.get("timespan"), "timespan") or 0
        self._copartition_warning(item, rule.by.fields if rule.by else ())
        parts.append((rule.by.fields if rule.by else (), rule.timespan_ns))

    def _window(self, item: Item, rule: Rule, filt: Node, parts: list[Any]) -> None:
        m = self._form_map(item, rule.form)
        if m is None:
            return
        self._group(item, rule, m, rule.form, parts)
        cnt = m.get("count")
        ok = (isinstance(cnt, yaml.MappingNode) and len(cnt.value) == 1
              and cnt.value[0][0].value in COUNT_OPS and str(cnt.value[0][1].value).isdigit())
        if not ok:
            self._err(item.source, "E020", cnt or item.keys[rule.form])
        else:
            assert isinstance(cnt, yaml.MappingNode)
            rule.count_op, rule.count_value = cnt.value[0][0].value, int(cnt.value[0][1].value)
        if rule.form == "distinct":
            f = str(getattr(m.get("field"), "value", ""))
            if field_spec(f) is None:
                self._err(item.source, "E011", m.get("field") or item.keys["distinct"], field=f)
            else:
                rule.distinct_field = getter(f)
            parts.append(f)
        rule.predicate = self.compiler._build(filt)
        rule.kinds = event_kinds(filt)
        parts.append((rule.count_op, rule.count_value))

    def _temporal(self, item: Item, rule: Rule, filt: Node, parts: list[Any]) -> None:
        m = self._form_map(item, rule.form)
        if m is None:
            return
        self._group(item, rule, m, rule.form, parts)
        rule.steps = self._steps(item, m.get("steps"), filt, parts)
        rule.kinds = _union([s.kinds for s in rule.steps])

    def _copartition_warning(self, item: Item, fields: tuple[str, ...]) -> None:
        if not {"container.id", "host.id"} & set(fields):
            self._err(item.source, "W003", item.keys["rule"])


def _union(sets: list[frozenset[str] | None]) -> frozenset[str] | None:
    out: frozenset[str] = frozenset()
    for s in sets:
        if s is None:
            return None
        out |= s
    return out
