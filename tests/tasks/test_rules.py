"""One rule, one step: `rewrite`, `Rule.apply`, `count_occurrences` and the rule text format.

Everything is checked against the scan-by-comparison references of `conftest.py` (and one
written here for overlapping counts), which share no code with `str.find` / `str.count`.
Alphabets are tiny so that patterns occur often, overlap, and sit at both ends of the word.
"""

from __future__ import annotations

import pytest
from conftest import reference_occurrences, reference_rewrite
from hypothesis import given, settings
from hypothesis import strategies as st

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.rules import Rule, count_occurrences, rewrite

LETTERS = "ab"
WITH_MARKERS = "abαβ𝔞"  # Greek markers and one letter outside the Basic Multilingual Plane

words = st.text(alphabet=LETTERS, max_size=12) | st.text(alphabet=WITH_MARKERS, max_size=12)
patterns = st.text(alphabet=LETTERS, max_size=4) | st.text(alphabet=WITH_MARKERS, max_size=3)
replacements = st.text(alphabet=WITH_MARKERS + "c", max_size=4)


def reference_overlapping(pattern: str, word: str) -> int:
    """Every start position where `pattern` matches (the empty pattern matches len+1 times)."""
    return sum(word[i : i + len(pattern)] == pattern for i in range(len(word) - len(pattern) + 1))


def reference_occurs(pattern: str, word: str) -> bool:
    return reference_overlapping(pattern, word) > 0


# --- the paper's examples and hand-checked cases ---------------------------------------


@pytest.mark.parametrize(
    ("rule", "word", "expected"),
    [
        ("aa -> bac", "caaba", "cbacba"),
        ("iss -> art", "mississippi", "martissippi"),
        ("iss -> art", "canada", "canada"),
        ("ab -> c", "aabab", "acab"),
        ("aa -> b", "aaa", "ba"),  # overlapping copies: the leftmost one is replaced
        ("-> xy", "abc", "xyabc"),  # the empty pattern matches at position 0
        ("-> xy", "", "xy"),
        ("b ->", "abab", "aab"),  # empty replacement deletes
        ("abc -> d", "ab", "ab"),  # pattern longer than the word
        ("ab -> ba", "ab", "ba"),  # match is the whole word
        ("αβ -> x", "aαβαβ", "axαβ"),
    ],
)
def test_apply_examples(rule, word, expected):
    assert Rule.parse(rule).apply(word) == expected


@pytest.mark.parametrize(
    ("pattern", "word", "disjoint", "overlapping"),
    [
        ("aa", "aaaa", 2, 3),
        ("aa", "aaa", 1, 2),
        ("aba", "ababa", 1, 2),
        ("a", "banana", 3, 3),
        ("", "abc", 4, 4),
        ("", "", 1, 1),
        ("x", "", 0, 0),
        ("ab", "ab", 1, 1),
    ],
)
def test_count_occurrences_examples(pattern, word, disjoint, overlapping):
    assert count_occurrences(pattern, word) == disjoint
    assert count_occurrences(pattern, word, overlapping=True) == overlapping


# --- properties against the references --------------------------------------------------


@settings(max_examples=400)
@given(x=patterns, y=replacements, word=words)
def test_apply_matches_reference(x, y, word):
    rule = Rule(x, y)
    expected = reference_rewrite(x, y, word)
    assert rule.apply(word) == expected
    assert rewrite(x, y, word) == expected
    assert rule.matches(word) == reference_occurs(x, word)
    if not reference_occurs(x, word):
        assert rule.apply(word) == word  # a no-op returns the word unchanged


@settings(max_examples=200)
@given(prefix=words, x=patterns, y=replacements, suffix=words)
def test_apply_on_planted_pattern(prefix, x, y, suffix):
    """A word built around `x` always matches; the result agrees with the reference."""
    word = prefix + x + suffix
    assert Rule(x, y).matches(word)
    assert Rule(x, y).apply(word) == reference_rewrite(x, y, word)


@settings(max_examples=100)
@given(y=replacements, word=words)
def test_empty_pattern_prepends(y, word):
    assert Rule("", y).apply(word) == y + word
    assert Rule("", y).matches(word)


@settings(max_examples=400)
@given(pattern=patterns, word=words)
def test_count_occurrences_matches_reference(pattern, word):
    assert count_occurrences(pattern, word) == reference_occurrences(pattern, word)
    assert Rule(pattern, "").occurrences(word) == reference_occurrences(pattern, word)
    assert count_occurrences(pattern, word, overlapping=True) == reference_overlapping(
        pattern, word
    )


@settings(max_examples=100)
@given(pattern=st.text(alphabet=LETTERS, min_size=1, max_size=3), copies=st.integers(0, 6))
def test_planted_disjoint_copies_are_counted(pattern, copies):
    """c copies laid end to end count c times, even when they overlap one another's letters
    (`aa` in `aaaa`): the dataset's `occurrences` field relies on it."""
    assert count_occurrences(pattern, pattern * copies) == copies
    assert count_occurrences(pattern, "c".join([pattern] * copies)) == copies


# --- the rule text format ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("ab -> c", Rule("ab", "c")),
        ("ab->c", Rule("ab", "c")),
        ("  ab \t->\t c  ", Rule("ab", "c")),
        ("a ->. b", Rule("a", "b", terminal=True)),
        ("a ->.b", Rule("a", "b", terminal=True)),
        ("a -> .b", Rule("a", ".b")),
        ("a ->. .b", Rule("a", ".b", terminal=True)),
        ("a ->..b", Rule("a", ".b", terminal=True)),
        ("-> b", Rule("", "b")),
        ("a ->", Rule("a", "")),
        ("->", Rule("", "")),
        ("->.", Rule("", "", terminal=True)),
        ("α ->.", Rule("α", "", terminal=True)),
        ("αa -> aαβa", Rule("αa", "aαβa")),
        ("- -> >", Rule("-", ">")),
    ],
)
def test_parse_examples(text, rule):
    assert Rule.parse(text) == rule


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Rule("ab", "c"), "ab -> c"),
        (Rule("a", "b", terminal=True), "a ->. b"),
        (Rule("", "b"), "-> b"),
        (Rule("a", ""), "a ->"),
        (Rule("", ""), "->"),
        (Rule("", "", terminal=True), "->."),
    ],
)
def test_str_examples(rule, text):
    assert str(rule) == text


# A side may hold anything but whitespace, '#' and the arrow itself; '-', '>' and '.' are in the
# alphabet on purpose, since they are the characters the parser could confuse with the arrow.
sides = st.text(alphabet="ab.->α", max_size=4).filter(lambda side: "->" not in side)


@settings(max_examples=400)
@given(x=sides, y=sides, terminal=st.booleans())
def test_parse_inverts_str(x, y, terminal):
    rule = Rule(x, y, terminal)
    assert Rule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    "text",
    ["", "   ", "ab", "a > b", "a - > b", "a => b", "a -> b -> c", "a ->. b ->. c", "a -> ->"],
)
def test_parse_rejects_malformed(text):
    with pytest.raises(RewritelabError):
        Rule.parse(text)


def test_parse_error_names_the_text():
    with pytest.raises(RewritelabError, match="a -> b -> c"):
        Rule.parse("a -> b -> c")
    with pytest.raises(RewritelabError, match="no arrow here"):
        Rule.parse("no arrow here")
