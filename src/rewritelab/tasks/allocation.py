"""Exact, seeded allocations: which instruction (or category) each example gets, in counts
that match the requested shares exactly."""

from __future__ import annotations

import numpy as np


def uniform_assignment(rng: np.random.Generator, instructions: int, total: int) -> np.ndarray:
    """`total` instruction ids, each instruction floor(total/I) or one more times, shuffled."""
    counts = np.full(instructions, total // instructions, dtype=np.int64)
    counts[rng.permutation(instructions)[: total % instructions]] += 1
    return rng.permutation(np.repeat(np.arange(instructions), counts))


def power_assignment(
    rng: np.random.Generator, instructions: int, total: int, alpha: float
) -> np.ndarray:
    """Instruction floor(u*I) per example, u drawn from density alpha * u^(alpha - 1) on [0, 1)."""
    u = rng.random(total) ** (1.0 / alpha)
    return np.minimum((u * instructions).astype(np.int64), instructions - 1)


def assign(
    rng: np.random.Generator, instructions: int, total: int, spread: str, alpha: float
) -> np.ndarray:
    if spread == "power":
        return power_assignment(rng, instructions, total, alpha)
    return uniform_assignment(rng, instructions, total)


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to `total`, each the floor of its share plus at most one."""
    counts = np.floor(shares).astype(np.int64)
    remainder = total - int(counts.sum())
    counts[np.argsort(-(shares - counts), kind="stable")[:remainder]] += 1
    return counts


def exact_allocation(rng: np.random.Generator, total: int, weights: np.ndarray) -> np.ndarray:
    """Category per item, with counts exactly proportional to `weights` (largest remainder)."""
    shares = np.asarray(weights, dtype=float) / np.sum(weights) * total
    counts = largest_remainder(shares, total)
    return rng.permutation(np.repeat(np.arange(len(weights)), counts))


def named_stream(seed: int, name: str, names: tuple[str, ...]) -> np.random.Generator:
    """The independent random generator of one named source of randomness among `names` (a
    task's list: a name's position, never `seed + i`, sets its stream)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(names.index(name),)))
