"""The algorithm task (`task = "markov"`): exact records, disjoint splits, determinism, refusals.

Also pins the single-rule task's bytes: adding the algorithm task must leave every existing
config's dataset unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from conftest import load_split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewritelab.cli.main import main
from rewritelab.core.version import __version__
from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.inspection import inspect_dataset
from rewritelab.tasks.markov.generate import CLASSIC_DIR
from rewritelab.tasks.rules import MarkovAlgorithm, Rule
from rewritelab.tasks.spec_files import spec_from_dict

SPLITS = ("train", "seen_test", "test")

# SHA-256 of the single-rule datasets, computed on the code before the algorithm task existed.
# The manifest is hashed with its package version replaced by "VERSION" (a release bump is not
# a change of output).
RULE_TASK_HASHES = {
    "default": {
        "train.jsonl": "f5ac6f807b4d4dece49be269386564f5b2606253135e276c07a08c8967cfe27e",
        "seen_test.jsonl": "6a1a326dd9391e8451b559d66afa6c5e8dbea2016e40872bfe305796c7e75b56",
        "test.jsonl": "2bdb297b5390c42f4a77054a172f631a7bb83dccd1786ba506b1ec9d70948752",
        "manifest.json": "e56d73a58b7a7a9d63514941dc5e188194bc338607170da7fe1c53f95659ce7d",
    },
    "rich": {
        "train.jsonl": "80dbd49cae52efb4a028a98b801c35a63ed61c5ca6db876525d88ab4475d860d",
        "seen_test.jsonl": "be0c9c0b5631f65f06a3d55ef8acb235d47920f8ffbc7f0f71f082e55d7f9a1b",
        "test.jsonl": "825cc32345e464ac974ae79e39b5dec3e12511d7e432891a3a4f3ac3ccfd0d31",
        "manifest.json": "af36a3e26526a19aee8ed0b2709f2452e72b45305d09bf97f5aef5126870241f",
    },
}
RULE_TASK_CONFIGS = {
    "default": {},
    "rich": {
        "seed": 7,
        "alphabet": "abcdef",
        "disjoint": "patterns",
        "seen_test_examples": 50,
        "train": {
            "instructions": 40,
            "examples_per_instruction": 5,
            "noop_share": 0.3,
            "families": ["random", "mirror"],
            "k": [2, 3],
            "occurrences": [1, 2],
            "pattern_length": [1, 6],
            "input_length": [1, 20],
            "subsample": 0.5,
        },
        "test": {"instructions": 10, "examples_per_instruction": 3},
    },
}


@pytest.mark.parametrize("name", sorted(RULE_TASK_CONFIGS))
def test_rule_task_bytes_are_unchanged(tmp_path, name):
    out = tmp_path / "data"
    generate_dataset(spec_from_dict(RULE_TASK_CONFIGS[name]), out)
    digests = {}
    for path in sorted(out.iterdir()):
        if path.name == "README.md":  # the dataset card, newer than these digests (its own tests)
            continue
        data = path.read_bytes()
        if path.name == "manifest.json":
            data = data.replace(json.dumps(__version__).encode(), b'"VERSION"')
        digests[path.name] = hashlib.sha256(data).hexdigest()
    assert digests == RULE_TASK_HASHES[name]


# ---------------------------------------------------------------- an independent interpreter


def reference_find(pattern: str, word: str) -> int:
    """First position where `pattern` matches `word`, by direct comparison; -1 if none."""
    for i in range(len(word) - len(pattern) + 1):
        if word[i : i + len(pattern)] == pattern:
            return i
    return -1


def reference_run(rules: list, word: str, max_steps: int) -> tuple[list[str], str]:
    """The words after each step and how the run stopped, by Markov's definition."""
    words: list[str] = []
    while True:
        for x, y, terminal in rules:  # noqa: B007 (the rule found is used after the loop)
            i = reference_find(x, word)
            if i >= 0:
                break
        else:
            return words, "no_rule"
        if len(words) == max_steps:
            return words, "step_limit"
        word = word[:i] + y + word[i + len(x) :]
        words.append(word)
        if terminal:
            return words, "terminal"


def triples(record: dict) -> list[tuple[str, str, bool]]:
    """A record's rules as (x, y, terminal), checking each rule has exactly those keys."""
    assert all(set(rule) == {"x", "y", "terminal"} for rule in record["rules"])
    return [(rule["x"], rule["y"], rule["terminal"]) for rule in record["rules"]]


