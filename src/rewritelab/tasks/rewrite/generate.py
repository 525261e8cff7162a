"""A dataset spec -> train / seen-test / test records on disk, with a manifest.

Pipeline for one spec (every random choice draws from its own named stream, derived from the
spec's seed with `numpy.random.SeedSequence`, so changing one part leaves the others intact):

1. draw the training instructions, then the test instructions, never reusing a training rule
   (`disjoint = "pairs"`) or even a training pattern (`disjoint = "patterns"`);
2. assign training examples to instructions (uniform, or the power law: instruction
   floor(u*I) with u of density alpha*u^(alpha-1)), then exactly the requested no-op share and
   occurrence mix; build the inputs (see `inputs`); optionally keep a subsample (E6's halving),
   which is always a subset of the dataset the same spec gives without it;
3. fresh inputs for the training instructions (`seen_test`) and the test split likewise.

Output directory: `train.jsonl`, `seen_test.jsonl`, `test.jsonl` and `manifest.json`. Each line
is `{"instruction", "x", "y", "family", "k", "z", "output", "noop", "occurrences"}`, and in a
dataset that plants near-misses (`near_misses`) also `"near_miss"` (the planted text, or null)
and `"near_miss_kind"`. The same spec and seed give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rewritelab.core.errors import RewritelabError
from rewritelab.core.version import __version__
from rewritelab.tasks.allocation import (
    assign,
    exact_allocation,
    largest_remainder,
    named_stream,
    power_assignment,
)
from rewritelab.tasks.families import FAMILIES, PatternSampler
from rewritelab.tasks.inputs import build_inputs
from rewritelab.tasks.near_misses import NearMiss, plan_near_misses
from rewritelab.tasks.rules import rewrite
from rewritelab.tasks.spec import DatasetSpec, SplitSpec
from rewritelab.tasks.storage import FORMAT, SPLIT_FILES, write_lines, write_manifest

STREAMS = (
    "train_rules",
    "test_rules",
    "train_spread",
    "train_inputs",
    "subsample",
    "seen_test_spread",
    "seen_test_inputs",
    "test_spread",
    "test_inputs",
)


# Streams of the near-miss plans, numbered after STREAMS, and drawn only by datasets that plant
# near-misses, so that the bytes of every other dataset are what they were before they existed.
NEAR_MISS_STREAMS = ("train_near_miss", "seen_test_near_miss", "test_near_miss")


MAX_RULE_ROUNDS = 50  # rounds of drawing rules without reaching the requested count


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one of this task's named sources of randomness."""
    return named_stream(seed, name, STREAMS + NEAR_MISS_STREAMS)


@dataclass(frozen=True)
class RuleTable:
    """The rules of a split as columns: global id, x, y, and the family (and k) that drew them.

    Columns rather than one object per rule: a split can hold 10^6 rules.
    """

    ids: list[int]
    x: list[str]
    y: list[str]
    family: list[str]
    k: list[int | None]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: list[int]) -> RuleTable:
        """The rules at the given row positions, in that order."""
        columns = (self.ids, self.x, self.y, self.family, self.k)
        return RuleTable(*([column[i] for i in rows] for column in columns))


def _choose(
    rng: np.random.Generator, count: int, weights: tuple[float, ...] | None, n: int
) -> np.ndarray:
    p = None if weights is None else np.asarray(weights) / sum(weights)
    return rng.choice(count, size=n, p=p)


def draw_instructions(
    split: SplitSpec,
    alphabet: str,
    rng: np.random.Generator,
    first_id: int,
    taken_pairs: set[tuple[str, str]] = frozenset(),
    taken_patterns: set[str] = frozenset(),
) -> RuleTable:
    """`split.instructions` distinct rules (x != y) avoiding the taken pairs and patterns."""
    sampler = PatternSampler(alphabet)
    registry = list(FAMILIES)
    family_index = np.array([registry.index(name) for name in split.families])
    uses = [family.uses_k for family in FAMILIES.values()]
    chosen: dict[tuple[str, str], tuple[str, int | None]] = {}  # rule -> (family, k)
    for _ in range(MAX_RULE_ROUNDS):
        needed = split.instructions - len(chosen)
        if needed == 0:
            break
        batch = int(needed * 1.2) + 16
        families = family_index[_choose(rng, len(split.families), split.family_weights, batch)]
        k = rng.integers(split.k[0], split.k[1] + 1, size=batch)
        xs = sampler.draw(rng, families, k, split.pattern_length)
        ys = sampler.draw(rng, families, k, split.replacement_length)
        names = np.array(registry, dtype=object)[families]
        k_or_none = [
            kk if used else None
            for kk, used in zip(k.tolist(), np.array(uses)[families].tolist(), strict=True)
        ]
        drawn = dict(zip(zip(xs, ys, strict=True), zip(names, k_or_none, strict=True), strict=True))
        fresh = [
            pair
            for pair in drawn
            if pair[0] != pair[1]
            and pair not in chosen
            and pair not in taken_pairs
            and pair[0] not in taken_patterns
        ]
        chosen.update((pair, drawn[pair]) for pair in fresh[:needed])
    if len(chosen) < split.instructions:
        raise RewritelabError(
            f"could draw only {len(chosen)} of {split.instructions} distinct instructions: the "
            "alphabet, lengths and families allow too few rules (or disjointness removes them)"
        )
    ids = list(range(first_id, first_id + len(chosen)))
    xs, ys = [pair[0] for pair in chosen], [pair[1] for pair in chosen]
    families, ks = [v[0] for v in chosen.values()], [v[1] for v in chosen.values()]
    return RuleTable(ids, xs, ys, families, ks)


