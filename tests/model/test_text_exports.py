"""`rewritelab export sft` and `export lm-eval`, checked with the real libraries: TRL's
SFTTrainer trains on exactly our token ids with the loss on exactly the answer, and lm-eval
scores the exported task as our own evaluation scores the same examples."""

from __future__ import annotations

import json
import math

import pytest
from conftest import run_cli

from rewritelab.model.tokenizer import Tokenizer
from rewritelab.tasks.storage import read_records

pytestmark = pytest.mark.slow


def test_trl_sft_trains_on_our_ids_with_the_loss_on_the_answer(tiny_run, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data, run, _ = tiny_run
    out = tmp_path / "sft.jsonl"
    code, printed, err = run_cli(["export", "sft", str(data), "--out", str(out)], capsys)
    assert code == 0, err
    dataset = datasets.load_dataset("json", data_files=str(out), split="train")
    records = list(read_records(data / "train.jsonl"))
    assert len(dataset) == len(records) and f"{len(records)} prompt-completion" in printed
    config = trl.SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=2, max_length=32,
                           per_device_train_batch_size=4, report_to=[], save_strategy="no",
                           use_cpu=True, completion_only_loss=True, logging_steps=1)  # fmt: skip
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(run / "model"),
        processing_class=AutoTokenizer.from_pretrained(run / "model"),
        train_dataset=dataset, args=config,
    )  # fmt: skip
    ours = Tokenizer.load(run / "model")
    for index in (0, 1, len(records) - 1):
        record, tokenized = records[index], trainer.train_dataset[index]
        prompt = ours.encode_prompt(record["x"], record["y"], record["z"])
        answer = ours.encode_answer(record["output"])  # ends with <eos>
        assert tokenized["input_ids"] == prompt + answer
        assert tokenized["labels"] == [-100] * len(prompt) + answer  # the loss on the answer
    losses = [entry["loss"] for entry in trainer.train().metrics and trainer.state.log_history
              if "loss" in entry]  # fmt: skip
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


def test_lm_eval_scores_the_exported_task_as_our_evaluation(tiny_run, tmp_path, capsys):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    data, _, _ = tiny_run
    run = tmp_path / "half-trained"  # right on some examples, wrong on others
    assert run_cli(["train", "--data", str(data), "--out", str(run), "--max-steps", "150",
                    "--layers", "2", "--heads", "4", "--width", "64", "--context", "32",
                    "--batch-size", "16", "--lr", "0.003", "--quiet"], capsys)[0] == 0  # fmt: skip
    predictions = tmp_path / "predictions.jsonl"
    assert (
        run_cli(
            [
                "evaluate",
                str(run),
                "--data",
                str(data),
                "--split",
                "seen_test",
                "--path",
                "generate",
                "--predictions",
                str(predictions),
            ],
            capsys,
        )[0]
        == 0
    )
    limit = 40
    correct = [json.loads(line)["correct"] for line in predictions.read_text().splitlines()]
    expected = sum(correct[:limit]) / limit
    assert 0 < expected < 1  # a trained model that is sometimes wrong: the comparison bites
    folder = tmp_path / "task"
    code, _, err = run_cli(["export", "lm-eval", str(data), "--out", str(folder), "--split",
                            "seen_test", "--name", "rules"], capsys)  # fmt: skip
    assert code == 0, err
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={run / 'model'},dtype=float32", tasks=["rules"],
        task_manager=TaskManager(include_path=str(folder)), limit=limit, batch_size=1,
        device="cpu",
    )  # fmt: skip
    assert results["results"]["rules"]["exact_match,none"] == pytest.approx(expected)