def check_record(record: dict, max_steps: int, markers: str) -> None:
    """Every field of a record against the reference interpreter and against `rules.py`."""
    words, halt = reference_run(triples(record), record["input"], max_steps)
    assert halt in ("terminal", "no_rule")
    assert record["trace"] == words
    assert record["steps"] == len(words)
    assert record["halt"] == halt
    assert record["output"] == (words[-1] if words else record["input"])
    assert record["step_output"] == (words[0] if words else record["input"])
    assert record["noop"] == (not words)
    assert record["rule_count"] == len(record["rules"])
    assert not set(markers) & set(record["input"] + record["output"])
    rules = tuple(Rule(x, y, terminal) for x, y, terminal in triples(record))
    run = MarkovAlgorithm(rules).run(record["input"], max_steps=max_steps, trace=True)
    assert (run.output, run.steps, run.halt.name.lower()) == (
        record["output"],
        record["steps"],
        record["halt"],
    )


def markov_config(**train) -> dict:
    return {
        "task": "markov",
        "alphabet": "abc",
        "seen_test_examples": 32,
        "train": {"instructions": 6, "examples_per_instruction": 8, "markers": "αβ", **train},
        "test": {"instructions": 4, "examples_per_instruction": 5},
    }


# ---------------------------------------------------------------- records


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    alphabet=st.sampled_from(["ab", "abc", "01|+", "abcdefghijklmnopqrstuvwxyz"]),
    markers=st.sampled_from(["", "α", "αβγ"]),
    rules=st.sampled_from([[1, 1], [2, 4], [3, 6]]),
    noop_share=st.sampled_from([0.0, 0.25, 1.0]),
    max_steps=st.integers(10, 30),  # short limits can leave too few halting algorithms
    terminal_share=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_every_record_is_what_the_interpreter_does(
    tmp_path_factory, seed, alphabet, markers, rules, noop_share, max_steps, terminal_share
):
    out = tmp_path_factory.mktemp("d") / "data"
    config = markov_config(
        rules=rules,
        markers=markers,
        noop_share=noop_share,
        max_steps=max_steps,
        terminal_share=terminal_share,
        pattern_length=[1, 3],
        replacement_length=[0, 3],
        input_length=[0, 10],
    )
    generate_dataset(spec_from_dict({**config, "seed": seed, "alphabet": alphabet}), out)
    for split in SPLITS:
        records = load_split(out, split)
        for record in records:
            check_record(record, max_steps, markers)
            assert rules[0] <= record["rule_count"] <= rules[1]
            assert 0 <= len(record["input"]) <= 10
            assert all(1 <= len(x) <= 3 and len(y) <= 3 for x, y, _ in triples(record))
        # exactly round(noop_share * N) no-ops (N is a multiple of 4 in every split)
        assert sum(r["noop"] for r in records) == noop_share * len(records)
    if (out / "classic.jsonl").exists():
        for record in load_split(out, "classic"):
            check_record(record, max_steps, markers)


def test_counts_and_inputs_where_several_rules_fire(make_dataset):
    config = markov_config(rules=[3, 5], input_length=[6, 12], pattern_length=[1, 2], markers="")
    out = make_dataset(config)
    train = load_split(out, "train")
    assert len(train) == 48 and len(load_split(out, "seen_test")) == 32
    assert set(Counter(r["algorithm"] for r in train).values()) == {8}
    assert set(Counter(r["algorithm"] for r in load_split(out, "test")).values()) == {5}
    applicable = [sum(reference_find(x, r["input"]) >= 0 for x, _, _ in triples(r)) for r in train]
    assert min(applicable) >= 1 and max(applicable) >= 3  # planted patterns of several rules
    for r in train:  # no pattern contains an earlier one, so every rule can fire
        patterns = [x for x, _, _ in triples(r)]
        assert not any(p in q for i, q in enumerate(patterns) for p in patterns[:i])


# ---------------------------------------------------------------- disjointness


def rule_lists(records):
    return {json.dumps(r["rules"]) for r in records}


def pairs(records):
    return {(x, y) for r in records for x, y, _ in triples(r)}


def unmarked_lists(records):
    """Rule lists with their terminal marks removed."""
    return {tuple((x, y) for x, y, _ in triples(r)) for r in records}


