"""The checks of a rewrite-task spec: lengths, the family and occurrence mix, near-misses,
subsampling, and whether enough distinct rules exist."""

from __future__ import annotations

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.families import block_sizes, get_family, rule_capacity, uses_k
from rewritelab.tasks.near_misses import NEAR_MISS_KINDS
from rewritelab.tasks.spec import DatasetSpec, SplitSpec, check_counts, check_range, check_spread


def _check_lengths(split: SplitSpec, name: str) -> None:
    check_range(split.input_length, f"{name}.input_length", 0)
    check_range(split.pattern_length, f"{name}.pattern_length", 1)
    check_range(split.replacement_length, f"{name}.replacement_length", 0)
    if not 0 <= split.noop_share <= 1:
        raise RewritelabError(f"{name}.noop_share must be in [0, 1], got {split.noop_share}")
    if split.noop_share < 1:
        if min(split.occurrences) < 1:
            raise RewritelabError(f"{name}.occurrences must all be >= 1, got {split.occurrences}")
        longest = max(split.occurrences) * split.pattern_length[1]
        if longest > split.input_length[1]:
            raise RewritelabError(
                f"{name}: {max(split.occurrences)} occurrences of patterns up to "
                f"{split.pattern_length[1]} letters need inputs of {longest} letters, but "
                f"input_length allows at most {split.input_length[1]}"
            )


def _check_near_misses(split: SplitSpec, name: str, alphabet_size: int) -> None:
    share, kinds = split.near_miss_share, split.near_miss_kinds
    if not 0 <= share <= 1:
        raise RewritelabError(f"{name}.near_miss_share must be in [0, 1], got {share}")
    unknown = [kind for kind in kinds if kind not in NEAR_MISS_KINDS]
    if unknown or not kinds or len(set(kinds)) < len(kinds):
        raise RewritelabError(
            f"{name}.near_miss_kinds must name distinct kinds among "
            f"{', '.join(NEAR_MISS_KINDS)}, got {list(kinds)}"
        )
    if share == 0:
        return
    if "substitution" in kinds and alphabet_size < 2:
        raise RewritelabError(f"{name}: substitution near-misses need at least 2 letters")
    longest = split.pattern_length[1]
    needed = (max(split.occurrences) + 1) * longest
    if longest >= 2 and needed > split.input_length[1]:
        raise RewritelabError(
            f"{name}: near-misses beside {max(split.occurrences)} occurrences of patterns up to "
            f"{longest} letters need inputs of {needed} letters, but input_length allows at "
            f"most {split.input_length[1]}"
        )


def check_weights(weights: tuple[float, ...] | None, count: int, where: str) -> None:
    if weights is None:
        return
    if len(weights) != count or min(weights) < 0 or sum(weights) <= 0:
        raise RewritelabError(
            f"{where} must hold {count} non-negative weights with a positive sum, got {weights}"
        )


def _check_mix(split: SplitSpec, name: str, alphabet_size: int) -> None:
    if not split.families:
        raise RewritelabError(f"{name}.families must name at least one family")
    for family_name in split.families:
        get_family(family_name)
    check_weights(split.family_weights, len(split.families), f"{name}.family_weights")
    check_weights(split.occurrence_weights, len(split.occurrences), f"{name}.occurrence_weights")
    if uses_k(split):
        check_range(split.k, f"{name}.k", 1)
        for k in range(split.k[0], split.k[1] + 1):
            for side in ("pattern_length", "replacement_length"):
                lengths = getattr(split, side)
                if not block_sizes(k, (max(1, lengths[0]), lengths[1])):
                    raise RewritelabError(
                        f"{name}: k = {k} cannot fit {side} {list(lengths)} "
                        f"(a structured pattern has length m*k with m >= 1)"
                    )
    if split.noop_share > 0 and alphabet_size < 2:
        raise RewritelabError(f"{name}: no-op inputs need an alphabet of at least 2 letters")


def _rule_shape(split: SplitSpec) -> tuple:
    """The settings that decide which rules a split can draw."""
    return (split.families, split.k, split.pattern_length, split.replacement_length)


def check_split(split: SplitSpec, name: str, alphabet_size: int) -> None:
    """Raise RewritelabError naming the first impossible or inconsistent setting."""
    check_counts(split, name)
    check_spread(split.spread, split.alpha, f"{name}.spread")
    _check_lengths(split, name)
    _check_mix(split, name, alphabet_size)
    _check_near_misses(split, name, alphabet_size)
    if split.subsample is not None:
        if not 0 < split.subsample <= 1:
            raise RewritelabError(f"{name}.subsample must be in (0, 1], got {split.subsample}")
        check_spread(split.subsample_spread, split.subsample_alpha, f"{name}.subsample_spread")


def check_spec(spec: DatasetSpec) -> None:
    """Every check of a rewrite-task spec, naming the first bad setting."""
    if len(spec.alphabet) < 2:
        raise RewritelabError(
            f"alphabet {spec.alphabet!r} has one letter; the rule task needs at least 2 "
            "(with one, every input is a run of it, and x cannot be planted an exact "
            "number of times)"
        )
    check_split(spec.train, "train", len(spec.alphabet))
    check_split(spec.test, "test", len(spec.alphabet))
    if spec.test.subsample is not None:
        raise RewritelabError("test.subsample is not supported: subsample the training set")
    _check_capacity(spec)


def _check_capacity(spec: DatasetSpec) -> None:
    size = len(spec.alphabet)
    wanted = spec.train.instructions + spec.test.instructions
    capacity = rule_capacity(spec.train, size)
    if _rule_shape(spec.train) != _rule_shape(spec.test):
        capacity += rule_capacity(spec.test, size)  # different rule sets: an upper bound
    for name, split in (("train", spec.train), ("test", spec.test)):
        if split.instructions > rule_capacity(split, size):
            raise RewritelabError(
                f"{name}: {split.instructions} instructions requested, but the alphabet "
                f"({size} letters) and lengths allow at most {rule_capacity(split, size)} "
                "distinct rules"
            )
    if wanted > capacity:
        raise RewritelabError(
            f"{wanted} distinct train + test instructions requested, but at most {capacity} "
            "distinct rules exist for this alphabet and these lengths"
        )
