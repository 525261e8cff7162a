"""Near-misses in the generator: the share and kinds asked for, each one really not x, exact
records, byte-identical datasets without them, reported by `inspect`, refused when impossible."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from conftest import load_split, reference_occurrences, reference_rewrite

from rewritelab.cli.main import main
from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.spec_files import spec_from_dict

SPLITS = ("train", "seen_test", "test")
KINDS = ("substitution", "prefix", "suffix", "overlap")


def near_miss_config(share: float = 0.5, **train) -> dict:
    return {
        "seed": 3,
        "seen_test_examples": 400,
        "train": {
            "instructions": 60,
            "examples_per_instruction": 40,
            "pattern_length": [1, 3],
            "replacement_length": [0, 3],
            "input_length": [4, 14],
            "noop_share": 0.1,
            "near_miss_share": share,
            **train,
        },
        "test": {"instructions": 40, "examples_per_instruction": 10},
    }


def reference_relation(x: str, text: str, kind: str) -> bool:
    """The kinds, written out letter by letter, independently of the generator's module."""
    if text == x or not text:
        return False
    if kind == "substitution":
        return len(text) == len(x) and sum(a != b for a, b in zip(x, text, strict=True)) == 1
    prefixes = {x[:j] for j in range(1, len(x))}
    suffixes = {x[j:] for j in range(1, len(x))}
    return text in {"prefix": prefixes, "suffix": suffixes, "overlap": prefixes | suffixes}[kind]


def test_share_and_kinds_are_exactly_as_asked(make_dataset):
    out = make_dataset(near_miss_config(0.5))
    for split in SPLITS:
        records = load_split(out, split)
        eligible = [r for r in records if len(r["x"]) >= 2]
        planted = [r for r in eligible if r["near_miss"] is not None]
        assert len(planted) == round(0.5 * len(eligible))
        assert all(r["near_miss"] is None for r in records if len(r["x"]) < 2)
        kinds = Counter(r["near_miss_kind"] for r in planted)
        assert set(kinds) == set(KINDS)
        assert max(kinds.values()) - min(kinds.values()) <= 1  # split evenly


def test_every_near_miss_is_really_not_x_and_records_stay_exact(make_dataset):
    out = make_dataset(near_miss_config(1.0, occurrences=[1, 2]))
    placements = Counter()
    for split in SPLITS:
        for r in load_split(out, split):
            x, z = r["x"], r["z"]
            assert r["output"] == reference_rewrite(x, r["y"], z)
            assert r["occurrences"] == reference_occurrences(x, z)
            assert r["noop"] == (r["occurrences"] == 0)
            if r["near_miss"] is None:
                assert len(x) < 2
                continue
            text, kind = r["near_miss"], r["near_miss_kind"]
            assert text != x and reference_relation(x, text, kind), r
            starts = [i for i in range(len(z) - len(text) + 1) if z[i : i + len(text)] == text]
            assert starts, r
            if r["noop"]:
                continue
            first = z.find(x)
            if kind == "overlap":  # glued to the first x, before or after it
                glued = z[first - len(text) : first] == text or z[first + len(x) :].startswith(text)
                assert glued, r
            placements[min(starts) < first] += 1
    assert placements[True] > 0 and placements[False] > 0  # before and after the real match


def test_near_misses_reach_unseen_splits_by_inheritance_and_can_be_switched_off(make_dataset):
    config = near_miss_config(0.5)
    config["test"]["near_miss_share"] = 0.0
    out = make_dataset(config)
    assert all(r["near_miss"] is None for r in load_split(out, "test"))
    assert any(r["near_miss"] for r in load_split(out, "seen_test"))


def test_same_seed_same_bytes_and_the_seed_matters(make_dataset):
    first, second = make_dataset(near_miss_config()), make_dataset(near_miss_config())
    other = make_dataset({**near_miss_config(), "seed": 4})
    for name in ("train.jsonl", "test.jsonl", "seen_test.jsonl", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "train.jsonl").read_bytes() != (other / "train.jsonl").read_bytes()


def test_datasets_without_near_misses_keep_their_bytes(make_dataset):
    """The demo config's files as generated before near-misses existed (pinned digests), and
    `near_miss_share = 0` spelt out changes nothing, manifest included."""
    pinned = {
        "train.jsonl": "e14b9f1e5295433d820fbcc672404be43bec6edbb1bd3c306bf5e3f67de35209",
        "seen_test.jsonl": "aacea496408e42a218ebb53b0fad1b9fd7a3effbc26569c0117ba140b727b82b",
        "test.jsonl": "b8e6c99598aac2ca7c8ef70319a3658a3e44d799dd58a2eea37d2ed78864f896",
    }
    demo = {
        "seed": 0,
        "seen_test_examples": 500,
        "train": {
            "instructions": 300,
            "examples_per_instruction": 100,
            "input_length": [1, 12],
            "pattern_length": [1, 4],
            "replacement_length": [1, 4],
        },
        "test": {"instructions": 100, "examples_per_instruction": 10},
    }
    plain = make_dataset(demo)
    spelt = make_dataset({**demo, "train": {**demo["train"], "near_miss_share": 0.0}})
    for name, digest in pinned.items():
        assert hashlib.sha256((plain / name).read_bytes()).hexdigest() == digest
    for name in (*pinned, "manifest.json"):
        assert (plain / name).read_bytes() == (spelt / name).read_bytes()
    assert "near_miss" not in (plain / "train.jsonl").read_text()


def test_inspect_reports_the_kinds_and_checks_them(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["generate", "--out", str(out), "--instructions", "30"]
    args += ["--set", "train.pattern_length=[2,3]", "--set", "train.input_length=[6,12]"]
    args += ["--set", "train.near_miss_share=0.4", "--set", "test.instructions=10"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    train = report["splits"]["train"]
    planted = sum(v for k, v in train["near_miss_kinds"].items() if k != "none")
    assert planted == round(0.4 * train["examples"])
    assert report["checks"]["every planted near-miss is of its kind, not x, and in z"]
    assert main(["inspect", str(out)]) == 0
    assert "near-misses planted: none:" in capsys.readouterr().out

    # a record whose near-miss is x itself is caught (the file's hash is caught too)
    path = out / "train.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    victim = next(r for r in records if r["near_miss"])
    victim["near_miss"] = victim["x"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["inspect", str(out), "--json"]) == 1
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert not checks["every planted near-miss is of its kind, not x, and in z"]


@pytest.mark.parametrize(
    "train, message",
    [
        ({"near_miss_share": 1.5}, r"train.near_miss_share must be in \[0, 1\]"),
        ({"near_miss_share": 0.5, "near_miss_kinds": ["typo"]}, "train.near_miss_kinds must"),
        (
            {"near_miss_share": 0.5, "near_miss_kinds": ["prefix", "prefix"]},
            "train.near_miss_kinds must name distinct kinds",
        ),
        (
            {"near_miss_share": 0.5, "pattern_length": [1, 4], "input_length": [4, 7]},
            "need inputs of 8 letters",
        ),
    ],
)
def test_impossible_settings_are_refused_by_name(train, message):
    config = {
        "train": {"instructions": 10, "input_length": [4, 12], "pattern_length": [1, 3], **train}
    }
    with pytest.raises(RewritelabError, match=message):
        spec_from_dict(config)


def test_one_kind_alone(make_dataset):
    out = make_dataset(near_miss_config(1.0, near_miss_kinds=["suffix"], pattern_length=[3, 3]))
    records = load_split(out, "train")
    assert {r["near_miss_kind"] for r in records} == {"suffix"}
    assert all(r["x"].endswith(r["near_miss"]) for r in records)
