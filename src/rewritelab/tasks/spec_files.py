"""Dataset configs: a spec read from TOML/YAML (or plain data) and checked by its task.

Unknown keys are refused by name; values are coerced to the spec's types, never guessed; the
test split inherits the training split's composition settings it does not set (see
`spec.COMPOSITION_KEYS`); a task's `split_defaults` fill in what the file leaves out.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from rewritelab.core.config import apply_override, read_config_file
from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.registry import DEFAULT_TASK, get_task, validate_spec
from rewritelab.tasks.spec import COMPOSITION_KEYS, DatasetSpec, SplitSpec

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
WORDS = {"int": "an integer", "float": "a number", "str": "text", "bool": "true or false"}


def spec_from_dict(config: dict[str, Any]) -> DatasetSpec:
    """Build and validate a DatasetSpec from plain data; unknown keys are refused by name."""
    unknown = sorted(set(config) - _TOP_FIELDS)
    if unknown:
        raise RewritelabError(f"unknown config key {unknown[0]}")
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
    task = get_task(top.get("task", DEFAULT_TASK))
    defaults = task.split_defaults
    top.setdefault("disjoint", task.disjoint_modes[0])
    spec = DatasetSpec(
        **top,
        train=SplitSpec(**_default_counts({**defaults, **train_values}, 100)),
        test=SplitSpec(**_default_counts({**defaults, **inherited, **test_values}, 10)),
    )
    return validate_spec(spec)


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
            raise RewritelabError(f"unknown config key {name}.{key}")
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
    allowed = " or ".join(WORDS[kind] for kind in ("int", "float", "str") if kind in expected)
    raise RewritelabError(f"{where} must be {allowed}, got {value!r}")


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
