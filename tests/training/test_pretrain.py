"""Local pretraining: corpus reading and mapping, learning, the saved model, and fine-tuning it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from rewritelab.core.errors import RewritelabError
from rewritelab.evaluation.evaluate import evaluate_run
from rewritelab.model.files import load_model
from rewritelab.model.tokenizer import Tokenizer
from rewritelab.training.pretrain import (
    PRINTABLE,
    corpus_files,
    encode_corpus,
    pretrain,
    pretrain_config_from_dict,
)

SOURCES = Path(__file__).resolve().parents[2] / "src" / "rewritelab"
TINY = {
    "model": {"layers": 1, "heads": 2, "width": 32, "context": 48},
    "batch_size": 16,
    "max_steps": 60,
    "warmup_steps": 5,
    "learning_rate": 3e-3,
    "validation_fraction": 0.1,
    "validation_windows": 16,
    "max_corpus_chars": 60_000,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    summary = pretrain([SOURCES], out, pretrain_config_from_dict(TINY), progress=False)
    return out, summary


def test_pretraining_lowers_the_loss_and_saves_a_loadable_model(pretrained):
    out, summary = pretrained
    # Untrained: about ln(vocabulary); a few steps of character statistics get well below.
    assert summary["validation_loss_before"] > 4.0
    assert summary["validation_loss_after"] < summary["validation_loss_before"] - 1.0
    assert summary["corpus"]["files"] >= 2 and summary["corpus"]["chars_kept"] == 60_000
    record = json.loads((out / "run_config.json").read_text())
    assert record["config"]["max_steps"] == 60 and summary["steps"] == 60
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["validation_loss"] == summary["validation_loss_after"]
    assert {"step", "train_loss", "lr", "tokens_per_s", "elapsed_s"} <= set(logged[-1])
    ours, tokenizer = load_model(out / "model")
    assert tokenizer.alphabet == PRINTABLE and ours.config.context == 48
    hf = AutoModelForCausalLM.from_pretrained(out / "model", use_safetensors=True).eval()
    ids = torch.tensor([tokenizer.encode_word("def f(x):\n    return x")])
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), rtol=0, atol=1e-5)
    assert not list(out.parent.glob(".*partial"))


def test_the_architecture_is_the_final_models_without_its_weights(pretrained):
    """`architecture/` (written before the first step: the sweep tests rely on it) holds the
    same config, generation config and tokenizer files as the final `model/`, and no weights."""
    out, _ = pretrained
    shape, final = out / "architecture", out / "model"
    names = sorted(path.name for path in shape.iterdir())
    weights_and_card = ("model.safetensors", "README.md")  # the card describes a trained model
    assert names == sorted(p.name for p in final.iterdir() if p.name not in weights_and_card)
    assert "config.json" in names and "rewritelab_tokenizer.json" in names
    for name in names:
        assert (shape / name).read_bytes() == (final / name).read_bytes(), name


def test_a_base_still_training_gives_fresh_weight_runs_its_architecture(pretrained, tmp_path):
    """`reinitialize` on a pretraining run without its final model (still training) builds the
    same model as on the finished run; starting from its weights is refused in one line."""
    from rewritelab.model.pretrained import BaseLoading, load_base

    out, _ = pretrained
    training = tmp_path / "training"
    shutil.copytree(out / "architecture", training / "architecture")
    fresh = BaseLoading(method="full", reinitialize=True, seed=3)
    device = torch.device("cpu")
    (early, early_codec), (late, late_codec) = (
        load_base(b, fresh, device) for b in (training, out)
    )
    assert early_codec.kind == late_codec.kind == "rewritelab" and early.config == late.config
    for (name, weight), (_, other) in zip(
        early.state_dict().items(), late.state_dict().items(), strict=True
    ):
        assert torch.equal(weight, other), name
    with pytest.raises(RewritelabError, match="cannot load base model"):
        load_base(training, BaseLoading(method="full"), device)


def test_a_run_has_a_final_model_only_once_it_is_finished(pretrained, tmp_path):
    """`model_part` and `resolve_model_dir` name the finished run's `model/`; a run still
    training has its `architecture/` only, and asking it for a model fails in one line."""
    from rewritelab.model.files import model_part, resolve_model_dir
    from rewritelab.training.pretrain import base_finished

    out, _ = pretrained
    training = tmp_path / "training"
    shutil.copytree(out / "architecture", training / "architecture")
    assert model_part(out) == out / "model" == resolve_model_dir(out)
    assert resolve_model_dir(out / "model") == out / "model"
    assert base_finished({"out": str(out)}) and not base_finished({"out": str(training)})
    assert model_part(training) is None
    assert model_part(training, "architecture") == training / "architecture"
    with pytest.raises(RewritelabError, match="holds no model"):
        resolve_model_dir(training)


def test_corpus_characters_are_mapped_as_documented(tmp_path):
    (tmp_path / "a.py").write_text("a\tb\r\né~\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("xyz", encoding="utf-8")
    tokenizer = Tokenizer(PRINTABLE)
    tokens, facts = encode_corpus(corpus_files([tmp_path], "*.py"), tokenizer, 1000)
    pieces = np.split(tokens, np.nonzero(tokens == tokenizer.eos_id)[0] + 1)
    texts = [tokenizer.decode(piece.tolist()) for piece in pieces if len(piece)]
    assert texts == ["a    b\n~\n", "xyz"]
    assert facts["files"] == 2 and facts["chars_read"] == len("a\tb\né~\n") + 3  # \r\n read as \n
    extra = Tokenizer(pretrain_config_from_dict({"extra_alphabet": "é"}).alphabet())
    tokens, _ = encode_corpus([tmp_path / "a.py"], extra, 1000)
    assert extra.decode(tokens.tolist()) == "a    b\né~\n"


def test_corpus_paths_files_directories_globs_and_refusals(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("one.py", "sub/two.py", "sub/three.txt"):
        (tmp_path / name).write_text("text", encoding="utf-8")
    assert corpus_files([tmp_path], "*.py") == [tmp_path / "one.py", tmp_path / "sub/two.py"]
    assert corpus_files([f"{tmp_path}/**/*.txt"], "*.py") == [tmp_path / "sub/three.txt"]
    assert corpus_files([tmp_path / "one.py", tmp_path / "one.py"], "*.py") == [tmp_path / "one.py"]
    with pytest.raises(RewritelabError, match="does not exist"):
        corpus_files([tmp_path / "missing"], "*.py")
    with pytest.raises(RewritelabError, match="matches no file"):
        corpus_files([f"{tmp_path}/*.rs"], "*.py")
    with pytest.raises(RewritelabError, match="too small"):
        pretrain([tmp_path / "one.py"], tmp_path / "out", pretrain_config_from_dict(TINY))
    with pytest.raises(RewritelabError, match="unknown setting"):
        pretrain_config_from_dict({"steps": 3})
    with pytest.raises(RewritelabError, match="stop_at_train_accuracy: pretraining measures"):
        pretrain_config_from_dict({"stop_at_train_accuracy": 0.9})


def test_pretrained_model_fine_tunes_with_the_native_layout(pretrained, tmp_path):
    pytest.importorskip("peft")
    from tiny_run import make_data

    from rewritelab.evaluation.evaluate import evaluate_run as evaluate_finetuned
    from rewritelab.model.pretrained import merge
    from rewritelab.training.finetune import finetune
    from rewritelab.training.finetune_config import finetune_config_from_dict

    out, _ = pretrained
    data = make_data(tmp_path / "data", pattern_length=[1, 1], replacement_length=[1, 1])
    common = {"max_steps": 40, "batch_size": 16, "learning_rate": 3e-3, "warmup_steps": 5,
              "eval_examples": 0, "device": "cpu"}  # fmt: skip
    lora = finetune_config_from_dict({**common, "lora_rank": 4, "lora_alpha": 8})
    finetune(out, data, tmp_path / "lora", lora, progress=False)
    recorded = json.loads((tmp_path / "lora" / "run_config.json").read_text())
    assert recorded["template"] == "native" and recorded["target_modules"] == ["c_attn"]
    ours = evaluate_finetuned(tmp_path / "lora", data, "seen_test", path="generate")
    # The merged model is a plain rewritelab model: the from-scratch evaluator opens it.
    merged = merge(tmp_path / "lora", tmp_path / "merged")
    theirs = evaluate_run(merged, data, split="seen_test", path="fast")
    assert theirs["overall"] == ours["overall"]

    full = finetune_config_from_dict({**common, "method": "full"})
    scratch = finetune_config_from_dict({**common, "method": "full", "reinitialize": True})
    finetune(out, data, tmp_path / "full", full, progress=False)
    finetune(out, data, tmp_path / "scratch", scratch, progress=False)
    pretrained_model, _ = load_model(out / "model")
    for run in ("full", "scratch"):
        model, _ = load_model(tmp_path / run / "model")
        assert model.config == pretrained_model.config
    # Different starting weights: reinitialised and pretrained runs end apart.
    a = load_model(tmp_path / "full" / "model")[0].transformer.wte.weight
    b = load_model(tmp_path / "scratch" / "model")[0].transformer.wte.weight
    assert not torch.allclose(a, b)


def test_pretrain_finetune_evaluate_merge_report_through_the_cli(tmp_path, capsys):
    """The pretrained-model commands end to end through `rewritelab`, tiny sizes."""
    pytest.importorskip("peft")
    from tiny_run import make_data
    from tiny_sweep import TINY

    from rewritelab.cli.main import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc cab bca abba\n" * 400)
    data = make_data(tmp_path / "data", pattern_length=[1, 1], replacement_length=[1, 1])
    base = tmp_path / "base"
    small = ["--set", "model.layers=1", "--set", "model.heads=1", "--set", "model.width=16",
             "--set", "model.context=32", "--set", "device=\"cpu\""]  # fmt: skip
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(base), "--quiet",
                 "--set", "max_steps=5", "--set", "batch_size=8", *small]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 5
    run = tmp_path / "ft"
    steps = ["--max-steps", "3", "--batch-size", "8", "--lora-rank", "2", "--quiet"]
    assert (
        main(["finetune", "--base", str(base), "--data", str(data), "--out", str(run), *steps]) == 0
    )
    assert (run / "adapter").is_dir()
    capsys.readouterr()
    assert main(["evaluate-finetuned", str(run), "--data", str(data), "--split", "seen_test"]) == 0
    assert "seen_test" in capsys.readouterr().out
    assert main(["merge", str(run), "--out", str(tmp_path / "merged")]) == 0
    assert main(["evaluate", str(tmp_path / "merged"), "--data", str(data)]) == 0
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(TINY.replace("seeds = 2", "seeds = 1"))
    work = tmp_path / "work"
    assert main(["sweep", str(experiment), "--quiet", "--jobs", "1", "--workdir", str(work)]) == 0
    assert main(["report", str(work / "results.sqlite"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").is_file()
