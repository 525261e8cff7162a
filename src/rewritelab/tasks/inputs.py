"""Input words for rules: x planted an exact number of times, or absent (a no-op).

For a random pattern of three or more letters, x almost never occurs in a random word by
chance, so an input that must contain x exactly `c` times is built by planting: a random
filler word with `c` copies of x inserted at uniformly drawn gaps. The input's length is drawn
uniformly in `[max(low, c*|x|), high]`; the filler itself never contains x. A no-op input is
a random word of length drawn in `[low, high]` that does not contain x. Every input is then
checked against the exact definition (`count_occurrences`): one with accidental extra
occurrences (filler letters completing a copy, say) is drawn again, so the count is exact.
An input may also carry a near-miss of x (`near_misses`), planted beside the copies the same
way and subject to the same check.
"""

from __future__ import annotations

import numpy as np

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.near_misses import NearMiss
from rewritelab.tasks.strings import count_occurrences, strings_from_codes

CHUNK_ROWS = 65_536  # inputs built per vectorised batch; bounds peak memory
MAX_REDRAWS = 200  # rounds of redrawing inputs that missed their exact occurrence count
NOOP_REDRAWS = 20  # rejection rounds for pattern-free words before the avoiding sampler


def random_words(
    rng: np.random.Generator, code_points: np.ndarray, lengths: np.ndarray, avoid: np.ndarray
) -> list[str]:
    """Random words of the given lengths; row i never uses letter `avoid[i]` (-1: any)."""
    width = int(lengths.max(initial=0))
    restricted = (avoid >= 0)[:, None]
    letters = np.floor(
        rng.random((len(lengths), width))
        * np.where(restricted, len(code_points) - 1, len(code_points))
    )
    letters = letters.astype(np.int64)
    letters += restricted & (letters >= avoid[:, None])  # skip over the avoided letter
    return strings_from_codes(code_points[letters], lengths)


def uniform_lengths(rng: np.random.Generator, low: np.ndarray, high: int) -> np.ndarray:
    """One length per row, uniform in [low[i], high]."""
    return low + np.floor(rng.random(len(low)) * (high - low + 1)).astype(np.int64)


def _avoiding_word(rng: np.random.Generator, alphabet: str, pattern: str, length: int) -> str:
    """A word of `length` letters without `pattern`: letter by letter, never completing it."""
    letters: list[str] = []
    for _ in range(length):
        letter = alphabet[int(rng.integers(len(alphabet)))]
        if "".join(letters[-len(pattern) + 1 :] + [letter]).endswith(pattern):
            others = [c for c in alphabet if c != letter]
            letter = others[int(rng.integers(len(others)))]
        letters.append(letter)
    return "".join(letters)


def pattern_free_words(
    rng: np.random.Generator, alphabet: str, patterns: list[str], lengths: np.ndarray
) -> list[str]:
    """Random words of the given lengths, word i free of `patterns[i]`.

    Single-letter patterns are avoided exactly by drawing from the other letters (uniform over
    all words without that letter); longer ones by rejection, falling back after a few rounds
    to a letter-by-letter sampler that never completes the pattern.
    """
    code_points = np.array([ord(c) for c in alphabet], dtype=np.uint32)
    index = {c: i for i, c in enumerate(alphabet)}
    avoid = np.array([index[p] if len(p) == 1 and len(alphabet) > 1 else -1 for p in patterns])
    words = random_words(rng, code_points, lengths, avoid)
    bad = [i for i, (p, w) in enumerate(zip(patterns, words, strict=True)) if p in w]
    for _ in range(NOOP_REDRAWS):
        if not bad:
            return words
        rows = np.array(bad)
        for i, word in zip(
            bad, random_words(rng, code_points, lengths[rows], avoid[rows]), strict=True
        ):
            words[i] = word
        bad = [i for i in bad if patterns[i] in words[i]]
    for i in bad:
        words[i] = _avoiding_word(rng, alphabet, patterns[i], int(lengths[i]))
    return words


