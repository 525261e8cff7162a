"""Evaluation: fast and generate paths agree, breakdowns, Hugging Face parity, predict, refusals."""

import json

import numpy as np
import pytest
import torch
from tiny_run import TINY_DATA, make_data
from transformers import AutoModelForCausalLM

from rewritelab.core.errors import RewritelabError
from rewritelab.evaluation.accuracy import (
    breakdown,
    eval_splits,
    evaluation_point,
    point_accuracies,
)
from rewritelab.evaluation.evaluate import evaluate_run, predict
from rewritelab.evaluation.exact_match import fast_verdicts, generate_answers, generate_verdicts
from rewritelab.model.encoding import encode_split
from rewritelab.model.files import load_model
from rewritelab.model.prompts import CharCodec
from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.registry import TASKS
from rewritelab.tasks.rules import Rule
from rewritelab.tasks.spec_files import spec_from_dict


@pytest.mark.parametrize("split", ["seen_test", "test"])
def test_fast_and_generate_paths_agree_per_example(tiny_run, split):
    data, run, _ = tiny_run
    model, tokenizer = load_model(run / "model")
    examples = encode_split(data, split, tokenizer)
    fast = fast_verdicts(model, examples, batch_size=7)
    answers = generate_answers(model, examples, CharCodec(tokenizer), batch_size=5)
    np.testing.assert_array_equal(fast, generate_verdicts(answers, examples, CharCodec(tokenizer)))
    # Independently of tokens: a verdict is whether the decoded text is the exact rewrite.
    texts = [tokenizer.decode(answer) for answer in answers]
    ended = [bool(answer) and answer[-1] == tokenizer.eos_id for answer in answers]
    exact = [Rule(r["x"], r["y"]).apply(r["z"]) for r in examples.records]
    expected = [t == e and end for t, e, end in zip(texts, exact, ended, strict=True)]
    np.testing.assert_array_equal(fast, expected)
    if split == "seen_test":
        assert fast.mean() >= 0.9


def test_verdicts_do_not_depend_on_batch_size(tiny_run):
    data, run, _ = tiny_run
    model, tokenizer = load_model(run / "model")
    examples = encode_split(data, "seen_test", tokenizer)
    np.testing.assert_array_equal(
        fast_verdicts(model, examples, batch_size=1),
        fast_verdicts(model, examples, batch_size=1024),
    )


def test_trained_model_in_transformers_gives_identical_predictions(tiny_run):
    data, run, _ = tiny_run
    ours, tokenizer = load_model(run / "model")
    hf = AutoModelForCausalLM.from_pretrained(run / "model", use_safetensors=True).eval()
    examples = encode_split(data, "test", tokenizer)
    with torch.no_grad():
        for i in range(0, len(examples), 9):
            ids = torch.from_numpy(examples.tokens[examples.offsets[i] : examples.offsets[i + 1]])
            ours_logits, hf_logits = ours(ids[None]), hf(ids[None]).logits
            torch.testing.assert_close(hf_logits, ours_logits, rtol=0, atol=1e-5)
    codec = CharCodec(tokenizer)
    hf_verdicts = generate_verdicts(generate_answers(hf, examples, codec), examples, codec)
    ours_verdicts = generate_verdicts(generate_answers(ours, examples, codec), examples, codec)
    np.testing.assert_array_equal(hf_verdicts, ours_verdicts)


