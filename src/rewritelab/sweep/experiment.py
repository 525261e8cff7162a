"""Experiment files: a base dataset and training config, a grid of factors, seeds, presets.

An experiment file (TOML) declares what to vary and what to hold fixed:

    name = "e1"
    title = "Instruction count at a fixed budget (paper Fig. 2a)"
    kind = "e1"                 # required: what the report makes of it (analysis.kinds)
    seeds = 3                   # seeds 0..2, or an explicit list [0, 1, 2]

    [dataset]                   # a dataset config, as for `rewritelab generate`
    [dataset.train]
    examples = 1000000

    [train]                     # a training config, as for `rewritelab train`
    epochs = 3

    [grid]                      # factor = values; the sweep runs their cartesian product
    "dataset.train.instructions" = [10, 100, 1000]
    spread = [                  # a value may be a table of dotted settings (and a label)
        { label = "uniform", "dataset.train.spread" = "uniform" },
        { label = "0.5", "dataset.train.spread" = "power", "dataset.train.alpha" = 0.5 },
    ]

    [presets.cpu]               # deep-merged over the base: seeds, dataset, train, grid
    seeds = 2
    [presets.cpu.train.model]
    layers = 2

    [presets.cpu-dense]         # `extends`: merged over that preset, not over the base alone
    extends = "cpu"
    [presets.cpu-dense.grid]
    "dataset.train.instructions" = [10, 30, 100, 300, 1000]

A fine-tuning experiment (`method = "finetune"`) may say how to make its base model with a
`pretrain` table (in a preset too): `corpus` (paths, globs; `{stdlib}` is Python's standard
library), `out` (the run directory, which must be `train.base`) and `config` (a pretraining
config, see `rewritelab.training.pretrain`). The sweep makes it, or resumes or checks it; while it
trains, the points that need only its architecture run (`runner.base_of`).

An `[adaptive]` table (top level or in a preset) sets the adaptive transition search that
`--adaptive` runs instead of the grid (`rewritelab.analysis.adaptive_search.SearchSettings`):
it takes the grid's smallest and largest instruction count as its range.

`redraw_unmastered = N` (top level or in a preset) retrains a point whose model ends on the
optimisation plateau (seen accuracy below 0.95 and a final training loss of at least 0.05: it
never fit its own training examples; `runner.on_plateau`) from a fresh draw, up to N times:
the same dataset, a new training seed (`seeds.seed_of(seed, "redraw", k)` for the k-th
redraw: new initial weights and batch order). The point keeps the first draw that is not on
the plateau (or the last), and records every draw before it.

A grid point's seed sets both the dataset seed and the training seed. Its identity is a hash
of its full resolved config (dataset, train, method, seed) and of the generator's code digest,
so a point already in the results database is never run twice, and a changed config or a
changed generator makes new points (and new cached datasets) instead of reusing stale ones.
The experiment's `name` and its preset names become path parts: plain identifiers only.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewritelab.core.config import apply_override, read_config_file
from rewritelab.core.errors import RewritelabError
from rewritelab.core.paper import KIND_NAMES
from rewritelab.core.provenance import generator_digest
from rewritelab.tasks.registry import record_spec
from rewritelab.tasks.spec_files import spec_from_dict

TOP_KEYS = {
    "name", "title", "kind", "description", "method", "seeds", "dataset", "train", "grid",
    "presets", "pretrain", "redraw_unmastered", "adaptive",
}  # fmt: skip
METHODS = ("train", "finetune")  # from-scratch training, or fine-tuning a pretrained model
PRESET_KEYS = {
    "seeds", "dataset", "train", "grid", "description", "pretrain", "extends", "redraw_unmastered",
    "adaptive",
}  # fmt: skip
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")  # safe as a file or directory name


def content_hash(data: Any, length: int = 16) -> str:
    """A short stable hash of JSON-able data (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its factor values, seed, and the resolved configs it trains with."""

    experiment: str
    preset: str
    factors: dict[str, Any]
    seed: int
    dataset: dict[str, Any]
    train: dict[str, Any]
    method: str = "train"
    redraws: int = 0  # how often a model on the plateau is trained again from a fresh draw
    kind: str = "generic"  # what the report makes of it (not part of its identity)

    @property
    def dataset_id(self) -> str:
        """Identity of the dataset: its resolved spec and the generator's code digest. Points
        that share it share one generated copy."""
        spec = record_spec(spec_from_dict(copy.deepcopy(self.dataset)))
        return content_hash({"spec": spec, "generator": generator_digest()})

    @property
    def identity(self) -> dict[str, Any]:
        """Everything that decides the point's result: its full resolved config and seed."""
        identity = {
            "dataset": record_spec(spec_from_dict(copy.deepcopy(self.dataset))),
            "generator": generator_digest(),
            "train": self.train,
            "method": self.method,
            "seed": self.seed,
        }
        if self.redraws:  # named only when set, so points without redraws keep their ids
            identity["redraw_unmastered"] = self.redraws
        return identity

    @property
    def point_id(self) -> str:
        return content_hash(self.identity)


@dataclass(frozen=True)
class Experiment:
    """A resolved experiment file under one preset."""

    name: str
    title: str
    kind: str
    preset: str
    seeds: list[int]
    dataset: dict[str, Any]
    train: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    source: str = ""
    method: str = "train"
    pretrain: dict[str, Any] = field(default_factory=dict)  # how to make train.base, if given
    redraws: int = 0  # `redraw_unmastered`
    adaptive: dict[str, Any] = field(default_factory=dict)  # the adaptive search's settings

    def points(self) -> list[Point]:
        """Every grid point times every seed, in a stable order (seeds innermost)."""
        names = list(self.grid)
        points = []
        for values in itertools.product(*(self.grid[n] for n in names)):
            for seed in self.seeds:
                points.append(self.point_at(dict(zip(names, values, strict=True)), seed))
        return points

    def point_at(self, chosen: dict[str, Any], seed: int) -> Point:
        """The point with factor values `chosen` (each as a grid would list it) and `seed`."""
        config = {"dataset": copy.deepcopy(self.dataset), "train": copy.deepcopy(self.train)}
        labels = {}
        for name, value in chosen.items():
            settings = value if isinstance(value, dict) else {name: value}
            for key, setting in settings.items():
                if key != "label":
                    _set_dotted(config, key, setting, factor=name)
            labels[name] = (
                value.get("label", content_hash(value, 8)) if isinstance(value, dict) else value
            )
        config["dataset"]["seed"] = seed
        config["train"]["seed"] = seed
        return Point(
            self.name, self.preset, labels, seed, config["dataset"], config["train"], self.method,
            self.redraws, self.kind,
        )  # fmt: skip


def _set_dotted(config: dict, key: str, value: Any, factor: str) -> None:
    root = key.split(".", 1)[0]
    if root not in ("dataset", "train") or "." not in key:
        raise RewritelabError(
            f"grid factor {factor!r}: {key!r} must be a dotted key under dataset. or train."
        )
    apply_override(config, f"{key}={json.dumps(value)}")


def deep_merge(base: dict, update: dict) -> dict:
    """`base` with `update` merged in: tables merge key by key, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _seed_list(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        return list(range(seeds))
    if isinstance(seeds, list) and seeds and all(_is_seed(s) for s in seeds):
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise RewritelabError(f"seeds must be distinct, got {seeds!r} ({repeated[0]} twice)")
        return list(seeds)
    raise RewritelabError(f"seeds must be a count >= 1 or a list of seeds >= 0, got {seeds!r}")


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _redraw_count(value: Any, path: str | Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10:
        return value
    raise RewritelabError(f"{path}: redraw_unmastered must be a count from 0 to 10, got {value!r}")


def load_experiment(path: str | Path, preset: str | None = None) -> Experiment:
    """Read an experiment file and resolve it under `preset` (the base settings if None)."""
    data = read_config_file(path)
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise RewritelabError(f"{path}: unknown experiment key {unknown[0]!r}")
    presets = data.get("presets", {})
    for name, settings in presets.items():
        extra = sorted(set(settings) - PRESET_KEYS)
        if extra:
            raise RewritelabError(f"{path}: unknown key {extra[0]!r} in preset {name!r}")
    if preset is not None:
        if preset not in presets:
            known = ", ".join(presets) or "none"
            raise RewritelabError(f"{path}: no preset {preset!r} (known: {known})")
        data = deep_merge(data, preset_settings(presets, preset, path))
    grid = data.get("grid", {})
    for factor, values in grid.items():
        if not isinstance(values, list) or not values:
            raise RewritelabError(
                f"{path}: grid factor {factor!r} needs a non-empty list of values"
            )
    _check_names(data.get("name", Path(path).stem), presets, path)
    experiment = Experiment(
        name=data.get("name", Path(path).stem),
        title=data.get("title", data.get("name", Path(path).stem)),
        kind=_kind(data.get("kind"), path),
        preset=preset or "base",
        seeds=_seed_list(data.get("seeds", 1)),
        dataset=data.get("dataset", {}),
        train=data.get("train", {}),
        grid=grid,
        source=str(path),
        method=data.get("method", "train"),
        pretrain=data.get("pretrain", {}),
        redraws=_redraw_count(data.get("redraw_unmastered", 0), path),
        adaptive=data.get("adaptive", {}),
    )
    if experiment.method not in METHODS:
        raise RewritelabError(f"{path}: method must be one of {METHODS}, got {experiment.method!r}")
    if experiment.pretrain:
        _check_pretrain(experiment, path)
    _validate_points(experiment)
    return experiment


def preset_settings(presets: dict, name: str, path: str | Path, seen: tuple = ()) -> dict:
    """The settings of preset `name`, merged over those of the preset it `extends` (and so
    on up the chain), without the `extends` key itself."""
    settings = dict(presets[name])
    parent = settings.pop("extends", None)
    if parent is None:
        return settings
    if not isinstance(parent, str) or parent not in presets:
        raise RewritelabError(f"{path}: preset {name!r} extends {parent!r}, which is not a preset")
    if parent in (*seen, name):
        raise RewritelabError(f"{path}: presets {name!r} and {parent!r} extend each other")
    return deep_merge(preset_settings(presets, parent, path, (*seen, name)), settings)


def _check_pretrain(experiment: Experiment, path: str | Path) -> None:
    """A `pretrain` table makes the base of a fine-tuning experiment: checked before any work."""
    from rewritelab.training.pretrain import check_pretrain_table

    check_pretrain_table(experiment.pretrain, str(path))
    out = experiment.pretrain["out"]
    if experiment.method != "finetune" or experiment.train.get("base") != out:
        raise RewritelabError(
            f"{path}: a pretrain table needs method = 'finetune' and train.base = pretrain.out "
            f"({out!r})"
        )


def _kind(kind: Any, path: str | Path) -> str:
    """The experiment's kind, required: one of `KIND_NAMES` (what the report makes of it)."""
    if kind not in KIND_NAMES:
        known = ", ".join(KIND_NAMES)
        given = "no kind" if kind is None else f"kind {str(kind)[:40]!r}"
        raise RewritelabError(f"{path}: {given}; an experiment's kind is one of {known}")
    return kind


def _check_names(name: Any, presets: dict, path: str | Path) -> None:
    """The name and preset names become directory and file names: plain identifiers only."""
    for what, value in [("name", name)] + [("preset name", p) for p in presets]:
        if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
            raise RewritelabError(
                f"{path}: experiment {what} must be a plain identifier (letters, digits, _ and -),"
                f" got {str(value)[:80]!r}"
            )


def _validate_points(experiment: Experiment) -> None:
    """Resolve every point's configs now, so a bad grid fails before anything runs."""
    for point in experiment.points():
        try:
            spec_from_dict(copy.deepcopy(point.dataset))
            point_config(point)
        except RewritelabError as error:
            raise RewritelabError(f"grid point {point.factors}: {error}") from None


def point_config(point: Point):
    """The point's validated training config: a TrainConfig, or (base, FinetuneConfig)."""
    if point.method == "finetune":
        from rewritelab.training.finetune_config import finetune_config_from_dict

        settings = copy.deepcopy(point.train)
        base = settings.pop("base", None)
        if not base:
            raise RewritelabError(
                "a finetune experiment needs train.base (the model to start from)"
            )
        return base, finetune_config_from_dict(settings)
    from rewritelab.training.scratch_config import train_config_from_dict

    return train_config_from_dict(copy.deepcopy(point.train))