def test_test_algorithms_never_occur_in_training(make_dataset):
    # 2 letters, one-letter patterns, 1-2 rules: so few algorithms exist that draws collide.
    tiny = {
        "task": "markov",
        "alphabet": "ab",
        "classic": False,
        "train": {
            "instructions": 20,
            "examples_per_instruction": 2,
            "rules": [1, 2],
            "pattern_length": 1,
            "replacement_length": [0, 2],
            "terminal_share": 0.5,
            "input_length": [1, 4],
        },
        "test": {"instructions": 10, "examples_per_instruction": 2},
    }
    out = make_dataset(tiny)
    train, seen, test = (load_split(out, s) for s in SPLITS)
    assert len(rule_lists(train)) == 20 and len(rule_lists(test)) == 10
    assert not rule_lists(train) & rule_lists(test)
    # Not even an algorithm that differs from a training one only in where it halts:
    assert not unmarked_lists(train) & unmarked_lists(test)
    report = inspect_dataset(out)
    assert report["test_equal_to_training_up_to_terminal_marks"] == 0.0
    assert report["checks"]["test algorithms differ from training ones with terminal marks removed"]
    assert rule_lists(seen) <= rule_lists(train)
    assert pairs(train) & pairs(test)  # whole algorithms differ, single rules are shared

    out = make_dataset({**tiny, "disjoint": "rules", "train": {**tiny["train"], "instructions": 4}})
    train, test = load_split(out, "train"), load_split(out, "test")
    assert not pairs(train) & pairs(test)
    assert inspect_dataset(out)["checks"]["test rules are absent from training"]


def test_classic_split_runs_the_example_algorithms_that_fit(make_dataset):
    out = make_dataset(
        {**markov_config(max_steps=60), "alphabet": "ab01|+", "seen_test_examples": 5}
    )
    classic = load_split(out, "classic")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    fitting = {"binary_increment", "binary_to_unary", "double_reverse", "unary_addition"}
    assert set(manifest["classic"]["used"].values()) | set(manifest["classic"]["skipped"]) == (
        fitting
    )
    for name in manifest["classic"]["used"].values():
        text = (CLASSIC_DIR / f"{name}.markov").read_text(encoding="utf-8")
        expected = [(r.x, r.y, r.terminal) for r in MarkovAlgorithm.parse(text).rules]
        assert any(triples(r) == expected for r in classic)
    for record in classic:
        check_record(record, 60, "αβ")
    assert Counter(r["algorithm"] for r in classic) == {
        int(i): 5 for i in manifest["classic"]["used"]
    }
    train_ids = {r["algorithm"] for r in load_split(out, "train")}
    assert not train_ids & {r["algorithm"] for r in classic}


def test_no_classic_split_when_no_example_fits(make_dataset):
    out = make_dataset({**markov_config(), "alphabet": "xyz"})  # no example uses x, y, z only
    assert not (out / "classic.jsonl").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "fits" in manifest["classic"]["note"] and "classic" not in manifest["counts"]
    assert all(inspect_dataset(out)["checks"].values())


# ---------------------------------------------------------------- determinism


def digest(directory) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    config = markov_config(noop_share=0.25)
    generate_dataset(spec_from_dict(config), tmp_path / "a")
    generate_dataset(spec_from_dict(config), tmp_path / "b")
    generate_dataset(spec_from_dict({**config, "seed": 1}), tmp_path / "c")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["train.jsonl"] != digest(tmp_path / "c")["train.jsonl"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["task"] == "markov"
    assert manifest["files"]["test.jsonl"]["sha256"] == digest(tmp_path / "a")["test.jsonl"]


# ---------------------------------------------------------------- refusals


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


IMPOSSIBLE = {
    "more_rules_than_patterns": (
        'task = "markov"\nalphabet = "ab"\n[train]\nrules = [3, 3]\npattern_length = 1\n',
        "algorithms of 3 rules need as many distinct patterns, but the alphabet, markers and "
        "pattern_length allow only 2",
    ),
    "max_steps_zero": ('task = "markov"\n[test]\nmax_steps = 0\n', "test.max_steps must be >= 1"),
    "unknown_task": ('task = "turing"\n', "task must be one of rule, markov, got 'turing'"),
    "rule_disjoint_mode": (
        'task = "markov"\ndisjoint = "pairs"\n',
        "disjoint must be one of algorithms, rules for task = 'markov'",
    ),
    "markers_in_alphabet": (
        'task = "markov"\nalphabet = "abc"\n[train]\nmarkers = "αa"\n',
        "train.markers must not use alphabet letters, got 'a'",
    ),
    "rule_key_in_markov": (
        'task = "markov"\n[train]\nfamilies = ["mirror"]\n',
        "train.families does not apply to task = 'markov'",
    ),
    "markov_key_in_rule_task": ("[train]\nrules = [2, 3]\n", "train.rules does not apply"),
    "patterns_never_fit": (
        'task = "markov"\n[train]\npattern_length = [5, 6]\ninput_length = [1, 4]\n',
        "patterns of at least 5 letters never fit inputs of at most 4",
    ),
    "never_halts": (  # the only algorithm is `a -> aa`, which rewrites forever
        'task = "markov"\nalphabet = "a"\n[train]\ninstructions = 1\nrules = 1\n'
        "pattern_length = 1\nreplacement_length = 2\nterminal_share = 0.0\n",
        "train: found only 0 of 1 distinct algorithms that halt within max_steps = 12",
    ),
}


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE))
def test_impossible_specs_are_refused_in_one_line(tmp_path, capsys, name):
    text, message = IMPOSSIBLE[name]
    config = tmp_path / "spec.toml"
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["generate", "--config", str(config), "--out", str(out), "--quiet"], capsys
    )
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]  # nothing written