def test_breakdown_by_hand():
    records = [
        {"instruction": 3, "x": "ab", "noop": False, "occurrences": 1},
        {"instruction": 3, "x": "ab", "noop": True, "occurrences": 0},
        {"instruction": 10, "x": "b", "noop": False, "occurrences": 2},
        {"instruction": 10, "x": "b", "noop": False, "occurrences": 1},
    ]
    result = breakdown(np.array([True, False, True, True]), records, TASKS["rule"])
    assert result["overall"]["accuracy"] == 0.75
    assert result["overall"]["examples"] == 4
    assert result["overall"]["stderr"] == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    assert {k: v["accuracy"] for k, v in result["by_noop"].items()} == {
        "has_op": 1.0,
        "noop": 0.0,
    }
    assert {k: v["accuracy"] for k, v in result["by_occurrences"].items()} == {
        "0": 0.0,
        "1": 1.0,
        "2": 1.0,
    }
    assert list(result["by_pattern_length"]) == ["1", "2"]
    assert result["by_pattern_length"]["2"] == pytest.approx(
        {
            "accuracy": 0.5,
            "examples": 2,
            "stderr": 0.5 / 2**0.5,
        }
    )
    assert list(result["by_instruction"]) == ["3", "10"]  # numeric order, not text order
    # rule 3 on its input that holds x alone: the no-op it got wrong is left out
    has_op = {k: v["accuracy"] for k, v in result["by_has_op_instruction"].items()}
    assert has_op == {"3": 1.0, "10": 1.0} and result["by_instruction"]["3"]["accuracy"] == 0.5


def test_an_evaluation_point_logs_accuracy_on_inputs_that_hold_x():
    records = [{"noop": False}, {"noop": True}, {"noop": False}, {"noop": True}]
    verdicts = np.array([True, True, False, True])
    unseen = point_accuracies("unseen", verdicts, records)
    assert unseen == {"unseen_accuracy": 0.75, "unseen_has_op_accuracy": 0.5}
    assert point_accuracies("seen", verdicts, records) == {"seen_accuracy": 0.75}
    only_noops = point_accuracies("unseen", verdicts[[1, 3]], records[1::2])
    assert only_noops == {"unseen_accuracy": 1.0, "unseen_has_op_accuracy": None}


def test_a_run_evaluates_fixed_subsets_of_the_seen_and_unseen_tests(tiny_run):
    data, run, _ = tiny_run
    _, tokenizer = load_model(run / "model")
    whole = {split: encode_split(data, split, tokenizer) for split in ("seen_test", "test")}
    evals = eval_splits(lambda split: encode_split(data, split, tokenizer), 7, seed=3)
    assert list(evals) == ["seen", "unseen"] and [len(s) for s in evals.values()] == [7, 7]
    for name, split in (("seen", "seen_test"), ("unseen", "test")):
        assert all(record in whole[split].records for record in evals[name].records)
    again = eval_splits(lambda split: encode_split(data, split, tokenizer), 7, seed=3)
    assert [s.records for s in again.values()] == [s.records for s in evals.values()]
    other = eval_splits(lambda split: encode_split(data, split, tokenizer), 7, seed=4)
    assert [s.records for s in other.values()] != [s.records for s in evals.values()]
    every = eval_splits(lambda split: encode_split(data, split, tokenizer), 0, seed=3)
    assert [len(s) for s in every.values()] == [len(whole["seen_test"]), len(whole["test"])]

    # a point's metrics: each split's verdicts, here "right exactly on the no-ops"
    metrics = evaluation_point(
        evals, lambda name, split: np.array([r["noop"] for r in split.records], dtype=bool)
    )
    noops = [r["noop"] for r in evals["unseen"].records]
    assert metrics["unseen_accuracy"] == pytest.approx(np.mean(noops))
    assert metrics["unseen_has_op_accuracy"] in (0.0, None)
    assert set(metrics) == {"seen_accuracy", "unseen_accuracy", "unseen_has_op_accuracy"}


