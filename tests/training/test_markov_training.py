"""Training and evaluating on algorithm datasets (issue #12): the markov prompt layout, the
`step` / `final` / `trace` targets through the one engine, trace metrics, and E7's sweep point.

Expected ids are written out by hand from the layout in tokenizer.py's docstring (specials 0-5,
`<to.>` 6, `<sep>` 7, `<then>` 8, then the alphabet), never through the tokenizer's methods.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_split
from transformers import AutoTokenizer

from rewritelab.analysis.report import write_report
from rewritelab.cli.main import main
from rewritelab.core.errors import RewritelabError
from rewritelab.evaluation.traces import final_word_verdicts, step_verdicts, trace_summary
from rewritelab.model.encoding import dataset_alphabet, encode_split
from rewritelab.model.files import load_model, save_model
from rewritelab.model.gpt import ModelConfig, build_model
from rewritelab.model.tokenizer import Tokenizer
from rewritelab.sweep import ResultsDatabase, load_experiment
from rewritelab.tasks.storage import read_manifest

ROOT = Path(__file__).resolve().parents[2]
E7 = ROOT / "experiments" / "e7.toml"

# Hand-built vocabulary of Tokenizer("abα", layout="markov").
BOS, TO, IN, OUT, EOS, TO_TERMINAL, SEP, THEN = 1, 2, 3, 4, 5, 6, 7, 8
LETTER = {"a": 9, "b": 10, "α": 11}
RULES = [{"x": "a", "y": "b", "terminal": False}, {"x": "bα", "y": "", "terminal": True}]

# Two algorithms of one rule over "ab", fixed input length: learnable in a few seconds.
TINY_MARKOV = {
    "seed": 5,  # its two training algorithms halt both ways (by a terminal rule, by no rule)
    "task": "markov",
    "alphabet": "abc",  # 6 one-rule algorithms without terminal marks: 2 to train, 2 unseen
    "seen_test_examples": 64,
    "classic": False,
    "train": {
        "instructions": 2,
        "examples_per_instruction": 64,
        "rules": [1, 1],
        "pattern_length": [1, 1],
        "replacement_length": [1, 1],
        "input_length": [3, 3],
        "max_steps": 6,
        "noop_share": 0.1,
        "terminal_share": 0.5,
    },
    "test": {"instructions": 2, "examples_per_instruction": 8},
}
RULE_DATA = {
    "alphabet": "abc",
    "train": {"instructions": 2, "examples_per_instruction": 4, "input_length": [1, 3],
              "pattern_length": [1, 1], "replacement_length": [1, 1]},
    "test": {"instructions": 1, "examples_per_instruction": 2},
}  # fmt: skip
TINY_TRAIN = [
    "--max-steps", "150", "--batch-size", "32", "--lr", "0.01", "--layers", "2", "--heads",
    "2", "--width", "32", "--context", "40", "--eval-every", "150", "--device", "cpu",
    "--set", "warmup_steps=20", "--quiet",
]  # fmt: skip


def hand_prompt(rules: list[dict], word: str, letter: dict[str, int]) -> list[int]:
    ids = [BOS]
    for index, rule in enumerate(rules):
        ids += [SEP] if index else []
        ids += [letter[c] for c in rule["x"]]
        ids += [TO_TERMINAL if rule["terminal"] else TO]
        ids += [letter[c] for c in rule["y"]]
    return ids + [IN] + [letter[c] for c in word] + [OUT]


def hand_answer(words: list[str], letter: dict[str, int]) -> list[int]:
    ids = []
    for index, word in enumerate(words):
        ids += ([THEN] if index else []) + [letter[c] for c in word]
    return ids + [EOS]


# ---------------------------------------------------------------- the layout


def test_markov_layout_ids_are_the_documented_ones():
    tokenizer = Tokenizer("abα", layout="markov")
    assert tokenizer.encode_algorithm_prompt(RULES, "ab") == [
        1, 9, 2, 10, 7, 10, 11, 6, 3, 9, 10, 4,
    ]  # fmt: skip
    assert tokenizer.encode_trace(["bb", "", "b"]) == [10, 10, 8, 8, 10, 5]
    assert tokenizer.encode_trace(["ab"]) == tokenizer.encode_answer("ab") == [9, 10, 5]
    assert tokenizer.decode([10, 10, 8, 10, 5, 9]) == "bb b"
    assert tokenizer.vocab_size == 12
    # The single-rule layout keeps its ids: "a" is 6 there, and it has no markov tokens.
    rule = Tokenizer("abα")
    assert rule.encode_prompt("a", "b", "ab") == [1, 6, 2, 7, 3, 6, 7, 4]
    assert rule.vocab_size == 9 and rule.decode([6, 8, 7]) == "aαb"
    with pytest.raises(RewritelabError, match="'rule' layout"):
        rule.encode_algorithm_prompt(RULES, "ab")
    with pytest.raises(RewritelabError, match="layout must be one of"):
        Tokenizer("ab", layout="tree")


def test_saved_state_names_the_layout_and_old_files_still_load(tmp_path):
    Tokenizer("abα", layout="markov").save(tmp_path / "m")
    state = json.loads((tmp_path / "m" / "rewritelab_tokenizer.json").read_text())
    assert state["layout_name"] == "markov"
    assert state["special_tokens"][6:] == ["<to.>", "<sep>", "<then>"]
    assert Tokenizer.load(tmp_path / "m") == Tokenizer("abα", layout="markov")
    Tokenizer("ab").save(tmp_path / "r")
    state = json.loads((tmp_path / "r" / "rewritelab_tokenizer.json").read_text())
    assert "layout_name" not in state and len(state["special_tokens"]) == 6
    # A state written before layouts had names (format /2 without layout_name) is the rule one.
    assert Tokenizer.load(tmp_path / "r").layout == "rule"


def test_markov_model_opens_in_hugging_face_with_our_ids(tmp_path):
    tokenizer = Tokenizer("abα", layout="markov")
    model = build_model(ModelConfig(layers=1, heads=1, width=16, context=32), tokenizer, seed=0)
    save_model(model, tokenizer, tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    text = "<bos>a<to>b<sep>bα<to.><in>ab<out>"
    expected = hand_prompt(RULES, "ab", LETTER)
    assert hf.encode(text, add_special_tokens=False) == expected
    assert hf.encode("bb<then>b<eos>", add_special_tokens=False) == [10, 10, 8, 10, 5]
    assert hf.decode(expected) == text
    loaded, loaded_tokenizer = load_model(tmp_path)
    assert loaded_tokenizer == tokenizer and loaded.vocab_size == 12


# ---------------------------------------------------------------- encoding datasets


def test_encode_split_writes_each_target_as_the_hand_layout(make_dataset):
    data = make_dataset({**TINY_MARKOV, "seed": 0, "alphabet": "ab", "train": {
        **TINY_MARKOV["train"], "markers": "α", "rules": [1, 3], "input_length": [2, 5],
        "pattern_length": [1, 2], "replacement_length": [0, 2],
    }})  # fmt: skip
    manifest = read_manifest(data)
    assert dataset_alphabet(manifest) == "abα"
    tokenizer = Tokenizer("abα", layout="markov")
    records = load_split(data, "train")
    gold = {
        "step": lambda r: [r["step_output"]],
        "final": lambda r: [r["output"]],
        "trace": lambda r: r["trace"] if r["steps"] else [r["input"]],
    }
    assert any(r["steps"] > 1 for r in records) and any(r["noop"] for r in records)
    assert any("α" in "".join(rule["y"] for rule in r["rules"]) for r in records)
    for target, answer_of in gold.items():
        split = encode_split(data, "train", tokenizer, target)
        assert len(split) == len(records)
        for i, record in enumerate(records):
            prompt = hand_prompt(record["rules"], record["input"], LETTER)
            expected = prompt + hand_answer(answer_of(record), LETTER)
            assert split.tokens[split.offsets[i] : split.offsets[i + 1]].tolist() == expected
            assert split.prompt_lengths[i] == len(prompt)
            assert split.records[i]["steps"] == record["steps"]
            assert split.records[i]["halt"] == record["halt"]
    assert encode_split(data, "train", tokenizer).records[0]["target"] == "final"  # default


def test_target_is_refused_on_a_single_rule_dataset(make_dataset, tmp_path, capsys):
    data = make_dataset(RULE_DATA)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--set",
                 "target=trace", "--max-steps", "1", "--quiet"])  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert "does not apply to task 'rule'" in error and not (tmp_path / "run").exists()
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--set",
                 "target=all", "--quiet"])  # fmt: skip
    assert code == 2 and "target must be one of" in capsys.readouterr().err


# ---------------------------------------------------------------- training and evaluation


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    """A tiny model trained for `step` on TINY_MARKOV through `rewritelab train` (seconds)."""
    from rewritelab.tasks.generate import generate_dataset
    from rewritelab.tasks.spec_files import spec_from_dict

    root = tmp_path_factory.mktemp("markov")
    data, run = root / "data", root / "run"
    generate_dataset(spec_from_dict(TINY_MARKOV), data)
    argv = ["train", "--data", str(data), "--out", str(run), "--set", "target=step"]
    assert main(argv + TINY_TRAIN) == 0
    return data, run


def test_tiny_model_learns_one_step_of_seen_algorithms(step_run):
    _, run = step_run
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] == 150 and logged[-1]["seen_accuracy"] >= 0.9
    recorded = json.loads((run / "run_config.json").read_text())
    assert recorded["target"] == "step" and recorded["config"]["target"] == "step"
    assert Tokenizer.load(run / "model").layout == "markov"


def test_evaluate_cli_fast_and_generate_agree_with_markov_breakdowns(step_run, tmp_path, capsys):
    data, run = step_run
    verdicts = {}
    for path in ("fast", "generate"):
        out = tmp_path / f"{path}.jsonl"
        argv = ["evaluate", str(run), "--data", str(data), "--split", "seen_test", "--path", path]
        assert main([*argv, "--device", "cpu", "--predictions", str(out)]) == 0
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        verdicts[path] = [line["correct"] for line in lines]
    assert verdicts["fast"] == verdicts["generate"]
    generated = [
        json.loads(line) for line in (tmp_path / "generate.jsonl").read_text().splitlines()
    ]
    for line in generated:  # the generate path's text is judged against the record's step
        assert line["correct"] == (line["prediction"] == line["step_output"])
    metrics = json.loads((run / "eval-seen_test-fast.json").read_text())
    assert metrics["target"] == "step"
    assert set(metrics) >= {"by_steps", "by_rule_count", "by_halt", "by_noop", "by_algorithm"}
    records = load_split(data, "seen_test")
    for kind in ("no_rule", "terminal"):
        members = [v for v, r in zip(verdicts["fast"], records, strict=True) if r["halt"] == kind]
        assert metrics["by_halt"][kind]["examples"] == len(members)
        assert metrics["by_halt"][kind]["accuracy"] == pytest.approx(np.mean(members))
    assert "accuracy" in capsys.readouterr().out


def test_trace_evaluation_of_a_step_model_is_consistent(step_run, capsys):
    """Judged as a trace, whole-trace exact match on the generate path must equal the share of
    examples whose every step is right under teacher forcing (greedy decoding reproduces the
    answer iff every token is the argmax given the gold prefix)."""
    data, run = step_run
    assert main(["evaluate", str(run), "--data", str(data), "--split", "seen_test",
                 "--target", "trace", "--device", "cpu"]) == 0  # fmt: skip
    assert "steps right" in capsys.readouterr().out
    metrics = json.loads((run / "eval-seen_test-generate-trace.json").read_text())
    assert metrics["path"] == "generate" and metrics["target"] == "trace"
    trace = metrics["trace"]
    examples = metrics["overall"]["examples"]
    wrong = sum(trace["first_wrong_step"]["counts"].values())
    assert examples - wrong == round(metrics["overall"]["accuracy"] * examples)
    records = load_split(data, "seen_test")
    assert trace["steps_scored"] == sum(max(1, r["steps"]) for r in records)
    assert metrics["overall"]["accuracy"] <= trace["final_word"]["accuracy"] <= 1


def test_predict_and_rule_datasets_refuse_a_markov_model(step_run, make_dataset, capsys):
    _, run = step_run
    assert main(["predict", str(run), "--rule", "a -> b", "--input", "ab", "--device", "cpu"]) == 2
    assert "trained on algorithms" in capsys.readouterr().err
    rule_data = make_dataset(RULE_DATA)
    assert main(["evaluate", str(run), "--data", str(rule_data), "--device", "cpu"]) == 2
    assert "'markov' layout" in capsys.readouterr().err


# ---------------------------------------------------------------- trace metrics by hand


def test_step_verdicts_and_trace_summary_by_hand():
    # Gold "ab <then> b <then> <eos>"-style answers and hand-made teacher-forced predictions.
    gold = np.array([9, 10, THEN, 10, THEN, 9, EOS])  # words "ab", "b", "a"
    predicted = np.array([9, 10, THEN, 9, THEN, 9, EOS])  # step 2 written "a": wrong
    steps = step_verdicts(predicted == gold, gold, THEN)
    assert steps.tolist() == [True, False, True]
    early_end = np.array([9, 10, EOS, 10, THEN, 9, EOS])  # stops after step 1: its <then> is wrong
    assert step_verdicts(early_end == gold, gold, THEN).tolist() == [False, True, True]
    one_word = np.array([9, EOS])
    assert step_verdicts(np.array([True, True]), one_word, THEN).tolist() == [True]
    summary = trace_summary(
        [steps, np.array([True, True]), np.array([False, True, True, True]), np.array([True])]
    )
    assert summary["step_share"] == pytest.approx(8 / 10)  # 2 + 2 + 3 + 1 of 3 + 2 + 4 + 1
    assert summary["steps_scored"] == 10
    assert summary["first_wrong_step"] == {"mean": 1.5, "counts": {"1": 1, "2": 1}}
    assert trace_summary([np.array([True])])["first_wrong_step"]["mean"] is None


def test_final_word_verdicts_by_hand():
    tokenizer = Tokenizer("abα", layout="markov")
    records = [{"output": "b"}, {"output": "b"}, {"output": ""}, {"output": "ab"}]
    answers = [
        [9, 10, THEN, 10, EOS],  # "ab b": ends on b
        [9, 10, THEN, 10],  # never ended
        [9, THEN, EOS],  # "a" then the empty word
        [10, THEN, 9, 9, EOS],  # ends on "aa"
    ]
    assert final_word_verdicts(answers, records, tokenizer).tolist() == [True, False, True, False]


# ---------------------------------------------------------------- experiment E7


def test_e7_presets_resolve_to_their_grids():
    cpu = load_experiment(E7, "cpu")
    assert len(cpu.points()) == 4 * 3 * 3 and cpu.seeds == [0, 1, 2]
    assert {p.factors["train.target"] for p in cpu.points()} == {"step", "final", "trace"}
    assert {p.dataset["train"]["examples"] for p in cpu.points()} == {10000}  # a fixed budget
    mix = load_experiment(E7, "cpu-mix")
    assert len(mix.points()) == 12
    assert {tuple(p.dataset["train"]["rules"]) for p in mix.points()} == {(1, 2), (2, 2)}
    assert {tuple(p.dataset["test"]["rules"]) for p in mix.points()} == {(2, 2)}


def test_e7_tiny_point_runs_end_to_end_through_sweep(tmp_path, capsys):
    workdir = tmp_path / "work"
    code = main(["sweep", str(E7), "--preset", "tiny", "--workdir", str(workdir), "--jobs", "1",
                 "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    (row,) = ResultsDatabase(workdir / "results.sqlite").rows()
    assert row["status"] == "done", row["error"]
    metrics = row["metrics"]
    assert metrics["target"] == "trace" and 0 <= metrics["unseen_accuracy"] <= 1
    assert metrics["unseen_trace"]["steps_scored"] >= metrics["unseen_examples"]
    assert set(metrics["unseen_by_halt"]) <= {"terminal", "no_rule"}
    assert metrics["unseen_by_steps"] and metrics["history"]
    report = write_report(workdir / "results.sqlite", tmp_path / "report").read_text()
    assert "e7" in report and "trace" in report
