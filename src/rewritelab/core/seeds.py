"""Named sources of randomness: one `numpy.random.SeedSequence` stream per source.

A stream is derived from the run's `seed`, the source's name and optional extra parts (the
epoch, a split name, the step), never by `seed + i`, so streams never overlap and a batch or a
dropout mask is a pure function of (seed, step): resuming needs no hidden generator state.
"""

from __future__ import annotations

import numpy as np

SEED_STREAMS = ("model_init", "data_order", "dropout", "eval_subset")  # a training run's
STREAM_NAMES = (*SEED_STREAMS, "redraw")  # and the sweep's: the training seed of a redrawn run


def _spawn_key(name: str, extra: tuple) -> tuple[int, ...]:
    return (STREAM_NAMES.index(name), *(_as_int(part) for part in extra))


def _as_int(part: int | str) -> int:
    return part if isinstance(part, int) else int.from_bytes(part.encode("utf-8"), "little")


def stream(seed: int, name: str, *extra: int | str) -> np.random.Generator:
    """The generator of one named source of randomness (plus e.g. the epoch or split name)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_spawn_key(name, extra)))


def seed_of(seed: int, name: str, *extra: int | str) -> int:
    """A 63-bit integer seed (for torch) of one named source of randomness."""
    state = np.random.SeedSequence(seed, spawn_key=_spawn_key(name, extra)).generate_state(2)
    return int(state[0]) << 31 ^ int(state[1])
