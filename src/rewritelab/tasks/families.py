"""How instructions are drawn: rule families and vectorised pattern sampling.

Every family builds a pattern from a *block* of `m` random letters and a parameter `k`
(the paper's semantic experiment, E3):

- `random`:   the block itself (`k` plays no role; length `m`);
- `repeated`: each letter of the block written `k` times (`abc`, k=3 -> `aaabbbccc`);
- `periodic`: the block written `k` times (`abc`, k=2 -> `abcabc`);
- `mirror`:   `k` segments alternating the block and its reverse (`abc`, k=3 -> `abccbaabc`).

A structured pattern has length `m * k`; `m` is drawn uniformly among the values that keep
the length inside the requested range. A rule's `x` and `y` come from the same family with
the same `k`. Patterns are sampled in bulk with numpy and turned into Python strings in one
go, which is what keeps generating 10^6 examples fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.strings import strings_from_codes

if TYPE_CHECKING:
    from rewritelab.tasks.spec import SplitSpec

# A family maps output positions j (shape (1, L)) of a pattern made of a block of m letters
# (shape (n, 1)) with parameter k (shape (n, 1)) to the block position each output letter copies.
BlockIndex = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _mirror_index(j: np.ndarray, m: np.ndarray, k: np.ndarray) -> np.ndarray:
    segment, offset = j // m, j % m
    return np.where(segment % 2 == 0, offset, m - 1 - offset)


@dataclass(frozen=True)
class Family:
    """A rule family: its name, whether `k` shapes it, and how a block becomes a pattern."""

    name: str
    uses_k: bool
    block_index: BlockIndex


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("random", False, lambda j, m, k: j),
        Family("repeated", True, lambda j, m, k: j // k),
        Family("periodic", True, lambda j, m, k: j % m),
        Family("mirror", True, _mirror_index),
    )
}


def get_family(name: str) -> Family:
    """The registered family called `name`, or a one-line error listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(FAMILIES)
        raise RewritelabError(f"unknown rule family {name!r} (known: {known})") from None


def block_sizes(k: int, length_range: tuple[int, int]) -> range:
    """The block sizes m >= 1 for which a pattern of length m*k lies in `length_range`."""
    low, high = length_range
    return range(max(1, -(-low // k)), high // k + 1)


def pattern_count_bound(
    family: Family, k_range: tuple[int, int], length_range: tuple[int, int], alphabet_size: int
) -> int:
    """Distinct patterns the family can produce (exact for `random`, else an upper bound)."""
    if not family.uses_k:
        return sum(alphabet_size**length for length in range(length_range[0], length_range[1] + 1))
    ks = range(k_range[0], k_range[1] + 1)
    return sum(alphabet_size**m for k in ks for m in block_sizes(k, length_range))


@dataclass(frozen=True)
class PatternSampler:
    """Draws patterns of given families over an alphabet, in bulk, reproducibly from an rng."""

    alphabet: str

    @property
    def code_points(self) -> np.ndarray:
        return np.array([ord(c) for c in self.alphabet], dtype=np.uint32)

    def draw_block_sizes(
        self, rng: np.random.Generator, k: np.ndarray, uses_k: np.ndarray, lengths: tuple[int, int]
    ) -> np.ndarray:
        """For each rule, a block size m uniform among those fitting `lengths` given its k.

        A random pattern is its own block and may be empty when the range allows it; a
        structured one needs a block of at least one letter.
        """
        effective_k = np.where(uses_k, k, 1)
        low = np.maximum(np.where(uses_k, 1, 0), -(-lengths[0] // effective_k))
        high = lengths[1] // effective_k
        return low + np.floor(rng.random(len(k)) * (high - low + 1)).astype(np.int64)

    def draw(
        self,
        rng: np.random.Generator,
        family_ids: np.ndarray,
        k: np.ndarray,
        lengths: tuple[int, int],
    ) -> list[str]:
        """One pattern per rule: family `family_ids[i]` (index into FAMILIES), parameter `k[i]`."""
        families = list(FAMILIES.values())
        uses_k = np.array([f.uses_k for f in families])[family_ids]
        m = self.draw_block_sizes(rng, k, uses_k, lengths)
        pattern_lengths = m * np.where(uses_k, k, 1)
        width = int(pattern_lengths.max(initial=0))
        # Every family reads block positions below `width`, so a block of that width suffices.
        blocks = rng.integers(0, len(self.alphabet), size=(len(k), width), dtype=np.int32)
        if uses_k.any():
            positions = np.arange(width, dtype=np.int32)[None, :]
            source = np.broadcast_to(positions, blocks.shape).copy()
            for family_id, family in enumerate(families):
                rows = (family_ids == family_id) & uses_k
                if rows.any():
                    source[rows] = family.block_index(positions, m[rows, None], k[rows, None])
            blocks = np.take_along_axis(blocks, source, axis=1)
        codes = self.code_points[blocks]
        return strings_from_codes(codes, pattern_lengths)


def uses_k(split: SplitSpec) -> bool:
    """Whether any family of the split's mix draws structured patterns (of block size k)."""
    return any(get_family(name).uses_k for name in split.families)


def pattern_capacity(split: SplitSpec, alphabet_size: int) -> int:
    """Upper bound on distinct patterns x of a split (exact for the random family alone)."""
    return _capacity(split, split.pattern_length, alphabet_size)


def rule_capacity(split: SplitSpec, alphabet_size: int) -> int:
    """Upper bound on distinct rules (x, y) with x != y a split's composition can produce."""
    patterns = pattern_capacity(split, alphabet_size)
    replacements = _capacity(split, split.replacement_length, alphabet_size)
    return patterns * replacements - min(patterns, replacements)


def _capacity(split: SplitSpec, lengths: tuple[int, int], alphabet_size: int) -> int:
    return sum(
        pattern_count_bound(get_family(name), split.k, lengths, alphabet_size)
        for name in split.families
    )
