"""Every finished run writes a model card beside its weights, in the hub's layout: what the
model is, how it was trained, on which data (by digest), how well it did, the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from huggingface_hub import ModelCard
from tiny_run import make_data

from rewritelab.model.gpt import RUN_MODEL_DIR
from rewritelab.tasks.storage import read_manifest


def test_a_finished_run_has_a_card_with_its_last_evaluation_and_data(tiny_run):
    data, run, final = tiny_run
    card = ModelCard.load(run / RUN_MODEL_DIR / "README.md")
    assert card.data.library_name == "transformers" and "rewritelab" in card.data.tags
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    for name in ("seen_accuracy", "unseen_accuracy", "train_loss"):
        assert f"| {name.replace('_', ' ')} | {round(last[name], 4)} |" in card.text
    for name, facts in read_manifest(data)["files"].items():
        if name.startswith("train"):
            assert f"- `{name}`: `{facts['sha256']}`" in card.text
    config = json.loads(card.text.split("```json\n")[1].split("```")[0])
    assert config == json.loads((run / "run_config.json").read_text())["config"]


def test_the_card_names_the_command_that_trained_the_model(tmp_path):
    data = make_data(tmp_path / "data")
    command = Path(sys.executable).with_name("rewritelab")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "3"]
    environment = {**os.environ, "REWRITELAB_THREADS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([str(command), *args], check=True, capture_output=True, env=environment)
    card = (tmp_path / "run" / RUN_MODEL_DIR / "README.md").read_text()
    assert f"`rewritelab {' '.join(args)}`" in card
