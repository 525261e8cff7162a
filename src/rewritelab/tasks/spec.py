"""Dataset specifications: what a generated dataset must contain, read from TOML/YAML, validated.

A `DatasetSpec` holds a seed, an alphabet and two `SplitSpec`s: `train` (the instructions a
model learns from) and `test` (instructions never seen in training). The test split inherits
every composition setting (lengths, no-op share, occurrences, families, k) it does not set
itself. Every check raises `RewritelabError` naming the bad value, so an impossible spec is
refused before anything is generated or written.

Config file layout (TOML; YAML with the same keys also works):

    seed = 0
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    disjoint = "pairs"            # or "patterns": test x never used by a training rule
    seen_test_examples = 1000     # fresh inputs for training rules (seen-instruction accuracy)

    [train]
    instructions = 1000
    examples_per_instruction = 1000   # or `examples = 1000000` (total budget)
    spread = "uniform"                # or "power" with `alpha`
    noop_share = 0.0
    occurrences = [1]                 # counts of x planted in z; several = a mix
    near_miss_share = 0.5             # inputs (|x| >= 2) that also hold a near-miss of x
    near_miss_kinds = ["substitution", "prefix", "suffix", "overlap"]
    families = ["random"]             # random, repeated, periodic, mirror (several = a mix)
    k = [3, 6]
    input_length = [1, 50]
    pattern_length = [1, 20]
    replacement_length = [1, 20]
    subsample = 0.5                   # keep half of the generated training set (E6)
    subsample_spread = "uniform"      # or "power" with `subsample_alpha`

    [test]
    instructions = 1000
    examples_per_instruction = 10

`task` names the task (`registry.TASKS`; default "rule"). `task = "markov"` selects the
algorithm task (see `markov.generate`): an instruction is a random Markov algorithm, `disjoint`
is `"algorithms"` (default) or `"rules"`, `classic = true` adds the example algorithms that
fit, and the splits take `rules`, `markers`, `terminal_share`, `max_steps` besides the counts,
spreads, `noop_share` and lengths. A setting another task reads is refused by name. Config
files of the algorithm task default to short patterns and inputs (`MarkovTask.split_defaults`).
Reading config files is `spec_files`; the checks of each task live with the task.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, fields
from typing import Any

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.near_misses import NEAR_MISS_KINDS

DEFAULT_ALPHABET = string.ascii_lowercase
SPREADS = ("uniform", "power")
# Composition settings: the test split inherits these from train unless it sets them.
COMPOSITION_KEYS = (
    "noop_share",
    "occurrences",
    "occurrence_weights",
    "families",
    "family_weights",
    "k",
    "input_length",
    "pattern_length",
    "replacement_length",
    "rules",
    "markers",
    "terminal_share",
    "max_steps",
    "near_miss_share",
    "near_miss_kinds",
)
# Split settings every task reads; the others belong to one task (`Task.own_split_keys`).
GENERIC_SPLIT_KEYS = (
    "instructions",
    "examples_per_instruction",
    "examples",
    "spread",
    "alpha",
    "noop_share",
    "input_length",
    "pattern_length",
    "replacement_length",
)
TASK_TOP_KEYS = ("classic",)  # top-level settings that only some task reads


@dataclass(frozen=True)
class SplitSpec:
    """How many instructions and examples a split has, how they spread, what examples look like."""

    instructions: int = 100
    examples_per_instruction: int | None = None
    examples: int | None = None
    spread: str = "uniform"
    alpha: float = 1.0
    noop_share: float = 0.0
    occurrences: tuple[int, ...] = (1,)
    occurrence_weights: tuple[float, ...] | None = None
    families: tuple[str, ...] = ("random",)
    family_weights: tuple[float, ...] | None = None
    k: tuple[int, int] = (1, 1)
    input_length: tuple[int, int] = (1, 50)
    pattern_length: tuple[int, int] = (1, 20)
    replacement_length: tuple[int, int] = (1, 20)
    subsample: float | None = None
    subsample_spread: str = "uniform"
    subsample_alpha: float = 1.0
    near_miss_share: float = 0.0
    near_miss_kinds: tuple[str, ...] = NEAR_MISS_KINDS
    rules: tuple[int, int] = (2, 4)
    markers: str = ""
    terminal_share: float = 0.25
    max_steps: int = 12

    @property
    def total_examples(self) -> int:
        """Examples generated before any subsampling (I*S, or the explicit budget N)."""
        if self.examples is not None:
            return self.examples
        return self.instructions * (self.examples_per_instruction or 1)


def split_default(key: str) -> Any:
    """The default of one split setting."""
    return _SPLIT_DEFAULTS[key]


def check_counts(split: SplitSpec, name: str) -> None:
    if split.instructions < 1:
        raise RewritelabError(f"{name}.instructions must be >= 1, got {split.instructions}")
    per, total = split.examples_per_instruction, split.examples
    if per is not None and per < 1:
        raise RewritelabError(f"{name}.examples_per_instruction must be >= 1, got {per}")
    if total is not None and total < 1:
        raise RewritelabError(f"{name}.examples must be >= 1, got {total}")
    if per is not None and total is not None and per * split.instructions != total:
        raise RewritelabError(
            f"{name}: inconsistent counts: {split.instructions} instructions x {per} examples "
            f"per instruction = {per * split.instructions}, but examples = {total}"
        )
    if split.spread == "uniform" and split.total_examples < split.instructions:
        raise RewritelabError(
            f"{name}: {split.total_examples} examples cannot cover {split.instructions} "
            "instructions with a uniform spread (use spread = 'power' or more examples)"
        )


def check_spread(spread: str, alpha: float, where: str) -> None:
    if spread not in SPREADS:
        raise RewritelabError(f"{where} must be one of {', '.join(SPREADS)}, got {spread!r}")
    if not alpha > 0:
        raise RewritelabError(f"{where}: the power-law alpha must be > 0, got {alpha}")


def check_range(values: tuple[int, int], where: str, minimum: int) -> None:
    low, high = values
    if low < minimum or high < low:
        raise RewritelabError(f"{where} must be a range [low, high] with {minimum} <= low <= high")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that determines a dataset's bytes: task, seed, alphabet and the two splits.

    The task (see `registry.TASKS`) decides which settings mean anything and checks them;
    `validate` here checks only what every task shares."""

    seed: int = 0
    alphabet: str = DEFAULT_ALPHABET
    disjoint: str | None = None  # None: the task's first mode (see `Task.disjoint_modes`)
    seen_test_examples: int = 1000
    train: SplitSpec = field(default_factory=lambda: SplitSpec(examples_per_instruction=100))
    test: SplitSpec = field(default_factory=lambda: SplitSpec(examples_per_instruction=10))
    task: str = "rule"
    classic: bool = True  # algorithm task: add the example algorithms that fit (classic split)

    def validate(self) -> DatasetSpec:
        """Check what every task shares; return the spec so construction and checks chain."""
        if not 0 <= self.seed < 2**63:
            raise RewritelabError(f"seed must be an integer in [0, 2^63), got {self.seed}")
        _check_alphabet(self.alphabet)
        if self.seen_test_examples < 0:
            raise RewritelabError(f"seen_test_examples must be >= 0, got {self.seen_test_examples}")
        return self


def _check_alphabet(alphabet: str) -> None:
    if not alphabet:
        raise RewritelabError("alphabet must not be empty")
    check_letters(alphabet, "alphabet")


def check_letters(letters: str, where: str) -> None:
    repeated = sorted({c for c in letters if letters.count(c) > 1})
    if repeated:
        raise RewritelabError(f"{where} repeats letters: {''.join(repeated)!r}")
    bad = [c for c in letters if not c.isprintable() or c.isspace() or c == "#"]
    if bad:
        raise RewritelabError(
            f"{where} contains unusable characters {bad!r} (whitespace, control, '#')"
        )


_SPLIT_DEFAULTS = {f.name: f.default for f in fields(SplitSpec)}
