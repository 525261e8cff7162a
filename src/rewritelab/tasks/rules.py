"""Rewrite rules and Markov algorithms: the task's exact semantics, in pure Python.

A rule `x -> y` rewrites a word by replacing the *leftmost* occurrence of `x` with `y`; when
`x` does not occur the word is returned unchanged (a no-op). The empty pattern occurs at
position 0 of every word, so `-> y` prepends `y`. A Markov algorithm is an ordered list of
rules: each step applies the first rule whose pattern occurs; it stops after a terminal rule
fired, when no rule applies, or at a step limit. Words are Python strings over any Unicode
alphabet (marker symbols such as Greek letters are fine).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.strings import count_occurrences

ARROW = "->"
TERMINAL_ARROW = "->."
COMMENT = "#"

_RULE_LINE = re.compile(r"^(?P<x>.*?)\s*->(?P<terminal>\.?)(?P<y>.*)$")


def rewrite(x: str, y: str, word: str) -> str:
    """`word` with its leftmost `x` replaced by `y`; `word` itself if `x` is absent."""
    position = word.find(x)
    if position < 0:
        return word
    return word[:position] + y + word[position + len(x) :]


@dataclass(frozen=True)
class Rule:
    """One instruction: rewrite the leftmost `x` as `y` (`terminal` only matters in algorithms)."""

    x: str
    y: str
    terminal: bool = False

    def matches(self, word: str) -> bool:
        """Whether the rule applies to `word`, i.e. `x` occurs in it."""
        return self.x in word

    def apply(self, word: str) -> str:
        """`word` with the leftmost occurrence of `x` replaced by `y`; `word` itself if none."""
        return rewrite(self.x, self.y, word)

    def occurrences(self, word: str) -> int:
        """Occurrences of `x` in `word`, disjoint copies (see `count_occurrences`)."""
        return count_occurrences(self.x, word)

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Read `x -> y` (or `x ->. y` for a terminal rule); an empty side is the empty word.

        Spaces around either side are ignored, so a side cannot start or end with a space.
        The terminal marker is a dot written right after the arrow: `a ->. b` and `a ->.b` are
        terminal, `a -> .b` is an ordinary rule whose replacement is `.b`.
        """
        match = _RULE_LINE.match(text.strip())
        if match is None:
            raise RewritelabError(f"not a rule (expected 'x -> y' or 'x ->. y'): {text!r}")
        y = match["y"].strip()
        if ARROW in y:
            raise RewritelabError(f"a rule has one arrow, found more in {text!r}")
        return cls(match["x"].strip(), y, terminal=bool(match["terminal"]))

    def __str__(self) -> str:
        arrow = TERMINAL_ARROW if self.terminal else ARROW
        return f"{self.x} {arrow} {self.y}".strip()


class Halt(enum.Enum):
    """Why a Markov algorithm stopped."""

    TERMINAL = "terminal rule"
    NO_RULE = "no rule applies"
    STEP_LIMIT = "step limit"


@dataclass(frozen=True)
class TraceStep:
    """One step of a run: the rule that fired (its index and itself) and the word after it."""

    step: int
    rule_index: int
    rule: Rule
    word: str


@dataclass(frozen=True)
class RunResult:
    """The outcome of running an algorithm: final word, steps taken, why it stopped."""

    output: str
    steps: int
    halt: Halt
    trace: list[TraceStep] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True when the algorithm halted by itself (terminal rule or no rule), not by the limit."""
        return self.halt is not Halt.STEP_LIMIT


@dataclass(frozen=True)
class MarkovAlgorithm:
    """An ordered list of rules, run by Markov's normal-algorithm semantics."""

    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))

    @classmethod
    def parse(cls, text: str) -> MarkovAlgorithm:
        """One rule per line (`x -> y`, `x ->. y`); `#` starts a comment; blank lines skipped."""
        rules = []
        for number, line in enumerate(text.splitlines(), start=1):
            content = line.split(COMMENT, 1)[0].strip()
            if not content:
                continue
            try:
                rules.append(Rule.parse(content))
            except RewritelabError as error:
                raise RewritelabError(f"line {number}: {error}") from None
        if not rules:
            raise RewritelabError("the algorithm has no rules")
        return cls(tuple(rules))

    def step(self, word: str) -> tuple[int, str] | None:
        """Apply the first applicable rule once: (its index, the new word), or None if none does."""
        for index, rule in enumerate(self.rules):
            if rule.matches(word):
                return index, rule.apply(word)
        return None

    def run(self, word: str, max_steps: int = 10_000, trace: bool = False) -> RunResult:
        """Run from `word` until a terminal rule fires, no rule applies, or `max_steps` steps."""
        if max_steps < 0:
            raise RewritelabError(f"max_steps must be >= 0, got {max_steps}")
        steps: list[TraceStep] = []
        for step_number in range(1, max_steps + 1):
            fired = self.step(word)
            if fired is None:
                return RunResult(word, step_number - 1, Halt.NO_RULE, steps)
            index, word = fired
            rule = self.rules[index]
            if trace:
                steps.append(TraceStep(step_number, index, rule, word))
            if rule.terminal:
                return RunResult(word, step_number, Halt.TERMINAL, steps)
        if self.step(word) is None:
            return RunResult(word, max_steps, Halt.NO_RULE, steps)
        return RunResult(word, max_steps, Halt.STEP_LIMIT, steps)

    def __str__(self) -> str:
        return "\n".join(str(rule) for rule in self.rules)
