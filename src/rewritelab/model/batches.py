"""Encoded dataset splits and the batches cut from them, for training and evaluation.

A split is encoded once into one flat array of token ids plus per-example offsets, prompt
lengths and the record fields the evaluation breaks accuracy down by. Batches are padded on
the right to their own longest sequence only; training batches come from length buckets
(examples of similar length together), which removes most padding without changing what an
epoch contains. A training batch is a pure function of (seed, step): resuming a run needs
no hidden sampler state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rewritelab.core.errors import RewritelabError
from rewritelab.core.seeds import stream
from rewritelab.model.tokenizer import IGNORE, loss_mask


@dataclass(frozen=True)
class EncodedSplit:
    """One split, tokenised: example i is `tokens[offsets[i]:offsets[i + 1]]`."""

    tokens: np.ndarray  # (total tokens,) int64
    offsets: np.ndarray  # (N + 1,)
    prompt_lengths: np.ndarray  # (N,)
    records: list[dict]  # (N,) the source records, for breakdowns and predictions

    @classmethod
    def from_pieces(
        cls, pieces: list, prompt_lengths: list[int], records: list[dict], where: str
    ) -> EncodedSplit:
        """Pack per-example token lists (prompt then answer) into one split."""
        if not pieces:
            raise RewritelabError(f"{where} holds no examples")
        lengths = np.array([len(piece) for piece in pieces], dtype=np.int64)
        return cls(
            np.fromiter(
                (t for piece in pieces for t in piece), dtype=np.int64, count=lengths.sum()
            ),
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            np.array(prompt_lengths, dtype=np.int64),
            records,
        )

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def answer(self, i: int) -> np.ndarray:
        """The gold answer ids of example i (end token included)."""
        return self.tokens[self.offsets[i] + self.prompt_lengths[i] : self.offsets[i + 1]]

    def subset(self, indices: np.ndarray) -> EncodedSplit:
        """The examples at `indices`, in that order."""
        pieces = [self.tokens[self.offsets[i] : self.offsets[i + 1]] for i in indices.tolist()]
        lengths = np.array([len(piece) for piece in pieces], dtype=np.int64)
        return EncodedSplit(
            np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64),
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            self.prompt_lengths[indices],
            [self.records[i] for i in indices.tolist()],
        )


def epoch_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket_batches: int
) -> list[np.ndarray]:
    """One epoch of example indices cut into batches of similar lengths, in random order.

    The shuffled examples are cut into chunks of `bucket_batches` batches; each chunk is sorted
    by length and cut into batches; the batches are shuffled. `bucket_batches=1` gives plain
    random batches. The number of batches depends only on the sizes, never on the seed.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), chunk):
        piece = order[start : start + chunk]
        piece = piece[np.argsort(lengths[piece], kind="stable")]
        batches.extend(piece[i : i + batch_size] for i in range(0, len(piece), batch_size))
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def batches_per_epoch(examples: int, batch_size: int, bucket_batches: int) -> int:
    """How many batches `epoch_batches` cuts `examples` examples into."""
    chunk = batch_size * bucket_batches
    full, rest = divmod(examples, chunk)
    return full * bucket_batches + -(-rest // batch_size)


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches: indices sorted by length, so each batch pads little."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(
    split: EncodedSplit, indices: np.ndarray, pad_id: int, multiple: int = 1
) -> np.ndarray:
    """Token ids of the examples at `indices`, right-padded to the longest (rounded up to
    `multiple`), shape (B, T)."""
    lengths = split.lengths[indices]
    width = -(-int(lengths.max()) // multiple) * multiple
    ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    for row, (i, length) in enumerate(zip(indices.tolist(), lengths.tolist(), strict=True)):
        ids[row, :length] = split.tokens[split.offsets[i] : split.offsets[i] + length]
    return ids


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on `device` (pinned, non-blocking copy on CUDA)."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def eval_subset(split: EncodedSplit, examples: int, seed: int, name: str) -> EncodedSplit:
    """A fixed random subset of `examples` examples of an evaluation split (all when 0)."""
    if not examples or examples >= len(split):
        return split
    rng = stream(seed, "eval_subset", name)
    return split.subset(np.sort(rng.choice(len(split), examples, replace=False)))


class Batches:
    """Training batches of an encoded split as a pure function of the step: epochs of length
    buckets (`epoch_batches`), each batch cut into micro-batches, inputs right-padded, targets
    IGNORE where no loss. Caches only the current epoch's plan."""

    def __init__(
        self,
        split: EncodedSplit,
        seed: int,
        batch_size: int,
        bucket_batches: int,
        pad_id: int,
        loss_on: str = "answer",
        micro_batch_size: int | None = None,
        multiple: int = 1,
    ):
        self.split, self.seed, self.pad_id, self.loss_on = split, seed, pad_id, loss_on
        self.batch_size, self.bucket_batches, self.multiple = batch_size, bucket_batches, multiple
        self.micro_batch_size = micro_batch_size or batch_size
        self.per_epoch = batches_per_epoch(len(split), batch_size, bucket_batches)
        self._epoch, self._plan = -1, []

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = stream(self.seed, "data_order", epoch)
            self._plan = epoch_batches(
                self.split.lengths, self.batch_size, rng, self.bucket_batches
            )
            self._epoch = epoch
        return self._plan[position]

    def __call__(self, step: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
        """The micro-batches (ids (b, T), targets (b, T - 1)) of step `step`, and its real
        token count. Each micro-batch is padded only to its own longest example."""
        indices = self.indices(step)
        micro = [
            self.arrays(indices[i : i + self.micro_batch_size])
            for i in range(0, len(indices), self.micro_batch_size)
        ]
        return micro, int(self.split.lengths[indices].sum())

    def arrays(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = pad_batch(self.split, indices, self.pad_id, self.multiple)
        lengths = self.split.lengths[indices]
        mask = loss_mask(self.split.prompt_lengths[indices], lengths, ids.shape[1], self.loss_on)
        return ids, np.where(mask, ids[:, 1:], IGNORE)