def occurrence_plan(rng: np.random.Generator, split: SplitSpec, total: int) -> np.ndarray:
    """Occurrences of x per example: 0 for exactly round(noop_share * N) no-ops, else the mix."""
    noop = exact_allocation(rng, total, np.array([1 - split.noop_share, split.noop_share])) == 1
    weights = split.occurrence_weights or [1.0] * len(split.occurrences)
    mix = np.asarray(split.occurrences)[
        exact_allocation(rng, int((~noop).sum()), np.asarray(weights))
    ]
    counts = np.zeros(total, dtype=np.int64)
    counts[~noop] = mix
    return counts


def subsample_quota(
    rng: np.random.Generator, available: np.ndarray, split: SplitSpec
) -> np.ndarray:
    """How many examples each instruction keeps under the split's subsample setting.

    `uniform` keeps the same share of every instruction's examples. `power` draws instructions
    by the power law (capped at what each has), so some keep most and others little or none;
    if the law keeps hitting exhausted instructions, the rest is topped up uniformly.
    """
    target = int(round(split.subsample * available.sum()))
    if split.subsample_spread == "uniform":
        return largest_remainder(available * split.subsample, target)
    quota = np.zeros(len(available), dtype=np.int64)
    for _ in range(MAX_RULE_ROUNDS):
        deficit = target - int(quota.sum())
        if deficit == 0:
            return quota
        draws = power_assignment(rng, len(available), deficit, split.subsample_alpha)
        quota = np.minimum(quota + np.bincount(draws, minlength=len(available)), available)
    spare = np.repeat(np.arange(len(available)), available - quota)
    extra = rng.choice(spare, size=target - int(quota.sum()), replace=False)
    return quota + np.bincount(extra, minlength=len(available))


def subsample_mask(
    rng: np.random.Generator, assignment: np.ndarray, split: SplitSpec, instructions: int
) -> np.ndarray:
    """Which examples to keep: each instruction's quota, as a random subset of its examples."""
    available = np.bincount(assignment, minlength=instructions)
    quota = subsample_quota(rng, available, split)
    order = np.lexsort((rng.random(len(assignment)), assignment))
    starts = np.concatenate(([0], np.cumsum(available)[:-1]))
    rank = np.empty(len(assignment), dtype=np.int64)
    rank[order] = np.arange(len(assignment)) - np.repeat(starts, available)
    return rank < quota[assignment]


def _json_safe(alphabet: str) -> bool:
    return all(json.dumps(c, ensure_ascii=False) == f'"{c}"' for c in alphabet)


def _record_prefixes(rules: RuleTable, safe: bool) -> list[str]:
    """The fixed part of every record of each rule, as JSON text ending before `z`."""
    columns = zip(rules.ids, rules.x, rules.y, rules.family, rules.k, strict=True)
    if safe:
        return [
            f'{{"instruction": {i}, "x": "{x}", "y": "{y}", "family": "{family}", '
            f'"k": {"null" if k is None else k}, '
            for i, x, y, family, k in columns
        ]
    keys = ("instruction", "x", "y", "family", "k")
    return [
        json.dumps(dict(zip(keys, row, strict=True)), ensure_ascii=False)[:-1] + ", "
        for row in columns
    ]


def record_lines(data: SplitData, safe: bool, near_miss_fields: bool) -> Iterator[str]:
    """JSON lines of the records, identical to `json.dumps(record, ensure_ascii=False)`."""
    rules = data.rules
    prefixes = _record_prefixes(rules, safe)
    near_misses = data.near_misses or [None] * len(data.inputs)
    for row, word, count, near_miss in zip(
        data.assignment.tolist(), data.inputs, data.counts.tolist(), near_misses, strict=True
    ):
        output = rewrite(rules.x[row], rules.y[row], word)
        noop = "true" if count == 0 else "false"
        if safe:
            tail = f'"z": "{word}", "output": "{output}"'
        else:
            tail = json.dumps({"z": word, "output": output}, ensure_ascii=False)[1:-1]
        extra = _near_miss_fields(near_miss) if near_miss_fields else ""
        yield f'{prefixes[row]}{tail}, "noop": {noop}, "occurrences": {count}{extra}}}\n'


def _near_miss_fields(near_miss: NearMiss | None) -> str:
    if near_miss is None:
        return ', "near_miss": null, "near_miss_kind": null'
    text = json.dumps(near_miss.text, ensure_ascii=False)
    return f', "near_miss": {text}, "near_miss_kind": "{near_miss.kind}"'


