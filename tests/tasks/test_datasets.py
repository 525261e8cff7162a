"""The generator's promises: exact records, requested composition, disjoint splits, determinism."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from conftest import load_split, reference_occurrences, reference_rewrite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewritelab.tasks.allocation import uniform_assignment
from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.spec_files import spec_from_dict

SPLITS = ("train", "seen_test", "test")


def assert_records_exact(records: list[dict]) -> None:
    for r in records:
        occurrences = reference_occurrences(r["x"], r["z"])
        assert r["output"] == reference_rewrite(r["x"], r["y"], r["z"])
        assert r["occurrences"] == occurrences
        assert r["noop"] == (occurrences == 0)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    alphabet=st.sampled_from(["ab", "abc", "abcdefghijklmnopqrstuvwxyz", "αβγ01"]),
    noop_share=st.sampled_from([0.0, 0.3, 1.0]),
    occurrences=st.sampled_from([[1], [1, 2, 3]]),
    pattern_max=st.integers(1, 4),
)
def test_every_record_matches_reference_semantics(
    tmp_path_factory, seed, alphabet, noop_share, occurrences, pattern_max
):
    out = tmp_path_factory.mktemp("d") / "data"
    config = {
        "seed": seed,
        "alphabet": alphabet,
        "seen_test_examples": 40,
        "train": {
            "instructions": 3,
            "examples_per_instruction": 20,
            "noop_share": noop_share,
            "occurrences": occurrences,
            "pattern_length": [1, pattern_max],
            "replacement_length": [0, 3],
            "input_length": [0, 14],
        },
        "test": {"instructions": 2, "examples_per_instruction": 10},
    }
    generate_dataset(spec_from_dict(config), out)
    for split in SPLITS:
        records = load_split(out, split)
        assert_records_exact(records)
        has_op = [r for r in records if not r["noop"]]
        assert {r["occurrences"] for r in has_op} <= set(occurrences)
        assert all(0 <= len(r["z"]) <= 14 for r in records)


def test_requested_counts_noops_and_occurrence_mix(make_dataset):
    out = make_dataset(
        {
            "train": {
                "instructions": 40,
                "examples_per_instruction": 25,
                "noop_share": 0.3,
                "occurrences": [1, 2, 3],
                "occurrence_weights": [2, 1, 1],
                "pattern_length": [3, 5],
                "input_length": [1, 30],
            },
            "test": {"instructions": 30, "examples_per_instruction": 7, "noop_share": 0.5},
        }
    )
    train, test = load_split(out, "train"), load_split(out, "test")
    assert len(train) == 1000 and len(test) == 210
    assert set(Counter(r["instruction"] for r in train).values()) == {25}
    assert set(Counter(r["instruction"] for r in test).values()) == {7}
    assert sum(r["noop"] for r in train) == 300  # exactly round(0.3 * 1000)
    assert sum(r["noop"] for r in test) == 105
    # 700 has-op examples split 2:1:1 -> exactly 350, 175, 175
    assert Counter(r["occurrences"] for r in train if not r["noop"]) == {1: 350, 2: 175, 3: 175}
    # the test split inherits the occurrence mix but sets its own no-op share
    assert {r["occurrences"] for r in test if not r["noop"]} == {1, 2, 3}
    assert all(3 <= len(r["x"]) <= 5 for r in train + test)


def test_budget_not_divisible_spreads_evenly(make_dataset):
    out = make_dataset({"train": {"instructions": 7, "examples": 100}})
    counts = Counter(r["instruction"] for r in load_split(out, "train"))
    assert sum(counts.values()) == 100
    assert sorted(set(counts.values())) == [14, 15]


def _family_of(pattern: str, k: int) -> set[str]:
    """Which structured families `pattern` belongs to with parameter k (independent check)."""
    if len(pattern) % k:
        return set()
    m = len(pattern) // k
    kinds = set()
    if pattern == "".join(c * k for c in pattern[::k]):
        kinds.add("repeated")
    if pattern == pattern[:m] * k:
        kinds.add("periodic")
    block = pattern[:m]
    if pattern == "".join(block if i % 2 == 0 else block[::-1] for i in range(k)):
        kinds.add("mirror")
    return kinds


def test_families_and_k_are_what_was_asked(make_dataset):
    out = make_dataset(
        {
            "train": {
                "instructions": 300,
                "examples_per_instruction": 2,
                "families": ["repeated", "periodic", "mirror"],
                "k": [3, 5],
                "pattern_length": [3, 20],
                "replacement_length": [3, 20],
                "input_length": [1, 60],
            },
            "test": {"instructions": 60, "examples_per_instruction": 2, "k": [1, 2]},
        }
    )
    train, test = load_split(out, "train"), load_split(out, "test")
    for records, k_range in ((train, (3, 5)), (test, (1, 2))):
        assert {r["family"] for r in records} == {"repeated", "periodic", "mirror"}
        for r in records:
            assert k_range[0] <= r["k"] <= k_range[1]
            assert r["family"] in _family_of(r["x"], r["k"])
            assert r["family"] in _family_of(r["y"], r["k"])
    assert {r["k"] for r in train} == {3, 4, 5}


def test_train_and_test_rules_are_disjoint(make_dataset):
    # A tiny rule space (2 letters, patterns of 1-2 letters) forces collisions to be avoided.
    config = {
        "alphabet": "ab",
        "train": {"instructions": 20, "pattern_length": [1, 2], "replacement_length": [1, 2]},
        "test": {"instructions": 10},
    }
    out = make_dataset(config)
    train, seen, test = (load_split(out, s) for s in SPLITS)
    train_pairs = {(r["x"], r["y"]) for r in train}
    assert len(train_pairs) == 20
    assert not train_pairs & {(r["x"], r["y"]) for r in test}
    assert {(r["x"], r["y"]) for r in seen} <= train_pairs
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in test}

    out = make_dataset(
        {**config, "disjoint": "patterns", "train": {**config["train"], "instructions": 3}}
    )
    train, test = load_split(out, "train"), load_split(out, "test")
    assert not {r["x"] for r in train} & {r["x"] for r in test}


@pytest.mark.parametrize("alpha", [0.1, 0.5, 2.0])
def test_power_law_spread_matches_alpha(make_dataset, alpha):
    instructions, examples = 1000, 100_000
    out = make_dataset(
        {
            "seen_test_examples": 0,
            "train": {
                "instructions": instructions,
                "examples": examples,
                "spread": "power",
                "alpha": alpha,
                "pattern_length": [1, 3],
                "input_length": [1, 8],
            },
            "test": {"instructions": 1, "examples_per_instruction": 1},
        }
    )
    ids = np.array([r["instruction"] for r in load_split(out, "train")])
    # P(instruction < j) = (j / I)^alpha: compare the empirical CDF with it (KS distance).
    grid = np.arange(1, instructions + 1)
    empirical = np.searchsorted(np.sort(ids), grid, side="left") / examples
    assert np.max(np.abs(empirical - (grid / instructions) ** alpha)) < 0.01


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    config = {
        "train": {
            "instructions": 30,
            "noop_share": 0.2,
            "families": ["random", "mirror"],
            "k": [2, 3],
        },
        "test": {"instructions": 10},
    }

    def digest(directory):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
        }

    generate_dataset(spec_from_dict(config), tmp_path / "a")
    generate_dataset(spec_from_dict(config), tmp_path / "b")
    generate_dataset(spec_from_dict({**config, "seed": 1}), tmp_path / "c")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["train.jsonl"] != digest(tmp_path / "c")["train.jsonl"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["files"]["train.jsonl"]["sha256"] == digest(tmp_path / "a")["train.jsonl"]
    # the manifest's recorded config is a config: it regenerates the same bytes
    generate_dataset(spec_from_dict(manifest["config"]), tmp_path / "d")
    assert digest(tmp_path / "d") == digest(tmp_path / "a")


@pytest.mark.parametrize("spread", ["uniform", "power"])
def test_subsample_is_a_subset_of_the_full_dataset(make_dataset, spread):
    base = {"instructions": 200, "examples_per_instruction": 10, "input_length": [1, 30]}
    full = load_split(make_dataset({"train": base}), "train")
    half = load_split(
        make_dataset(
            {
                "train": {
                    **base,
                    "subsample": 0.5,
                    "subsample_spread": spread,
                    "subsample_alpha": 0.3,
                }
            }
        ),
        "train",
    )
    assert len(half) == 1000
    as_key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert Counter(map(as_key, half)) <= Counter(map(as_key, full))
    kept = Counter(r["instruction"] for r in half)
    if spread == "uniform":
        assert set(kept.values()) == {5} and len(kept) == 200
    else:
        assert max(kept.values()) == 10  # the favoured instructions keep everything
        assert len(kept) < 200  # and some instructions lose every example


def test_seen_test_inputs_are_fresh_inputs_of_training_rules(make_dataset):
    out = make_dataset({"seen_test_examples": 500, "train": {"instructions": 50}})
    seen = load_split(out, "seen_test")
    assert len(seen) == 500
    assert set(Counter(r["instruction"] for r in seen).values()) == {10}


@pytest.mark.parametrize(
    "train",
    [
        {"spread": "power", "alpha": 0.03},  # leaves about half the rules without an example
        {"subsample": 0.2, "subsample_spread": "power", "subsample_alpha": 0.1},
        {"spread": "power", "alpha": 0.03, "subsample": 0.5, "subsample_spread": "uniform"},
    ],
)
def test_the_seen_test_asks_exactly_the_rules_with_training_examples(make_dataset, train):
    """A skewed spread or a subsample leaves some drawn rules without any training example:
    the seen test must ask every rule that has one, and no other (it once asked rules by
    their row in the full table, so a spread that dropped rules put untrained ones in it)."""
    config = {"instructions": 256, "examples": 2560, "pattern_length": [2, 2], **train}
    out = make_dataset({"seen_test_examples": 2560, "train": config})
    rule = lambda r: (r["x"], r["y"])  # noqa: E731
    trained = {rule(r) for r in load_split(out, "train")}
    assert 50 < len(trained) < 256  # some rules were left without an example
    assert {rule(r) for r in load_split(out, "seen_test")} == trained


@pytest.mark.parametrize("alphabet", ["abc", 'a"\\b'])
def test_lines_are_canonical_json(make_dataset, alphabet):
    out = make_dataset(
        {"alphabet": alphabet, "train": {"instructions": 5, "pattern_length": [1, 2]}}
    )
    for split in SPLITS:
        for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            assert line == json.dumps(json.loads(line), ensure_ascii=False)


def test_uniform_assignment_is_balanced():
    ids = uniform_assignment(np.random.default_rng(0), 7, 52)
    assert sorted(Counter(ids.tolist()).values()) == [7, 7, 7, 7, 8, 8, 8]


def test_files_load_with_hugging_face_datasets(make_dataset):
    datasets = pytest.importorskip("datasets")
    out = make_dataset(
        {"train": {"instructions": 10, "families": ["random", "periodic"], "k": [2, 2]}}
    )
    loaded = datasets.load_dataset("json", data_files={s: str(out / f"{s}.jsonl") for s in SPLITS})
    assert loaded["train"].num_rows == 1000
    row = loaded["train"][0]
    assert set(row) == {
        "instruction",
        "x",
        "y",
        "family",
        "k",
        "z",
        "output",
        "noop",
        "occurrences",
    }
    assert loaded["test"].num_rows == 1000
