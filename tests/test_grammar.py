"""The answer grammar: exact number ranges, accepted by llama.cpp, and honoured by it."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector.reasoner.grammar import answer_gbnf, int_range
from inspector.reasoner.profiles import PROFILES


def as_regex(alternatives: str) -> re.Pattern:
    parts = []
    for alt in alternatives.split(" | "):
        rx = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), alt).replace(" ", "")
        parts.append(f"(?:{rx})")
    return re.compile("^(?:" + "|".join(parts) + ")$")


@given(top=st.integers(0, 20000))
def test_int_range_accepts_exactly_0_to_top(top):
    rx = as_regex(int_range(top))
    probe = {0, 1, 9, 10, top - 1, top, top + 1, top * 10, 10 ** len(str(top))}
    probe |= set(range(max(0, top - 12), top + 12))
    for n in probe:
        if n >= 0:
            assert bool(rx.match(str(n))) == (n <= top), (top, n)
    assert not rx.match("0" + str(max(top, 1)))  # no leading zeros


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_llama_cpp_parses_the_grammar_of_every_profile(name):
    from llama_cpp import LlamaGrammar

    g = answer_gbnf(["scratch", 'odd "name"'], PROFILES[name], 448, 301)
    LlamaGrammar.from_string(g, verbose=False)  # raises on a syntax error
    if PROFILES[name].coords == "abs_resized":
        assert f"xc ::= {int_range(448)}" in g and f"yc ::= {int_range(308)}" in g
