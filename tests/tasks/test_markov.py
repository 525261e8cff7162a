"""Markov algorithms: the file format, the run semantics, and the shipped example algorithms.

Runs are checked against a reference interpreter written here from the definition (first
applicable rule in order, leftmost occurrence, stop on a terminal rule, on no applicable rule,
or at the step limit); each algorithm in examples/algorithms against a plain Python function.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from conftest import reference_rewrite
from hypothesis import given, settings
from hypothesis import strategies as st

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.rules import Halt, MarkovAlgorithm, Rule, TraceStep

ALGORITHMS = Path(__file__).resolve().parents[2] / "examples" / "algorithms"


def all_words(alphabet: str, max_length: int) -> list[str]:
    """Every word over `alphabet` of length 0..max_length."""
    return [
        "".join(letters)
        for length in range(max_length + 1)
        for letters in itertools.product(alphabet, repeat=length)
    ]


def occurs(pattern: str, word: str) -> bool:
    return any(word[i : i + len(pattern)] == pattern for i in range(len(word) - len(pattern) + 1))


def reference_run(rules: list[Rule], word: str, max_steps: int):
    """(output, steps, halt, [(step, rule index, word after)]) straight from the definition."""
    trace = []
    while True:
        applicable = [index for index, rule in enumerate(rules) if occurs(rule.x, word)]
        if not applicable:
            return word, len(trace), Halt.NO_RULE, trace
        if len(trace) == max_steps:
            return word, len(trace), Halt.STEP_LIMIT, trace
        rule = rules[applicable[0]]
        word = reference_rewrite(rule.x, rule.y, word)
        trace.append((len(trace) + 1, applicable[0], word))
        if rule.terminal:
            return word, len(trace), Halt.TERMINAL, trace


def load(name: str) -> MarkovAlgorithm:
    return MarkovAlgorithm.parse((ALGORITHMS / name).read_text(encoding="utf-8"))


# --- parsing ----------------------------------------------------------------------------


def test_parse_skips_comments_and_blank_lines():
    text = "# a header\n\nba -> ab   # swap\n   \n  # indented comment\nb ->. \n-> c\n"
    algorithm = MarkovAlgorithm.parse(text)
    assert algorithm.rules == (Rule("ba", "ab"), Rule("b", "", terminal=True), Rule("", "c"))


def test_parse_accepts_windows_line_endings():
    assert MarkovAlgorithm.parse("a -> b\r\nb ->. c\r\n").rules == (
        Rule("a", "b"),
        Rule("b", "c", terminal=True),
    )


def test_parse_error_gives_the_line_number():
    with pytest.raises(RewritelabError, match=r"line 4\b.*'oops'"):
        MarkovAlgorithm.parse("# comment\na -> b\n\noops\nc -> d\n")
    with pytest.raises(RewritelabError, match=r"line 2\b"):
        MarkovAlgorithm.parse("a -> b\na -> b -> c\n")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   # another\n\n"])
def test_parse_refuses_an_empty_algorithm(text):
    with pytest.raises(RewritelabError, match="no rules"):
        MarkovAlgorithm.parse(text)


def test_str_parses_back():
    algorithm = load("double_reverse.markov")
    assert MarkovAlgorithm.parse(str(algorithm)) == algorithm


# --- run semantics on hand-checked cases ------------------------------------------------


def test_first_applicable_rule_wins_over_a_more_leftward_match():
    algorithm = MarkovAlgorithm((Rule("b", "x"), Rule("a", "y")))
    assert algorithm.step("ab") == (0, "ax")  # rule 0 fires although `a` occurs further left
    assert algorithm.step("aa") == (1, "ya")
    assert algorithm.step("cc") is None


def test_leftmost_occurrence_is_rewritten():
    algorithm = MarkovAlgorithm((Rule("aa", "b"),))
    assert algorithm.step("caaaa") == (0, "cbaa")


def test_terminal_rule_stops_even_when_rules_still_apply():
    algorithm = MarkovAlgorithm.parse("a ->. b\nb -> c\n")
    result = algorithm.run("aa")
    assert (result.output, result.steps, result.halt) == ("ba", 1, Halt.TERMINAL)
    assert result.finished


def test_stops_when_no_rule_applies():
    result = MarkovAlgorithm.parse("a -> b\n").run("caaa")
    assert (result.output, result.steps, result.halt) == ("cbbb", 3, Halt.NO_RULE)
    assert result.finished


def test_no_rule_applies_to_the_input():
    result = MarkovAlgorithm.parse("a -> b\n").run("ccc")
    assert (result.output, result.steps, result.halt) == ("ccc", 0, Halt.NO_RULE)


@pytest.mark.parametrize("rules", ["a -> aa\n", "-> a\n", "a -> a\n"])
def test_step_limit_is_reported_not_looped(rules):
    result = MarkovAlgorithm.parse(rules).run("a", max_steps=50)
    assert result.halt is Halt.STEP_LIMIT
    assert not result.finished
    assert result.steps == 50
    assert result.output == ("a" if rules == "a -> a\n" else "a" * 51)


def test_limit_reached_exactly_as_the_algorithm_ends_counts_as_finished():
    algorithm = MarkovAlgorithm.parse("a -> b\n")
    assert algorithm.run("aaa", max_steps=3).halt is Halt.NO_RULE
    stopped = algorithm.run("aaa", max_steps=2)
    assert (stopped.output, stopped.steps, stopped.halt) == ("bba", 2, Halt.STEP_LIMIT)
    terminal = MarkovAlgorithm.parse("a ->. b\n").run("aa", max_steps=1)
    assert (terminal.output, terminal.halt) == ("ba", Halt.TERMINAL)


def test_zero_steps_leaves_the_word_and_says_why():
    algorithm = MarkovAlgorithm.parse("a -> b\n")
    blocked = algorithm.run("aa", max_steps=0)
    assert (blocked.output, blocked.steps, blocked.halt) == ("aa", 0, Halt.STEP_LIMIT)
    idle = algorithm.run("cc", max_steps=0)
    assert (idle.output, idle.steps, idle.halt) == ("cc", 0, Halt.NO_RULE)


def test_negative_step_limit_is_refused():
    with pytest.raises(RewritelabError, match="max_steps"):
        MarkovAlgorithm.parse("a -> b\n").run("a", max_steps=-1)


def test_trace_records_every_step():
    algorithm = MarkovAlgorithm.parse("ba -> ab\nc ->. \n")
    result = algorithm.run("bbac", trace=True)
    assert result.trace == [
        TraceStep(1, 0, Rule("ba", "ab"), "babc"),
        TraceStep(2, 0, Rule("ba", "ab"), "abbc"),
        TraceStep(3, 1, Rule("c", "", terminal=True), "abb"),
    ]
    assert (result.output, result.steps, result.halt) == ("abb", 3, Halt.TERMINAL)
    assert algorithm.run("bbac").trace == []  # no trace unless asked


def test_paper_example_runs_as_described():
    result = load("double_reverse.markov").run("abb", trace=True)
    assert result.output == "abbbba"
    assert result.halt is Halt.TERMINAL
    assert result.trace[0].word == "αabb"  # the first step inserts the marker
    assert str(result.trace[-1].rule) == "α ->."


# --- run semantics against the reference interpreter ------------------------------------

rule_strategy = st.builds(
    Rule,
    x=st.text(alphabet="ab", max_size=2),
    y=st.text(alphabet="abc", max_size=3),
    terminal=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(rule_strategy, min_size=1, max_size=4),
    word=st.text(alphabet="abc", max_size=6),
    max_steps=st.integers(0, 20),
)
def test_run_matches_reference_interpreter(rules, word, max_steps):
    result = MarkovAlgorithm(tuple(rules)).run(word, max_steps=max_steps, trace=True)
    output, steps, halt, trace = reference_run(rules, word, max_steps)
    assert (result.output, result.steps, result.halt) == (output, steps, halt)
    assert [(s.step, s.rule_index, s.word) for s in result.trace] == trace
    assert all(s.rule == rules[s.rule_index] for s in result.trace)


# --- the example algorithms -------------------------------------------------------------


def run_to_end(algorithm: MarkovAlgorithm, word: str, halt: Halt | None = None) -> str:
    result = algorithm.run(word, max_steps=100_000)
    assert result.finished, f"{word!r} hit the step limit"
    if halt is not None:
        assert result.halt is halt, word
    return result.output


def test_binary_to_unary():
    algorithm = load("binary_to_unary.markov")
    for word in all_words("01", 9):
        assert run_to_end(algorithm, word, Halt.NO_RULE) == "|" * int(word or "0", 2), word


def test_double_reverse():
    algorithm = load("double_reverse.markov")
    for word in all_words("ab", 10):
        assert run_to_end(algorithm, word, Halt.TERMINAL) == word + word[::-1], word


def test_sort_abc():
    algorithm = load("sort_abc.markov")
    for word in all_words("abc", 8):
        assert run_to_end(algorithm, word, Halt.NO_RULE) == "".join(sorted(word)), word


def test_unary_addition():
    algorithm = load("unary_addition.markov")
    for word in all_words("|+", 10):
        total = sum(len(summand) for summand in word.split("+"))
        assert run_to_end(algorithm, word, Halt.NO_RULE) == "|" * total, word


def test_binary_increment():
    algorithm = load("binary_increment.markov")
    for word in all_words("01", 10):
        expected = format(int(word or "0", 2) + 1, f"0{len(word)}b")
        assert run_to_end(algorithm, word, Halt.TERMINAL) == expected, word


EXAMPLE_FILES = sorted(path.name for path in ALGORITHMS.glob("*.markov"))
README_EXAMPLE = re.compile(
    r"`rewritelab markov examples/algorithms/(\S+) ('[^']*'|\S+)` prints `([^`]*)`"
)


def test_every_algorithm_has_a_test_and_a_header():
    tested = {
        "binary_to_unary",
        "double_reverse",
        "sort_abc",
        "unary_addition",
        "binary_increment",
    }  # a new file needs its own test above
    assert {Path(name).stem for name in EXAMPLE_FILES} == tested
    for name in EXAMPLE_FILES:
        text = (ALGORITHMS / name).read_text(encoding="utf-8")
        header = text.splitlines()[:3]
        assert all(line.startswith("#") for line in header), name
        assert "Input:" in text and "Output:" in text, name


def test_readme_examples_are_true():
    """Every `rewritelab markov examples/algorithms/FILE WORD` in the README prints what it says."""
    readme = (ALGORITHMS / "README.md").read_text(encoding="utf-8")
    examples = README_EXAMPLE.findall(readme)
    assert {name for name, _, _ in examples} == set(EXAMPLE_FILES)
    for name, word, printed in examples:
        assert load(name).run(word.strip("'")).output == printed, name
