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

`task = "markov"` selects the algorithm task (see `algorithms`): an instruction is a random
Markov algorithm, `disjoint` is `"algorithms"` (default) or `"rules"`, `classic = true` adds the
example algorithms that fit, and the splits take `rules`, `markers`, `terminal_share`,
`max_steps` besides the counts, spreads, `noop_share` and lengths. Keys of one task are refused
in the other. Config files of the algorithm task default to short patterns and inputs
(`MARKOV_SPLIT_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import math
import string
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rewritelab.core.config import apply_override, read_config_file
from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.families import FAMILIES, block_sizes, get_family, pattern_count_bound
from rewritelab.tasks.near_misses import NEAR_MISS_KINDS

DEFAULT_ALPHABET = string.ascii_lowercase
SPREADS = ("uniform", "power")
TASKS = ("rule", "markov")
DISJOINT_MODES = {"rule": ("pairs", "patterns"), "markov": ("algorithms", "rules")}

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
# Settings a manifest records only when near-misses are planted, so that the manifests (and the
# sweep's cache keys) of datasets without them are what they were before the setting existed.
NEAR_MISS_KEYS = ("near_miss_share", "near_miss_kinds")
# Settings that only one task reads: setting one for the other task is refused by name.
ALGORITHM_KEYS = ("rules", "markers", "terminal_share", "max_steps")
RULE_TASK_KEYS = (
    "occurrences",
    "occurrence_weights",
    "families",
    "family_weights",
    "k",
    "subsample",
    "subsample_spread",
    "subsample_alpha",
    *NEAR_MISS_KEYS,
)
# Defaults of the algorithm task in config files: short rules, so that several fire on a word.
MARKOV_SPLIT_DEFAULTS = {
    "pattern_length": (1, 3),
    "replacement_length": (0, 3),
    "input_length": (1, 12),
}


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

    @property
    def uses_k(self) -> bool:
        return any(get_family(name).uses_k for name in self.families)

    def pattern_capacity(self, alphabet_size: int) -> int:
        """Upper bound on distinct patterns x (exact for the random family alone)."""
        return self._capacity(self.pattern_length, alphabet_size)

    def rule_capacity(self, alphabet_size: int) -> int:
        """Upper bound on distinct rules (x, y) with x != y this composition can produce."""
        patterns = self.pattern_capacity(alphabet_size)
        replacements = self._capacity(self.replacement_length, alphabet_size)
        return patterns * replacements - min(patterns, replacements)

    def _capacity(self, lengths: tuple[int, int], alphabet_size: int) -> int:
        return sum(
            pattern_count_bound(get_family(name), self.k, lengths, alphabet_size)
            for name in self.families
        )

    def validate(self, name: str, alphabet_size: int) -> None:
        """Raise RewritelabError naming the first impossible or inconsistent setting."""
        _check_counts(self, name)
        _check_spread(self.spread, self.alpha, f"{name}.spread")
        _check_lengths(self, name)
        _check_mix(self, name, alphabet_size)
        _check_near_misses(self, name, alphabet_size)
        if self.subsample is not None:
            if not 0 < self.subsample <= 1:
                raise RewritelabError(f"{name}.subsample must be in (0, 1], got {self.subsample}")
            _check_spread(self.subsample_spread, self.subsample_alpha, f"{name}.subsample_spread")

    def validate_algorithms(self, name: str, alphabet: str) -> None:
        """The checks of the algorithm task (`task = "markov"`), naming the first bad setting."""
        _check_counts(self, name)
        _check_spread(self.spread, self.alpha, f"{name}.spread")
        _check_range(self.input_length, f"{name}.input_length", 0)
        _check_range(self.pattern_length, f"{name}.pattern_length", 1)
        _check_range(self.replacement_length, f"{name}.replacement_length", 0)
        _check_range(self.rules, f"{name}.rules", 1)
        _check_markers(self.markers, alphabet, f"{name}.markers")
        for key in ("noop_share", "terminal_share"):
            if not 0 <= getattr(self, key) <= 1:
                raise RewritelabError(f"{name}.{key} must be in [0, 1], got {getattr(self, key)}")
        if self.max_steps < 1:
            raise RewritelabError(f"{name}.max_steps must be >= 1, got {self.max_steps}")
        patterns = self._capacity(self.pattern_length, len(alphabet) + len(self.markers))
        if self.rules[0] > patterns:
            raise RewritelabError(
                f"{name}: algorithms of {self.rules[0]} rules need as many distinct patterns, but "
                f"the alphabet, markers and pattern_length allow only {patterns}"
            )
        if self.noop_share < 1 and self.pattern_length[0] > self.input_length[1]:
            raise RewritelabError(
                f"{name}: patterns of at least {self.pattern_length[0]} letters never fit inputs "
                f"of at most {self.input_length[1]}, so no rule could apply (noop_share < 1)"
            )


def _check_counts(split: SplitSpec, name: str) -> None:
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


def _check_spread(spread: str, alpha: float, where: str) -> None:
    if spread not in SPREADS:
        raise RewritelabError(f"{where} must be one of {', '.join(SPREADS)}, got {spread!r}")
    if not alpha > 0:
        raise RewritelabError(f"{where}: the power-law alpha must be > 0, got {alpha}")


def _check_range(values: tuple[int, int], where: str, minimum: int) -> None:
    low, high = values
    if low < minimum or high < low:
        raise RewritelabError(f"{where} must be a range [low, high] with {minimum} <= low <= high")


def _check_lengths(split: SplitSpec, name: str) -> None:
    _check_range(split.input_length, f"{name}.input_length", 0)
    _check_range(split.pattern_length, f"{name}.pattern_length", 1)
    _check_range(split.replacement_length, f"{name}.replacement_length", 0)
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


def _check_markers(markers: str, alphabet: str, where: str) -> None:
    _check_letters(markers, where)
    shared = sorted(set(markers) & set(alphabet))
    if shared:
        raise RewritelabError(f"{where} must not use alphabet letters, got {''.join(shared)!r}")


def _check_task_keys(split: SplitSpec, name: str, task: str) -> None:
    """Refuse a setting the task ignores (set to anything but its default)."""
    foreign = RULE_TASK_KEYS if task == "markov" else ALGORITHM_KEYS
    for key in foreign:
        if getattr(split, key) != _SPLIT_FIELDS[key].default:
            raise RewritelabError(f"{name}.{key} does not apply to task = {task!r}")


def _check_weights(weights: tuple[float, ...] | None, count: int, where: str) -> None:
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
    _check_weights(split.family_weights, len(split.families), f"{name}.family_weights")
    _check_weights(split.occurrence_weights, len(split.occurrences), f"{name}.occurrence_weights")
    if split.uses_k:
        _check_range(split.k, f"{name}.k", 1)
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


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that determines a dataset's bytes: seed, alphabet, and the two splits."""

    seed: int = 0
    alphabet: str = DEFAULT_ALPHABET
    disjoint: str | None = None  # None: the task's first mode ("pairs", or "algorithms")
    seen_test_examples: int = 1000
    train: SplitSpec = field(default_factory=lambda: SplitSpec(examples_per_instruction=100))
    test: SplitSpec = field(default_factory=lambda: SplitSpec(examples_per_instruction=10))
    task: str = "rule"
    classic: bool = True  # algorithm task: add the example algorithms that fit (classic split)

    def __post_init__(self) -> None:
        if self.disjoint is None and self.task in DISJOINT_MODES:
            object.__setattr__(self, "disjoint", DISJOINT_MODES[self.task][0])

    def validate(self) -> DatasetSpec:
        """Check the whole spec; return it so construction and validation chain."""
        if not 0 <= self.seed < 2**63:
            raise RewritelabError(f"seed must be an integer in [0, 2^63), got {self.seed}")
        _check_alphabet(self.alphabet)
        if self.task not in TASKS:
            raise RewritelabError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        modes = DISJOINT_MODES[self.task]
        if self.disjoint not in modes:
            raise RewritelabError(
                f"disjoint must be one of {', '.join(modes)} for task = {self.task!r}, "
                f"got {self.disjoint!r}"
            )
        if self.seen_test_examples < 0:
            raise RewritelabError(f"seen_test_examples must be >= 0, got {self.seen_test_examples}")
        for name, split in (("train", self.train), ("test", self.test)):
            _check_task_keys(split, name, self.task)
        if self.task == "markov":
            self.train.validate_algorithms("train", self.alphabet)
            self.test.validate_algorithms("test", self.alphabet)
            return self
        if len(self.alphabet) < 2:
            raise RewritelabError(
                f"alphabet {self.alphabet!r} has one letter; the rule task needs at least 2 "
                "(with one, every input is a run of it, and x cannot be planted an exact "
                "number of times)"
            )
        self.train.validate("train", len(self.alphabet))
        self.test.validate("test", len(self.alphabet))
        if self.test.subsample is not None:
            raise RewritelabError("test.subsample is not supported: subsample the training set")
        self._check_capacity()
        return self

    def _check_capacity(self) -> None:
        size = len(self.alphabet)
        wanted = self.train.instructions + self.test.instructions
        capacity = self.train.rule_capacity(size)
        if _rule_shape(self.train) != _rule_shape(self.test):
            capacity += self.test.rule_capacity(size)  # different rule sets: an upper bound
        for name, split in (("train", self.train), ("test", self.test)):
            if split.instructions > split.rule_capacity(size):
                raise RewritelabError(
                    f"{name}: {split.instructions} instructions requested, but the alphabet "
                    f"({size} letters) and lengths allow at most {split.rule_capacity(size)} "
                    "distinct rules"
                )
        if wanted > capacity:
            raise RewritelabError(
                f"{wanted} distinct train + test instructions requested, but at most {capacity} "
                "distinct rules exist for this alphabet and these lengths"
            )

    @property
    def markers(self) -> str:
        """Every marker letter either split may use (algorithm task), in first-seen order."""
        return "".join(dict.fromkeys(self.train.markers + self.test.markers))

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain JSON-able data (what the manifest records).

        Only the task's own settings are recorded, so single-rule manifests (and the sweep's
        cache keys, hashed from this) are what they were before the algorithm task existed.
        """
        data = dataclasses.asdict(self)
        if self.task == "rule":
            del data["task"], data["classic"]
        for name in ("train", "test"):
            for key in RULE_TASK_KEYS if self.task == "markov" else ALGORITHM_KEYS:
                data[name].pop(key, None)
            if not getattr(self, name).near_miss_share:
                for key in NEAR_MISS_KEYS:
                    data[name].pop(key, None)
        return data


def _rule_shape(split: SplitSpec) -> tuple:
    """The settings that decide which rules a split can draw."""
    return (split.families, split.k, split.pattern_length, split.replacement_length)


def _check_alphabet(alphabet: str) -> None:
    if not alphabet:
        raise RewritelabError("alphabet must not be empty")
    _check_letters(alphabet, "alphabet")


def _check_letters(letters: str, where: str) -> None:
    repeated = sorted({c for c in letters if letters.count(c) > 1})
    if repeated:
        raise RewritelabError(f"{where} repeats letters: {''.join(repeated)!r}")
    bad = [c for c in letters if not c.isprintable() or c.isspace() or c == "#"]
    if bad:
        raise RewritelabError(
            f"{where} contains unusable characters {bad!r} (whitespace, control, '#')"
        )


# ---------------------------------------------------------------- reading config files

_SPLIT_FIELDS = {f.name: f for f in fields(SplitSpec)}
_TOP_FIELDS = {
    "seed",
    "alphabet",
    "disjoint",
    "seen_test_examples",
    "train",
    "test",
    "task",
    "classic",
}
_RANGE_KEYS = {"k", "input_length", "pattern_length", "replacement_length", "rules"}
_TUPLE_KEYS = {
    "occurrences",
    "occurrence_weights",
    "families",
    "family_weights",
    "near_miss_kinds",
}
_STRING_TUPLE_KEYS = {"families", "near_miss_kinds"}


def spec_from_dict(config: dict[str, Any]) -> DatasetSpec:
    """Build and validate a DatasetSpec from plain data; unknown keys are refused by name."""
    unknown = sorted(set(config) - _TOP_FIELDS)
    if unknown:
        raise RewritelabError(f"unknown config key {unknown[0]!r}")
    train_values = _split_values(config.get("train", {}), "train")
    test_values = _split_values(config.get("test", {}), "test")
    inherited = {k: v for k, v in train_values.items() if k in COMPOSITION_KEYS}
    top = {k: v for k, v in config.items() if k not in ("train", "test")}
    _check_types(
        top,
        {"seed": int, "alphabet": str, "disjoint": str, "seen_test_examples": int, "task": str},
    )
    if "classic" in top and not isinstance(top["classic"], bool):
        raise RewritelabError(f"classic must be true or false, got {top['classic']!r}")
    defaults = MARKOV_SPLIT_DEFAULTS if top.get("task") == "markov" else {}
    spec = DatasetSpec(
        **top,
        train=SplitSpec(**_default_counts({**defaults, **train_values}, 100)),
        test=SplitSpec(**_default_counts({**defaults, **inherited, **test_values}, 10)),
    )
    return spec.validate()


def _default_counts(values: dict[str, Any], examples_per_instruction: int) -> dict[str, Any]:
    """Fill in examples per instruction when the config gives neither it nor a total budget."""
    if values.get("examples_per_instruction") is None and values.get("examples") is None:
        return {**values, "examples_per_instruction": examples_per_instruction}
    return values


def _check_types(values: dict[str, Any], expected: dict[str, type]) -> None:
    for key, kind in expected.items():
        if key in values and (not isinstance(values[key], kind) or isinstance(values[key], bool)):
            raise RewritelabError(f"{key} must be {kind.__name__}, got {values[key]!r}")


def _split_values(section: Any, name: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise RewritelabError(f"[{name}] must be a section of settings")
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key not in _SPLIT_FIELDS:
            raise RewritelabError(f"unknown config key {name}.{key!r}")
        values[key] = _coerce(key, value, f"{name}.{key}")
    return values


def _coerce(key: str, value: Any, where: str) -> Any:
    """Turn config values into the spec's types; ints and lists are checked, not guessed."""
    if value is None and "None" in _SPLIT_FIELDS[key].type:
        return None  # an unset optional, as a manifest records it
    if key in _RANGE_KEYS:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if not (
            isinstance(value, list | tuple) and len(value) == 2 and all(_is_int(v) for v in value)
        ):
            raise RewritelabError(
                f"{where} must be an integer or a [low, high] pair, got {value!r}"
            )
        return tuple(value)
    if key in _TUPLE_KEYS:
        items = value if isinstance(value, list | tuple) else [value]
        kind = str if key in _STRING_TUPLE_KEYS else (int if key == "occurrences" else float)
        if not items or not all(_is_kind(v, kind) for v in items):
            raise RewritelabError(
                f"{where} must be a {kind.__name__} or a list of them, got {value!r}"
            )
        return tuple(kind(v) for v in items)
    expected = _SPLIT_FIELDS[key].type
    if "float" in expected and _is_kind(value, float):
        return float(value)
    if "int" in expected and _is_int(value):
        return value
    if "str" in expected and isinstance(value, str):
        return value
    raise RewritelabError(f"{where} has the wrong type: {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_kind(value: Any, kind: type) -> bool:
    if kind is float:
        return (
            (isinstance(value, int | float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )
    if kind is int:
        return _is_int(value)
    return isinstance(value, kind)


def load_spec(path: str | Path | None = None, overrides: list[str] = ()) -> DatasetSpec:
    """A validated spec from an optional config file plus `key=value` overrides."""
    config = read_config_file(path) if path is not None else {}
    for assignment in overrides:
        apply_override(config, assignment)
    return spec_from_dict(config)


__all__ = ["DatasetSpec", "SplitSpec", "FAMILIES", "load_spec", "spec_from_dict"]
