"""Letter-string primitives the generators and the rule semantics share: counting a pattern's
occurrences in a word, and turning arrays of code points into Python strings in bulk."""

from __future__ import annotations

import numpy as np


def count_occurrences(pattern: str, word: str, overlapping: bool = False) -> int:
    """How many times `pattern` occurs in `word`.

    By default occurrences are counted the way a left-to-right scan finds disjoint copies (as
    `str.count` does): `count_occurrences("aa", "aaaa") == 2`. This is the count recorded as
    `occurrences` in every dataset: planting c copies of x gives c occurrences even when the
    copies touch. With `overlapping=True` every start position counts: `("aa", "aaaa") -> 3`.
    The empty pattern occurs at every position, `len(word) + 1` times, either way.
    """
    if not overlapping or not pattern:
        return word.count(pattern)
    count, start = 0, word.find(pattern)
    while start >= 0:
        count += 1
        start = word.find(pattern, start + 1)
    return count


def strings_from_codes(codes: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Rows of Unicode code points (n, L), each cut to its length, as Python strings.

    Positions past a row's length are zeroed; numpy's fixed-width unicode view drops trailing
    NULs, so the conversion is a single vectorised view (alphabets never contain NUL).
    """
    n, width = codes.shape
    if width == 0:
        return [""] * n
    codes = np.where(np.arange(width)[None, :] < lengths[:, None], codes, 0).astype("<u4")
    return np.ascontiguousarray(codes).view(f"<U{width}").ravel().tolist()