@dataclass
class SplitData:
    """One split in memory: its rules and, per example, rule row, input and occurrence count."""

    rules: RuleTable
    assignment: np.ndarray
    inputs: list[str]
    counts: np.ndarray
    near_misses: list[NearMiss | None] | None = None  # None: the split plants none


def make_split(
    spec: DatasetSpec, split: SplitSpec, rules: RuleTable, name: str, total: int
) -> SplitData:
    """Assign `total` examples of `split`'s composition to `rules` and build their inputs."""
    rng = stream(spec.seed, f"{name}_spread")
    assignment = assign(rng, len(rules), total, split.spread, split.alpha)
    counts = occurrence_plan(rng, split, total)
    used = used_rows(assignment, len(rules))
    if len(used) < len(rules):  # keep only the rules this split uses (seen_test samples a few)
        rules, assignment = rules.subset(used.tolist()), np.searchsorted(used, assignment)
    patterns = [rules.x[i] for i in assignment.tolist()]
    near_misses = None
    if split.near_miss_share:
        rng = stream(spec.seed, f"{name}_near_miss")
        share, kinds = split.near_miss_share, split.near_miss_kinds
        near_misses = plan_near_misses(rng, spec.alphabet, patterns, share, kinds)
    inputs = build_inputs(
        stream(spec.seed, f"{name}_inputs"),
        spec.alphabet,
        patterns,
        counts,
        split.input_length,
        near_misses,
    )
    return SplitData(rules, assignment, inputs, counts, near_misses)


def used_rows(assignment: np.ndarray, rules: int) -> np.ndarray:
    """The rule rows that at least one example uses, in increasing order."""
    return np.flatnonzero(np.bincount(assignment, minlength=rules))


def keep(data: SplitData, mask: np.ndarray) -> SplitData:
    """The examples of `data` selected by a boolean mask, in their original order."""
    kept = mask.tolist()
    inputs = [word for word, keep_it in zip(data.inputs, kept, strict=True) if keep_it]
    near_misses = None
    if data.near_misses is not None:
        pairs = zip(data.near_misses, kept, strict=True)
        near_misses = [near_miss for near_miss, keep_it in pairs if keep_it]
    return SplitData(data.rules, data.assignment[mask], inputs, data.counts[mask], near_misses)


def build_splits(spec: DatasetSpec, bar: tqdm | None = None) -> dict[str, SplitData]:
    """All three splits of a validated spec, in memory (advancing `bar` by one per stage)."""
    bar = bar or tqdm(disable=True)
    bar.set_description("drawing rules")
    train_rules = draw_instructions(spec.train, spec.alphabet, stream(spec.seed, "train_rules"), 0)
    test_rules = draw_instructions(
        spec.test,
        spec.alphabet,
        stream(spec.seed, "test_rules"),
        len(train_rules),
        taken_pairs=set(zip(train_rules.x, train_rules.y, strict=True)),
        taken_patterns=set(train_rules.x) if spec.disjoint == "patterns" else set(),
    )
    bar.update()
    bar.set_description("train inputs")
    train = make_split(spec, spec.train, train_rules, "train", spec.train.total_examples)
    if spec.train.subsample is not None:
        rng = stream(spec.seed, "subsample")
        train = keep(train, subsample_mask(rng, train.assignment, spec.train, len(train_rules)))
    # the rules with a training example: `train` numbers its own rules (`make_split` dropped
    # those a skewed spread left without examples, and a subsample may drop more)
    seen_rules = train.rules.subset(used_rows(train.assignment, len(train.rules)).tolist())
    seen_split = dataclasses.replace(spec.train, spread="uniform")
    bar.update()
    bar.set_description("test inputs")
    seen = make_split(spec, seen_split, seen_rules, "seen_test", spec.seen_test_examples)
    test = make_split(spec, spec.test, test_rules, "test", spec.test.total_examples)
    bar.update()
    return {"train": train, "seen_test": seen, "test": test}


def split_counts(data: SplitData) -> dict:
    """Headline counts of a split, as recorded in the manifest."""
    used = used_rows(data.assignment, len(data.rules))
    return {
        "examples": len(data.inputs),
        "instructions": int(len(used)),
        "noop": int((data.counts == 0).sum()),
    }


def write_splits(
    spec: DatasetSpec, config: dict, splits: dict[str, SplitData], directory: Path
) -> dict:
    """Write the split files and the manifest (recording `config`); return the manifest."""
    safe = _json_safe(spec.alphabet)
    planted = plants_near_misses(spec)
    files = {}
    for name, data in splits.items():
        lines = record_lines(data, safe, planted)
        files[SPLIT_FILES[name]] = write_lines(directory / SPLIT_FILES[name], lines)
    manifest = {
        "format": FORMAT,
        "version": __version__,
        "config": config,
        "seed": spec.seed,
        "streams": list(STREAMS + NEAR_MISS_STREAMS if planted else STREAMS),
        "counts": {name: split_counts(data) for name, data in splits.items()},
        "files": files,
    }
    write_manifest(directory, manifest)
    return manifest


def plants_near_misses(spec: DatasetSpec) -> bool:
    """Whether either split plants near-misses (its records then carry the near-miss fields)."""
    return bool(spec.train.near_miss_share or spec.test.near_miss_share)
