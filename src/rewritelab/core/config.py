"""Reading configs: TOML/YAML files, `key=value` overrides, and ONE coercer for every config.

Every config of the project (datasets aside, which have their own spec language) is a frozen
dataclass, possibly holding nested dataclasses (`[model]`). `from_dict` builds one from plain
data read from a file: unknown keys are refused by name, values must have the field's type
(an integer is accepted where a float is expected), and floats must be finite, so a typo or an
`inf` learning rate is one clear line before anything runs.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rewritelab.core.errors import RewritelabError

Config = TypeVar("Config")
TYPE_WORDS = {int: "an integer", float: "a number", str: "text", bool: "true or false",
              type(None): "unset"}  # fmt: skip


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML or YAML config file into a dict, with a one-line error if unreadable."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or a device would block, or never end
        raise RewritelabError(f"cannot read config {path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RewritelabError(f"cannot read config {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise RewritelabError(f"cannot read config {path}: not UTF-8 text") from None
    if path.suffix in (".yaml", ".yml"):
        return _parse_yaml(text, path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RewritelabError(f"config {path} is not valid TOML: {error}") from None


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise RewritelabError("YAML configs need PyYAML: pip install 'rewritelab[yaml]'") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RewritelabError(f"config {path} is not valid YAML{line}: {problem}") from None
    if not isinstance(data, dict):
        raise RewritelabError(f"config {path} must hold a mapping of settings")
    return data


def apply_override(config: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` override (value read as TOML, else as a plain string)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise RewritelabError(f"override must look like key=value, got {assignment!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    *parents, leaf = key.strip().split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RewritelabError(f"override {key!r}: {part!r} is not a section")
    node[leaf] = value


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: {"train": {"learning_rate": 0.005}} gives
    {"train.learning_rate": 0.005}, the names `key=value` overrides use."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_values(
    path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None
) -> dict[str, Any]:
    """Plain config values: `base`, then an optional file's, then `key=value` overrides."""
    values = dict(base or {})
    if path is not None:
        values.update(read_config_file(path))
    for assignment in overrides:
        apply_override(values, assignment)
    return values


def load_config(
    cls: type[Config], path: str | Path | None = None, overrides: list[str] = (), base=None
) -> Config:
    """A validated `cls` from an optional file (over `base` values) plus `key=value` overrides."""
    return from_dict(cls, read_values(path, overrides, base))


def from_dict(cls: type[Config], values: Any, where: str = "") -> Config:
    """Build and validate the dataclass `cls` from plain data (see the module docstring)."""
    if not isinstance(values, dict):
        raise RewritelabError(f"the [{where.rstrip('.')}] section must be a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        names = ", ".join(f"{where}{key}" for key in unknown)
        raise RewritelabError(f"unknown setting(s): {names}")
    coerced = {key: _coerce(hints[key], value, f"{where}{key}") for key, value in values.items()}
    config = cls(**coerced)
    return config.validate() if hasattr(config, "validate") else config


def _coerce(kind: Any, value: Any, name: str) -> Any:
    """`value` as a field of type `kind`, or a one-line error naming the setting."""
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, f"{name}.")
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is float and _is_number(value):
            if not math.isfinite(value):
                raise RewritelabError(f"{name} must be a finite number, got {value!r}")
            return float(value)
        if typing.get_origin(option) is list and isinstance(value, list | tuple):
            (item,) = typing.get_args(option)
            if all(type(v) is item for v in value):
                return list(value)
        if option in (int, str, bool) and type(value) is option:
            return value
    allowed = " or ".join(_describe(option) for option in options)
    raise RewritelabError(f"{name} must be {allowed}, got {value!r}")


def _describe(kind: Any) -> str:
    """A type as the words of an error line: `an integer`, `a list of text`."""
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return f"a list of {TYPE_WORDS.get(item, item.__name__).split(' ', 1)[-1]}s"
    return TYPE_WORDS.get(kind, getattr(kind, "__name__", str(kind)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