def test_evaluate_run_writes_metrics_and_predictions(tiny_run, tmp_path):
    data, run, final = tiny_run
    out = tmp_path / "predictions.jsonl"
    metrics = evaluate_run(run, data, split="seen_test", path="generate", predictions_out=out)
    saved = json.loads((run / "eval-seen_test-generate.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == metrics["overall"]["examples"] == 100
    assert all(line["correct"] == (line["prediction"] == line["output"]) for line in lines)
    fast = evaluate_run(run, data, split="seen_test", path="fast")
    assert fast["overall"] == metrics["overall"]
    assert fast["overall"]["accuracy"] == final["seen_accuracy"]  # training evaluated all 100


def test_training_logs_the_has_op_accuracy_the_evaluator_measures(tiny_run):
    data, run, final = tiny_run
    unseen = evaluate_run(run, data, split="test", path="fast")  # training evaluated all 60
    assert final["unseen_accuracy"] == unseen["overall"]["accuracy"]
    assert final["unseen_has_op_accuracy"] == unseen["by_noop"]["has_op"]["accuracy"]
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("unseen_has_op_accuracy" in line for line in logged)


def test_evaluating_on_another_dataset_keeps_the_runs_own_record(tiny_run, tmp_path):
    data, run, _ = tiny_run
    own = evaluate_run(run, data, split="test", path="fast")
    record = (run / "eval-test-fast.json").read_text()
    other = tmp_path / "other"
    generate_dataset(spec_from_dict({**TINY_DATA, "seed": 2}), other)
    elsewhere = evaluate_run(run, other, split="test", path="fast")
    digest = json.loads((other / "manifest.json").read_text())["files"]["test.jsonl"]["sha256"]
    assert (run / "eval-test-fast.json").read_text() == record  # untouched
    saved = json.loads((run / f"eval-test-fast-{digest[:12]}.json").read_text())
    assert saved["data"] == str(other) and saved["overall"] == elsewhere["overall"]
    assert json.loads(record)["overall"] == own["overall"]


def test_predict_matches_the_generate_path(tiny_run, tmp_path):
    data, run, _ = tiny_run
    evaluate_run(run, data, split="test", path="generate", predictions_out=tmp_path / "p.jsonl")
    for line in (tmp_path / "p.jsonl").read_text().splitlines()[:5]:
        record = json.loads(line)
        answer, exact = predict(run, f"{record['x']} -> {record['y']}", record["z"])
        assert exact == record["output"]
        assert answer == record["prediction"]


def test_predict_refuses_unknown_characters(tiny_run):
    _, run, _ = tiny_run
    with pytest.raises(RewritelabError, match="'z'"):
        predict(run, "a -> b", "zab")


def test_dataset_outside_the_tokenizer_alphabet_is_refused(tiny_run, tmp_path):
    _, run, _ = tiny_run
    other = make_data(tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["config"]["alphabet"] = "abcd"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RewritelabError, match="does not match"):
        evaluate_run(run, other)


def test_bad_runs_and_paths_are_refused(tiny_run, tmp_path):
    data, run, _ = tiny_run
    with pytest.raises(RewritelabError, match="does not exist"):
        evaluate_run(tmp_path / "no_run", data)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(RewritelabError, match="holds no model"):
        evaluate_run(tmp_path / "empty_run", data)
    with pytest.raises(RewritelabError, match="evaluation path"):
        evaluate_run(run, data, path="beam")
    with pytest.raises(RewritelabError, match="split"):
        evaluate_run(run, data, split="validation")


def test_predictions_replace_a_file_only_with_force_and_appear_whole(tiny_run, tmp_path, capsys):
    from rewritelab.cli.main import main

    data, run, _ = tiny_run
    out = tmp_path / "p.jsonl"
    out.write_text("an earlier file\n")
    args = ["evaluate", str(run), "--data", str(data), "--split", "seen_test", "--predictions",
            str(out)]  # fmt: skip
    assert main(args) == 2 and out.read_text() == "an earlier file\n"
    assert "exists (use --force to replace it)" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert len(out.read_text().splitlines()) == 100
    assert [p.name for p in tmp_path.iterdir()] == ["p.jsonl"]  # no partial file left


def test_weights_without_their_digest_are_refused_unless_allowed(tiny_run, tmp_path, capsys):
    """Stripped of the digest metadata its weights were saved with, a model is not evaluated
    silently: refused in one line, or loaded with a warning under --allow-unverified."""
    import shutil

    from safetensors.torch import load_file, save_file

    from rewritelab.cli.main import main

    data, run, _ = tiny_run
    model_dir = tmp_path / "model"
    shutil.copytree(run / "model", model_dir)
    weights = model_dir / "model.safetensors"
    save_file(load_file(weights), weights)  # the same tensors, no metadata
    args = ["evaluate", str(model_dir), "--data", str(data), "--split", "seen_test"]
    assert main(args) == 2
    assert "carries no digest to verify" in capsys.readouterr().err
    assert main([*args, "--allow-unverified"]) == 0
    assert "is not verified (no digest)" in capsys.readouterr().err