# ---------------------------------------------------------------- inspect


def cli_dataset(tmp_path, capsys, *extra) -> tuple:
    out = tmp_path / "data"
    code, stdout, _ = run_cli(
        ["generate", "--out", str(out), "--quiet", "--set", 'task="markov"',
         "--set", 'alphabet="abc"', "--set", 'train.markers="α"', "--instructions", "8",
         "--examples-per-instruction", "5", "--test-instructions", "4", *extra],
        capsys,
    )  # fmt: skip
    assert code == 0 and "train: 40 examples, 8 instructions" in stdout
    return out, [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def rewrite_train(out, records) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    (out / "train.jsonl").write_text(text, encoding="utf-8")


def test_inspect_reports_markov_statistics_and_passes(tmp_path, capsys):
    out, train = cli_dataset(tmp_path, capsys)
    code, stdout, _ = run_cli(["inspect", str(out)], capsys)
    assert code == 0 and "[FAIL]" not in stdout
    assert "[train] 40 examples, 8 algorithms" in stdout
    assert "rules per algorithm" in stdout and "steps:" in stdout and "no-op share" in stdout
    code, stdout, _ = run_cli(["inspect", str(out), "--json"], capsys)
    summary = json.loads(stdout)["splits"]["train"]
    assert sum(summary["halt"].values()) == 40
    assert summary["steps"] == {
        str(k): v for k, v in sorted(Counter(r["steps"] for r in train).items())
    }


def test_inspect_catches_a_tampered_record(tmp_path, capsys):
    out, train = cli_dataset(tmp_path, capsys)
    train[3]["output"] += "a"
    rewrite_train(out, train)
    code, stdout, _ = run_cli(["inspect", str(out)], capsys)
    assert code == 1
    assert "[FAIL] every record re-runs exactly" in stdout
    assert "[ok] test algorithms are absent from training" in stdout


def test_inspect_catches_a_test_algorithm_in_training(tmp_path, capsys):
    out, train = cli_dataset(tmp_path, capsys)
    test = load_split(out, "test")
    rewrite_train(out, train + [{**test[0], "algorithm": 99}])  # a training copy, fresh id
    code, stdout, _ = run_cli(["inspect", str(out)], capsys)
    assert code == 1
    assert "[FAIL] test algorithms are absent from training" in stdout
    assert "[ok] every record re-runs exactly" in stdout


def test_inspect_catches_a_test_rule_in_training_under_rules_mode(tmp_path, capsys):
    out, train = cli_dataset(tmp_path, capsys, "--set", 'disjoint="rules"')
    test_rule = load_split(out, "test")[0]["rules"][0]
    rules = [test_rule, *train[0]["rules"][1:]]
    # an exact record of a new training algorithm that holds one rule of a test algorithm
    algorithm = MarkovAlgorithm(tuple(Rule(r["x"], r["y"], r["terminal"]) for r in rules))
    word = test_rule["x"]
    run = algorithm.run(word, max_steps=12, trace=True)
    trace = [step.word for step in run.trace]
    record = {
        "algorithm": 99, "rules": rules, "rule_count": len(rules), "input": word,
        "output": run.output, "step_output": trace[0] if trace else word,
        "noop": not trace, "steps": run.steps, "halt": run.halt.name.lower(), "trace": trace,
    }  # fmt: skip
    rewrite_train(out, train + [record])
    checks = inspect_dataset(out)["checks"]
    assert checks["every record re-runs exactly (output, step_output, trace, steps, halt, noop)"]
    assert checks["test algorithms are absent from training"]
    assert not checks["test rules are absent from training"]


def test_files_load_with_hugging_face_datasets(make_dataset):
    datasets = pytest.importorskip("datasets")
    out = make_dataset({**markov_config(), "alphabet": "ab01|+"})
    names = [*SPLITS, "classic"]
    loaded = datasets.load_dataset("json", data_files={s: str(out / f"{s}.jsonl") for s in names})
    assert loaded["train"].num_rows == 48 and loaded["classic"].num_rows >= 5
    for split in names:
        assert loaded[split].to_list() == load_split(out, split)