def _plant(filler: str, pieces: list[str], gaps: list[int]) -> str:
    """`filler` with each piece inserted before its gap position (sorted), in order."""
    if len(gaps) == 1:
        return filler[: gaps[0]] + pieces[0] + filler[gaps[0] :]
    parts, previous = [], 0
    for piece, gap in zip(pieces, gaps, strict=True):
        parts.append(filler[previous:gap])
        parts.append(piece)
        previous = gap
    parts.append(filler[previous:])
    return "".join(parts)


def _pieces(
    patterns: list[str], counts: list[int], near_misses: list[NearMiss | None] | None
) -> list[list[str]]:
    """What to plant in each input, in word order: the copies of x and any near-miss."""
    if near_misses is None:
        return [[pattern] * count for pattern, count in zip(patterns, counts, strict=True)]
    return [
        near_miss.items(pattern, count) if near_miss else [pattern] * count
        for pattern, count, near_miss in zip(patterns, counts, near_misses, strict=True)
    ]


def _planted_words(
    rng: np.random.Generator,
    alphabet: str,
    patterns: list[str],
    pieces: list[list[str]],
    length_range: tuple[int, int],
) -> list[str]:
    """Fillers free of `patterns[i]` with the strings `pieces[i]` planted at random gaps."""
    counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    planted = np.fromiter((sum(map(len, row)) for row in pieces), dtype=np.int64, count=len(pieces))
    total = uniform_lengths(rng, np.maximum(length_range[0], planted), length_range[1])
    fillers = pattern_free_words(rng, alphabet, patterns, total - planted)
    widest = max(1, int(counts.max(initial=1)))
    gaps = (rng.random((len(patterns), widest)) * (total - planted + 1)[:, None]).astype(np.int64)
    unused = np.arange(widest)[None, :] >= counts[:, None]
    gaps = np.sort(np.where(unused, np.iinfo(np.int64).max, gaps), axis=1)  # unused slots last
    if widest == 1:  # the common case: one piece at most, no per-row list of gaps
        return [
            filler[:gap] + row[0] + filler[gap:] if row else filler
            for filler, row, gap in zip(fillers, pieces, gaps[:, 0].tolist(), strict=True)
        ]
    return [
        _plant(filler, row, gap_row[: len(row)]) if row else filler
        for filler, row, gap_row in zip(fillers, pieces, gaps.tolist(), strict=True)
    ]


def _fill(
    rng: np.random.Generator,
    alphabet: str,
    patterns: list[str],
    counts: np.ndarray,
    length_range: tuple[int, int],
    near_misses: list[NearMiss | None] | None,
) -> list[str]:
    """Inputs for one chunk: exactly `counts[i]` occurrences (0 for a no-op), redrawn until so."""
    words: list[str | None] = [None] * len(patterns)
    pieces = _pieces(patterns, counts.tolist(), near_misses)
    pending = list(range(len(patterns)))
    for _ in range(MAX_REDRAWS):
        if not pending:
            return words  # type: ignore[return-value]
        sub_patterns = [patterns[i] for i in pending]
        drawn = _planted_words(
            rng, alphabet, sub_patterns, [pieces[i] for i in pending], length_range
        )
        missed = []
        for i, pattern, count, word in zip(
            pending, sub_patterns, counts[pending].tolist(), drawn, strict=True
        ):
            if count_occurrences(pattern, word) == count:
                words[i] = word
            else:
                missed.append(i)
        pending = missed
    index = pending[0]
    raise RewritelabError(
        f"could not build an input of length {list(length_range)} holding pattern "
        f"{patterns[index]!r} exactly {int(counts[index])} times; widen input_length"
    )


def build_inputs(
    rng: np.random.Generator,
    alphabet: str,
    patterns: list[str],
    counts: np.ndarray,
    length_range: tuple[int, int],
    near_misses: list[NearMiss | None] | None = None,
) -> list[str]:
    """One input word per pattern holding it exactly `counts[i]` times (0 means a no-op input),
    and the planned near-miss of each example where there is one (see `near_misses`)."""
    words: list[str] = []
    for start in range(0, len(patterns), CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        plan = None if near_misses is None else near_misses[start:stop]
        words.extend(
            _fill(rng, alphabet, patterns[start:stop], counts[start:stop], length_range, plan)
        )
    return words
