"""The single-event condition language: a lark LALR grammar and a transformer
to a small tuple AST (positions kept so the loader can point at the column).

Falco-like: ``field op value``, ``field in (a, b, list_name)``, ``field exists``,
``and``/``or``/``not``, parentheses, and bare names for macros. Values are bare
words or quoted strings; whether a word is a number or a list name is decided
at compile time, where the field type and the defined lists are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from eunomia.processors.rules.errors import RuleSyntaxError

__all__ = ["And", "Cmp", "Exists", "Macro", "Node", "Not", "Or", "Value", "parse_condition"]

GRAMMAR = r"""
?start: expr
?expr: and_expr | expr "or" and_expr -> or_
?and_expr: not_expr | and_expr "and" not_expr -> and_
?not_expr: "not" not_expr -> not_ | atom
?atom: "(" expr ")" | cmp | MACRO -> macro
cmp: FIELD OP value -> binop
   | FIELD "in" "(" value ("," value)* ")" -> in_
   | FIELD "exists" -> exists
value: STRING | WORD
OP: "==" | "=" | "!=" | "<=" | ">=" | "<" | ">"
  | "startswith" | "endswith" | "icontains" | "contains" | "glob"
FIELD.2: /[a-z_][a-z0-9_]*(\.[A-Za-z0-9_\-]+)+/
MACRO: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\\n]|\\.)*"/ | /'(?:[^'\\\n]|\\.)*'/
WORD: /[^\s(),'"=<>!]+/
%ignore /[ \t\r\n]+/
"""


@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool
    pos: int


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str  # = != < <= > >= startswith endswith contains icontains glob in
    values: tuple[Value, ...]
    pos: int


@dataclass(frozen=True)
class Exists:
    field: str
    pos: int


@dataclass(frozen=True)
class Macro:
    name: str
    pos: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Cmp | Exists | Macro | And | Or | Not

_KEYWORDS = frozenset({"and", "or", "not", "in", "exists"})
_ESC = re.compile(r"\\(.)")


def _value(tok: Token) -> Value:
    if tok.type == "STRING":
        return Value(_ESC.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), tok[1:-1]),
                     True, tok.start_pos or 0)
    return Value(str(tok), False, tok.start_pos or 0)


@v_args(inline=True)
class _ToAst(Transformer):
    def or_(self, a: Node, b: Node) -> Node:
        return Or((*(a.items if isinstance(a, Or) else (a,)), b))

    def and_(self, a: Node, b: Node) -> Node:
        return And((*(a.items if isinstance(a, And) else (a,)), b))

    def not_(self, a: Node) -> Node:
        return Not(a)

    def macro(self, tok: Token) -> Node:
        if str(tok) in _KEYWORDS:
            line, col = tok.line or 1, tok.column or 1
            raise RuleSyntaxError(f"unexpected keyword {str(tok)!r}, expected a field, a macro name, "
                                  "'not' or '('", line, col)
        return Macro(str(tok), tok.start_pos or 0)

    def value(self, tok: Token) -> Value:
        return _value(tok)

    def binop(self, field: Token, op: Token, value: Value) -> Node:
        o = "=" if op == "==" else str(op)
        return Cmp(str(field), o, (value,), field.start_pos or 0)

    def in_(self, field: Token, *values: Value) -> Node:
        return Cmp(str(field), "in", tuple(values), field.start_pos or 0)

    def exists(self, field: Token) -> Node:
        return Exists(str(field), field.start_pos or 0)


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=False,
                maybe_placeholders=False)


def _expected(exc: UnexpectedInput) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    pretty = {"LPAR": "'('", "RPAR": "')'", "COMMA": "','", "OR": "'or'", "AND": "'and'",
              "NOT": "'not'", "IN": "'in'", "EXISTS": "'exists'", "FIELD": "a field",
              "MACRO": "a macro name", "STRING": "a quoted string", "WORD": "a value",
              "OP": "an operator", "$END": "end of condition"}
    return ", ".join(dict.fromkeys(pretty.get(n, n) for n in names)) or "something else"


def parse_condition(text: str) -> Node:
    """Parse one condition; raises ``RuleSyntaxError`` (and nothing else) on bad input."""
    if not isinstance(text, str):
        raise RuleSyntaxError("condition must be a string")
    try:
        tree = _parser().parse(text)
        return _ToAst().transform(tree)
    except UnexpectedCharacters as exc:
        raise RuleSyntaxError(f"unexpected character {text[exc.pos_in_stream]!r}, expected "
                              f"{_expected(exc)}", exc.line, exc.column) from None
    except UnexpectedEOF as exc:
        line = text.count("\n") + 1
        raise RuleSyntaxError(f"unexpected end of condition, expected {_expected(exc)}",
                              line, len(text) - text.rfind("\n")) from None
    except UnexpectedInput as exc:
        tok = getattr(exc, "token", None)
        if tok is None or tok.type == "$END":
            line, col = offset_to_line_col(text, len(text))
            raise RuleSyntaxError(f"unexpected end of condition, expected {_expected(exc)}",
                                  line, col) from None
        raise RuleSyntaxError(f"unexpected {str(tok)!r}, expected {_expected(exc)}",
                              exc.line if exc.line > 0 else 1,
                              exc.column if exc.column > 0 else 1) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, RuleSyntaxError):
            raise exc.orig_exc from None
        raise RuleSyntaxError(f"cannot parse condition: {type(exc.orig_exc).__name__}") from None
    except (LarkError, RecursionError) as exc:
        raise RuleSyntaxError(f"cannot parse condition: {type(exc).__name__}") from None


def offset_to_line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset in a condition."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def dump(node: Any) -> str:
    """A canonical text form (used to fingerprint rules for reload)."""
    return repr(node)
