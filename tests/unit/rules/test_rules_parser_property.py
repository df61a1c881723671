"""Property: any text either parses or raises RuleSyntaxError; nothing else escapes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eunomia.processors.rules import RuleSyntaxError, parse_condition

TOKENS = ["and", "or", "not", "(", ")", ",", "in", "exists", "=", "!=", "<", ">=", "startswith",
          "glob", "process.name", "user.id", "container", "'q'", '"x y"', "sh", "12", "-3", " ", "\n",
          "\\", "'", '"', "%", "!", "a.b.c", "…"]


def check(text: str) -> None:
    try:
        parse_condition(text)
    except RuleSyntaxError as exc:
        assert exc.line >= 1 and exc.column >= 1
        assert str(exc).startswith("condition syntax error: ")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join))
def test_token_soup(text: str) -> None:
    check(text)


def test_deep_nesting_is_a_syntax_error_or_parses() -> None:
    check("(" * 5000 + "a.b exists" + ")" * 5000)
    check("not " * 5000 + "a.b exists")
