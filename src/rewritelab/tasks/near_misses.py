"""Near-misses of a pattern: strings that look like x but are not x, planted beside the real one.

A model that finds one letter of x, or the first place where most of x matches, is right on
most random inputs: a random word rarely holds anything close to x. Planting near-misses in a
chosen share of the inputs forces exact, leftmost matching. The kinds:

- `substitution`: x with one letter changed (`abc` -> `abd`);
- `prefix`:       a proper prefix of x (`abc` -> `ab`), somewhere apart from the real x;
- `suffix`:       a proper suffix of x (`abc` -> `bc`), likewise;
- `overlap`:      a proper prefix of x glued just before the real x (`ab` + `abc` -> `ababc`),
                  or a proper suffix glued just after it (`abc` + `bc`), so that windows across
                  the joint overlap x and the leftmost exact match must be found.

A near-miss goes before or after the real match (one coin per example) and, in a no-op input,
anywhere. Only patterns of two or more letters have near-misses (every other letter "is" one
of a single-letter x). Which examples get one, and of which kind, is exact: the share of the
eligible examples, split evenly among the kinds by largest remainder, from its own seeded
stream. Whether planting left x's occurrence count exact is checked by `inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR_MISS_KINDS = ("substitution", "prefix", "suffix", "overlap")
PLACEMENTS = ("before", "after")  # relative to the first real occurrence of x


@dataclass(frozen=True)
class NearMiss:
    """One planted near-miss: its kind, its text, and where it goes relative to the real x."""

    kind: str
    text: str
    placement: str

    def items(self, pattern: str, count: int) -> list[str]:
        """The strings to plant, in word order: `count` copies of x and this near-miss."""
        copies = [pattern] * count
        if not copies:
            return [self.text]
        if self.kind == "overlap":
            glued = self.text + pattern if self.placement == "before" else pattern + self.text
            return [glued, *copies[1:]]
        if self.placement == "before":
            return [self.text, *copies]
        return [copies[0], self.text, *copies[1:]]


def eligible(pattern: str) -> bool:
    """Whether x can have a near-miss: it has at least two letters."""
    return len(pattern) >= 2


def near_miss_text(rng: np.random.Generator, alphabet: str, pattern: str, kind: str) -> str:
    """A substitution, prefix or suffix of `pattern`: resembles it, never equal to it."""
    if kind == "substitution":
        position = int(rng.integers(len(pattern)))
        others = [c for c in alphabet if c != pattern[position]]
        letter = others[int(rng.integers(len(others)))]
        return pattern[:position] + letter + pattern[position + 1 :]
    cut = int(rng.integers(1, len(pattern)))  # a proper, non-empty part
    if kind == "suffix":
        return pattern[cut:]
    return pattern[:cut]


def plan_near_misses(
    rng: np.random.Generator,
    alphabet: str,
    patterns: list[str],
    share: float,
    kinds: tuple[str, ...],
) -> list[NearMiss | None]:
    """Per example, the near-miss to plant or None: exactly round(share * eligible) of them."""
    plan: list[NearMiss | None] = [None] * len(patterns)
    rows = [i for i, pattern in enumerate(patterns) if eligible(pattern)]
    chosen = rng.permutation(len(rows))[: int(round(share * len(rows)))]
    counts = _even_counts(len(chosen), len(kinds))
    kind_of = rng.permutation(np.repeat(np.arange(len(kinds)), counts))
    placements = rng.integers(len(PLACEMENTS), size=len(chosen))
    for position, kind_index, placement in zip(
        np.sort(chosen).tolist(), kind_of.tolist(), placements.tolist(), strict=True
    ):
        row, kind = rows[position], kinds[kind_index]
        text = _text_for(rng, alphabet, patterns[row], kind, PLACEMENTS[placement])
        plan[row] = NearMiss(kind, text, PLACEMENTS[placement])
    return plan


def _text_for(
    rng: np.random.Generator, alphabet: str, pattern: str, kind: str, placement: str
) -> str:
    """An overlap glues a prefix before x or a suffix after it; other kinds use their own."""
    if kind == "overlap":
        return near_miss_text(
            rng, alphabet, pattern, "prefix" if placement == "before" else "suffix"
        )
    return near_miss_text(rng, alphabet, pattern, kind)


def _even_counts(total: int, parts: int) -> np.ndarray:
    """`total` split into `parts` counts that differ by at most one, the larger ones first."""
    counts = np.full(parts, total // parts, dtype=np.int64)
    counts[: total % parts] += 1
    return counts


def is_near_miss(pattern: str, text: str, kind: str) -> bool:
    """Whether `text` is a near-miss of `pattern` of this kind (an independent definition)."""
    if text == pattern or not text:
        return False
    if kind == "substitution":
        differences = sum(a != b for a, b in zip(pattern, text, strict=False))
        return len(text) == len(pattern) and differences == 1
    if kind == "prefix":
        return pattern.startswith(text)
    if kind == "suffix":
        return pattern.endswith(text)
    if kind == "overlap":
        return pattern.startswith(text) or pattern.endswith(text)
    return False
