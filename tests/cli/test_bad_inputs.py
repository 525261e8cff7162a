"""The table of bad inputs: every command refuses each in one stderr line and touches nothing.

Each case is a command line (with `{placeholders}` for the shared fixtures). It must exit
non-zero, print exactly one line on stderr with no traceback, and leave the SHA-256 of every
file under the shared fixtures and under the case's own directory unchanged (no file created,
changed or removed). Cases run in-process through `rewritelab.cli.main.main`; a few run as real
subprocesses to prove the exit code a shell sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rewritelab.cli.main import main
from rewritelab.sweep.database import ResultsDatabase

LONG = "q" * 9000
REMOTE_CODE = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
TINY_EXPERIMENT = """
name = "tiny"
kind = "generic"
seeds = 1
[dataset]
alphabet = "abcd"
seen_test_examples = 10
[dataset.train]
instructions = 2
examples = 40
[dataset.test]
instructions = 2
examples_per_instruction = 4
[train]
epochs = 1
device = "cpu"
[train.model]
layers = 1
heads = 1
width = 16
context = 24
"""


class Evil:
    """A pickle payload that would run a command when unpickled."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/rewritelab-pwned",))


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="session")
def world(tmp_path_factory, tiny_run) -> dict[str, str]:
    """Shared inputs, built once: copies of the tiny dataset and run, damaged or foreign files."""
    root = tmp_path_factory.mktemp("bad_inputs")
    data, run, _ = tiny_run
    data, run = _copy(data, root / "data"), _copy(run, root / "run")
    paths = {"root": root, "data": data, "run": run}
    paths["precious"] = _write(root / "precious" / "thesis.tex", "x").parent
    paths["afile"] = _write(root / "afile.txt", "just a file\n")
    paths["alink"] = root / "alink.jsonl"  # a symlink to a file that must not be written through
    paths["alink"].symlink_to(paths["afile"])
    paths["fifo"] = root / "config.toml.fifo"  # reading it would wait for a writer forever
    os.mkfifo(paths["fifo"])
    truncated = _copy(data, root / "truncated")
    text = (truncated / "train.jsonl").read_bytes()
    (truncated / "train.jsonl").write_bytes(text[: len(text) // 2 + 7])
    paths["truncated"] = truncated
    paths["badmanifest"] = _copy(data, root / "badmanifest")
    (paths["badmanifest"] / "manifest.json").write_bytes(b"\xff\xfe not utf-8")
    paths["jsonmanifest"] = _copy(data, root / "jsonmanifest")
    (paths["jsonmanifest"] / "manifest.json").write_text("{", encoding="utf-8")
    paths["manifestonly"] = _write(root / "manifestonly" / "manifest.json", "{}").parent
    paths["badrunconfig"] = _copy(run, root / "badrunconfig")
    (paths["badrunconfig"] / "run_config.json").write_bytes(b"\xff\xfe\x00 not utf-8")
    paths["edited"] = _copy(data, root / "edited")
    lines = (paths["edited"] / "train.jsonl").read_text(encoding="utf-8").splitlines(True)
    record = json.loads(lines[0])
    lines[0] = json.dumps({**record, "output": record["output"] + "a"}, ensure_ascii=False) + "\n"
    (paths["edited"] / "train.jsonl").write_text("".join(lines), encoding="utf-8")
    paths["badmodel"] = _copy(run, root / "badmodel")
    (paths["badmodel"] / "model" / "config.json").write_bytes(b"{\xff\xfe}")
    paths["evilmodel"] = _copy(run, root / "evilmodel")
    (paths["evilmodel"] / "model" / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    paths["emptyrun"] = (root / "emptyrun").mkdir() or root / "emptyrun"
    paths["picklebase"] = _copy(run / "model", root / "picklebase")  # weights as a pickle only
    (paths["picklebase"] / "model.safetensors").unlink()
    (paths["picklebase"] / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    paths["evilrun"] = _copy(run, root / "evilrun")
    for optimizer in paths["evilrun"].rglob("optimizer.pt"):
        optimizer.write_bytes(pickle.dumps(Evil()))
    configs = {
        "bad_toml": ("bad.toml", "x = [\n"),
        "nonutf8": ("nonutf8.toml", b"seed = 1\n\xff\xfe\n"),
        "yaml_error": ("bad.yaml", "a: [1, 2\nb: {c\n  - d: ]\n"),
        "yaml_list": ("list.yaml", "- 1\n- 2\n"),
        "unknown_key": ("unknown.toml", "bogus = 1\n"),
        "long_line": ("long.toml", f"{LONG} = = 1\n"),
        "empty_corpus": ("empty.txt", ""),
        "binary_markov": ("binary.markov", b"\x00\xff\xfe\x01"),
        "bad_markov": ("bad.markov", "ab\n"),
        "long_markov": ("long.markov", LONG + "\n"),
        "auto_map_base": (
            "auto_map_base/config.json",
            json.dumps({"model_type": "gpt2", "auto_map": REMOTE_CODE}),
        ),
    }
    for key, (name, content) in configs.items():
        paths[key] = _write(root / name, content)
    paths["auto_map_base"] = paths["auto_map_base"].parent
    _write(paths["auto_map_base"] / "evil.py", "raise SystemExit('custom code ran')\n")
    experiments = {
        "exp_ok": TINY_EXPERIMENT,
        "exp_traversal": TINY_EXPERIMENT.replace('name = "tiny"', 'name = "../../x"'),
        "exp_space": TINY_EXPERIMENT.replace('name = "tiny"', 'name = "a b"'),
        "exp_seeds": TINY_EXPERIMENT.replace("seeds = 1", "seeds = -1"),
        "exp_repeated_seeds": TINY_EXPERIMENT.replace("seeds = 1", "seeds = [1, 1]"),
        "exp_empty_grid": TINY_EXPERIMENT + '[grid]\n"dataset.train.instructions" = []\n',
        "exp_bad_factor": TINY_EXPERIMENT + '[grid]\n"model.layers" = [1]\n',
        "exp_unknown": "nonsense = 1\n" + TINY_EXPERIMENT,
        "exp_method": 'method = "magic"\n' + TINY_EXPERIMENT,
        "exp_no_kind": TINY_EXPERIMENT.replace('kind = "generic"\n', ""),
        "exp_bad_kind": TINY_EXPERIMENT.replace('kind = "generic"', 'kind = "e9"'),
        "exp_bad_train": TINY_EXPERIMENT.replace("epochs = 1", "epochs = -3"),
        "exp_bad_redraws": "redraw_unmastered = -1\n" + TINY_EXPERIMENT,
        "exp_text_redraws": TINY_EXPERIMENT + '[presets.cpu]\nredraw_unmastered = "twice"\n',
        "exp_bad_preset": TINY_EXPERIMENT + "[presets.cpu]\nfoo = 1\n",
        "exp_preset_name": TINY_EXPERIMENT + '[presets."../up"]\nseeds = 1\n',
        "exp_adaptive_bad": TINY_EXPERIMENT + '[grid]\n"dataset.train.instructions" = [2, 4]\n'
                            '[adaptive]\nbudget = "lots"\n',
        "exp_adaptive_one_count": TINY_EXPERIMENT,  # no grid: no range of instruction counts
        "exp_impossible": TINY_EXPERIMENT.replace("instructions = 2\nexamples = 40",
                                                  "instructions = 100000\nexamples = 40"),
    }  # fmt: skip
    for key, text in experiments.items():
        paths[key] = _write(root / "experiments" / f"{key}.toml", text)
    paths["exp_nonutf8"] = _write(root / "experiments" / "nonutf8.toml", b"name = \xff\n")
    paths["exp_yaml"] = _write(root / "experiments" / "broken.yaml", "name: [\n")
    foreign = root / "foreign.sqlite"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE accounts (id INTEGER, owner TEXT)")
    paths["foreign"] = foreign
    paths["empty_results"] = root / "empty.sqlite"
    ResultsDatabase(paths["empty_results"]).close()
    stored = {
        "nan_metrics": ("e", '{"unseen_accuracy": "high"}'),
        "bad_json": ("e", "{oops"),
        "traversal_name": ("../../escaped", '{"unseen_accuracy": 0.5}'),  # a name made a path
    }
    for key, (experiment, metrics) in stored.items():
        path = root / f"{key}.sqlite"
        database = ResultsDatabase(path)
        database.connection.execute(
            "INSERT INTO points (point_id, experiment, preset, seed, factors, dataset_id, config, "
            "status, metrics, updated) VALUES ('p1', ?, 'base', 0, '{}', 'd', '{}', 'done', ?, "
            "'now')",
            (experiment, metrics),
        )
        database.close()
        paths[key] = path
    paths["future_schema"] = root / "future.sqlite"
    ResultsDatabase(paths["future_schema"]).close()
    with sqlite3.connect(paths["future_schema"]) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    return {key: str(value) for key, value in paths.items()}


def _case(name: str, *argv: str, xfail: str | None = None, root_ok: bool = True):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    if not root_ok:
        marks.append(pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions"))
    return pytest.param(list(argv), id=name, marks=marks)


# The case tables: one CLI call a line, laid out by hand.
# fmt: off
GLOBAL = [
    _case("no-command"),
    _case("unknown-command", "frobnicate"),
    _case("unknown-flag", "--bogus", "apply", "a -> b", "a"),
    _case("long-unknown-command", LONG),
]

APPLY = [
    _case("apply-no-arrow", "apply", "ab", "abc"),
    _case("apply-missing-word", "apply", "a -> b"),
    _case("apply-no-args", "apply"),
    _case("apply-two-arrows", "apply", "a -> b -> c", "abc"),
    _case("apply-empty-rule", "apply", "", "abc"),
    _case("apply-extra-arg", "apply", "a -> b", "abc", "more"),
    _case("apply-unknown-flag", "apply", "--fast", "a -> b", "abc"),
    _case("apply-long-rule", "apply", LONG, "abc"),
]

MARKOV = [
    _case("markov-missing-file", "markov", "{root}/nope.markov", "ab"),
    _case("markov-directory", "markov", "{root}", "ab"),
    _case("markov-binary", "markov", "{binary_markov}", "ab"),
    _case("markov-bad-line", "markov", "{bad_markov}", "ab"),
    _case("markov-long-line", "markov", "{long_markov}", "ab"),
    _case("markov-steps-not-int", "markov", "{bad_markov}", "ab", "--max-steps", "many"),
    _case("markov-missing-word", "markov", "{bad_markov}"),
    _case("markov-no-args", "markov"),
    _case("markov-empty-file", "markov", "{empty_corpus}", "ab"),
    _case("markov-steps-negative", "markov", "{root}/nope.markov", "ab", "--max-steps", "-1"),
]

GEN = ["generate", "--quiet", "--instructions", "3", "--examples-per-instruction", "2"]
GENERATE = [
    _case("generate-no-out", "generate", "--instructions", "3"),
    _case("generate-negative-seed", *GEN, "--out", "{tmp}/d", "--seed", "-1"),
    _case("generate-one-letter-alphabet", *GEN, "--out", "{tmp}/d", "--set", 'alphabet="a"'),
    _case("generate-existing-dataset", *GEN, "--out", "{data}"),
    _case("generate-force-not-dataset", *GEN, "--out", "{precious}", "--force"),
    _case("generate-force-manifest-only", *GEN, "--out", "{manifestonly}", "--force"),
    _case("generate-force-bad-manifest", *GEN, "--out", "{badmanifest}", "--force"),
    _case("generate-force-cwd", *GEN, "--out", ".", "--force"),
    _case("generate-force-file", *GEN, "--out", "{afile}", "--force"),
    _case("generate-existing-file", *GEN, "--out", "{afile}"),
    _case("generate-under-file", *GEN, "--out", "{afile}/sub"),
    _case("generate-readonly", *GEN, "--out", "{tmp}/ro/ds", root_ok=False),
    _case("generate-missing-config", *GEN, "--out", "{tmp}/o", "--config", "{root}/none.toml"),
    _case("generate-config-dir", *GEN, "--out", "{tmp}/o", "--config", "{root}"),
    _case("generate-bad-toml", *GEN, "--out", "{tmp}/o", "--config", "{bad_toml}"),
    _case("generate-nonutf8", *GEN, "--out", "{tmp}/o", "--config", "{nonutf8}"),
    _case("generate-yaml-error", *GEN, "--out", "{tmp}/o", "--config", "{yaml_error}"),
    _case("generate-yaml-list", *GEN, "--out", "{tmp}/o", "--config", "{yaml_list}"),
    _case("generate-unknown-key", *GEN, "--out", "{tmp}/o", "--config", "{unknown_key}"),
    _case("generate-long-line", *GEN, "--out", "{tmp}/o", "--config", "{long_line}"),
    _case("generate-negative-seed", *GEN, "--out", "{tmp}/o", "--seed", "-1"),
    _case("generate-zero-instructions", "generate", "--out", "{tmp}/o", "--instructions", "0"),
    _case("generate-negative-instructions", "generate", "--out", "{tmp}/o", "--instructions", "-5"),
    _case("generate-instructions-text", "generate", "--out", "{tmp}/o", "--instructions", "ten"),
    _case("generate-zero-examples", *GEN[:4], "--examples-per-instruction", "0", "--out",
          "{tmp}/o"),  # fmt: skip
    _case("generate-noop-share-high", *GEN, "--out", "{tmp}/o", "--noop-share", "1.5"),
    _case("generate-noop-share-nan", *GEN, "--out", "{tmp}/o", "--noop-share", "nan"),
    _case("generate-empty-alphabet", *GEN, "--out", "{tmp}/o", "--alphabet", ""),
    _case("generate-duplicate-alphabet", *GEN, "--out", "{tmp}/o", "--alphabet", "aab"),
    _case("generate-set-no-equals", *GEN, "--out", "{tmp}/o", "--set", "seed"),
    _case("generate-set-unknown", *GEN, "--out", "{tmp}/o", "--set", "train.bogus=1"),
    _case("generate-set-not-section", *GEN, "--out", "{tmp}/o", "--set", "seed.x=1"),
    _case("generate-huge-examples", "generate", "--quiet", "--out", "{tmp}/o",
          "--instructions", "3", "--examples", "10000000000000"),  # fmt: skip
    _case("generate-huge-instructions", "generate", "--quiet", "--out", "{tmp}/o",
          "--instructions", "10000000000000", "--examples-per-instruction", "1"),  # fmt: skip
    _case("generate-zero-test", *GEN, "--out", "{tmp}/o", "--test-instructions", "0"),
    _case("generate-long-out-flag", *GEN, "--out", "{tmp}/o", "--" + LONG),
]

INSPECT = [
    _case("inspect-missing", "inspect", "{root}/nope"),
    _case("inspect-not-dataset", "inspect", "{precious}"),
    _case("inspect-truncated", "inspect", "{truncated}"),
    _case("inspect-nonutf8-manifest", "inspect", "{badmanifest}"),
    _case("inspect-bad-json-manifest", "inspect", "{jsonmanifest}"),
    _case("inspect-manifest-only", "inspect", "{manifestonly}"),
    _case("inspect-file", "inspect", "{afile}"),
    _case("inspect-no-args", "inspect"),
    _case("inspect-run-dir", "inspect", "{run}"),
]

TRAIN = ["train", "--quiet", "--max-steps", "2"]
TRAIN_CASES = [
    _case("train-threads-beyond-the-machine", *TRAIN, "--data", "{data}", "--out", "{tmp}/r",
          "--threads", "100000"),  # fmt: skip
    _case("train-missing-data", *TRAIN, "--data", "{root}/nope", "--out", "{tmp}/r"),
    _case("train-data-not-dataset", *TRAIN, "--data", "{precious}", "--out", "{tmp}/r"),
    _case("train-data-nonutf8-manifest", *TRAIN, "--data", "{badmanifest}", "--out", "{tmp}/r"),
    _case("train-out-exists", *TRAIN, "--data", "{data}", "--out", "{run}"),
    _case("train-out-is-file", *TRAIN, "--data", "{data}", "--out", "{afile}"),
    _case("train-resume-missing", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--resume"),
    _case("train-resume-empty", *TRAIN, "--data", "{data}", "--out", "{emptyrun}", "--resume"),
    _case("train-resume-nonutf8", *TRAIN, "--data", "{data}", "--out", "{badrunconfig}",
          "--resume"),  # fmt: skip
    _case("train-resume-evil-pickle", "train", "--quiet", "--data", "{data}", "--out",
          "{evilrun}", "--resume"),  # fmt: skip
    _case("train-negative-epochs", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--epochs",
          "-1"),  # fmt: skip
    _case("train-zero-batch", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--batch-size", "0"),
    _case("train-zero-layers", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--layers", "0"),
    _case("train-heads-width", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--heads", "3",
          "--width", "64"),  # fmt: skip
    _case("train-bad-device", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--device", "tpu9"),
    _case("train-bad-loss-on", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--loss-on", "all"),
    _case("train-lr-text", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--lr", "fast"),
    _case("train-lr-negative", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--lr", "-1"),
    _case("train-lr-inf", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--set",
          "learning_rate=inf",
          "--layers", "1", "--width", "16", "--heads", "1"),  # fmt: skip
    _case("train-dropout-high", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--dropout", "2"),
    _case("train-negative-seed", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--seed", "-1"),
    _case("train-missing-config", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--config",
          "{root}/none.toml"),  # fmt: skip
    _case("train-bad-toml", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--config",
          "{bad_toml}"),  # fmt: skip
    _case("train-nonutf8-config", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--config",
          "{nonutf8}"),  # fmt: skip
    _case("train-yaml-error", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--config",
          "{yaml_error}"),  # fmt: skip
    _case("train-set-unknown", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--set",
          "model.bogus=1"),  # fmt: skip
    _case("train-context-short", *TRAIN, "--data", "{data}", "--out", "{tmp}/r", "--context",
          "4"),  # fmt: skip
    _case("train-truncated-data", *TRAIN, "--data", "{truncated}", "--out", "{tmp}/r"),
    _case("train-edited-data", *TRAIN, "--data", "{edited}", "--out", "{tmp}/r",
          "--layers", "1", "--width", "16", "--heads", "1"),  # fmt: skip
    _case("train-no-data", "train", "--out", "{tmp}/r"),
    _case("train-readonly-out", *TRAIN, "--data", "{data}", "--out", "{tmp}/ro/r",
          root_ok=False),  # fmt: skip
]

EVALUATE = [
    _case("evaluate-missing-run", "evaluate", "{root}/nope", "--data", "{data}"),
    _case("evaluate-data-as-run", "evaluate", "{data}", "--data", "{data}"),
    _case("evaluate-empty-run", "evaluate", "{emptyrun}", "--data", "{data}"),
    _case("evaluate-missing-data", "evaluate", "{run}", "--data", "{root}/nope"),
    _case("evaluate-truncated-data", "evaluate", "{run}", "--data", "{truncated}", "--split",
          "train"),  # fmt: skip
    _case("evaluate-nonutf8-manifest", "evaluate", "{run}", "--data", "{badmanifest}"),
    _case("evaluate-bad-split", "evaluate", "{run}", "--data", "{data}", "--split", "dev"),
    _case("evaluate-bad-path", "evaluate", "{run}", "--data", "{data}", "--path", "slow"),
    _case("evaluate-predictions-missing-dir", "evaluate", "{run}", "--data", "{data}",
          "--predictions", "{tmp}/no/such/dir/p.jsonl"),  # fmt: skip
    _case("evaluate-predictions-is-dir", "evaluate", "{run}", "--data", "{data}",
          "--predictions", "{tmp}"),  # fmt: skip
    _case("evaluate-predictions-over-its-own-test-split", "evaluate", "{run}", "--data",
          "{data}", "--predictions", "{data}/test.jsonl", "--force"),  # fmt: skip
    _case("evaluate-predictions-into-the-run", "evaluate", "{run}", "--data", "{data}",
          "--predictions", "{run}/p.jsonl"),  # fmt: skip
    _case("evaluate-predictions-exists", "evaluate", "{run}", "--data", "{data}",
          "--predictions", "{afile}"),  # fmt: skip
    _case("evaluate-predictions-symlink", "evaluate", "{run}", "--data", "{data}",
          "--predictions", "{alink}", "--force"),  # fmt: skip
    _case("evaluate-bad-device", "evaluate", "{run}", "--data", "{data}", "--device", "tpu9"),
    _case("evaluate-nonutf8-model", "evaluate", "{badmodel}", "--data", "{data}"),
    _case("evaluate-evil-model", "evaluate", "{evilmodel}", "--data", "{data}"),
    _case("evaluate-no-data", "evaluate", "{run}"),
]

PREDICT = [
    _case("predict-missing-run", "predict", "{root}/nope", "--rule", "a -> b", "--input", "ab"),
    _case("predict-data-as-run", "predict", "{data}", "--rule", "a -> b", "--input", "ab"),
    _case("predict-bad-rule", "predict", "{run}", "--rule", "ab", "--input", "ab"),
    _case("predict-empty-rule", "predict", "{run}", "--rule", "", "--input", "ab"),
    _case("predict-foreign-letters", "predict", "{run}", "--rule", "a -> b", "--input", "xyz"),
    _case("predict-bad-device", "predict", "{run}", "--rule", "a -> b", "--input", "ab",
          "--device", "tpu9"),  # fmt: skip
    _case("predict-no-input", "predict", "{run}", "--rule", "a -> b"),
    _case("predict-nonutf8-model", "predict", "{badmodel}", "--rule", "a -> b", "--input", "a"),
    _case("predict-long-input", "predict", "{run}", "--rule", "a -> b", "--input", "a" * 9000),
]

FT = ["finetune", "--quiet", "--max-steps", "1"]
FINETUNE = [
    _case("finetune-no-base", *FT, "--data", "{data}", "--out", "{tmp}/f"),
    _case("finetune-missing-base", *FT, "--base", "{root}/nope", "--data", "{data}", "--out",
          "{tmp}/f"),  # fmt: skip
    _case("finetune-remote-code-base", *FT, "--base", "{auto_map_base}", "--data", "{data}",
          "--out", "{tmp}/f"),  # fmt: skip
    _case("finetune-pickle-only-base", *FT, "--base", "{picklebase}", "--data", "{data}",
          "--out", "{tmp}/f"),  # fmt: skip
    _case("finetune-data-as-base", *FT, "--base", "{data}", "--data", "{data}", "--out",
          "{tmp}/f"),  # fmt: skip
    _case("finetune-missing-data", *FT, "--base", "{run}/model", "--data", "{root}/nope",
          "--out", "{tmp}/f"),  # fmt: skip
    _case("finetune-out-exists", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{run}"),  # fmt: skip
    _case("finetune-resume-missing", *FT, "--data", "{data}", "--out", "{tmp}/f", "--resume"),
    _case("finetune-resume-nonutf8", *FT, "--data", "{data}", "--out", "{badrunconfig}",
          "--resume"),  # fmt: skip
    _case("finetune-lr-text", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--lr", "x"),  # fmt: skip
    _case("finetune-bad-method", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--method", "magic"),  # fmt: skip
    _case("finetune-zero-rank", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--lora-rank", "0"),  # fmt: skip
    _case("finetune-bad-preset", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--preset", "huge"),  # fmt: skip
    _case("finetune-bad-toml", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--config", "{bad_toml}"),  # fmt: skip
    _case("finetune-yaml-error", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--config", "{yaml_error}"),  # fmt: skip
    _case("finetune-bad-template", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--template", "nonsense"),  # fmt: skip
    _case("finetune-negative-seed", *FT, "--base", "{run}/model", "--data", "{data}", "--out",
          "{tmp}/f", "--seed", "-1"),  # fmt: skip
]

EVALUATE_FINETUNED = [
    _case("evalft-missing-run", "evaluate-finetuned", "{root}/nope", "--data", "{data}"),
    _case("evalft-data-as-run", "evaluate-finetuned", "{data}", "--data", "{data}"),
    _case("evalft-nonutf8-run", "evaluate-finetuned", "{badrunconfig}", "--data", "{data}"),
    _case("evalft-bad-split", "evaluate-finetuned", "{run}", "--data", "{data}", "--split", "x"),
    _case("evalft-predictions-missing-dir", "evaluate-finetuned", "{run}", "--data", "{data}",
          "--predictions", "{tmp}/no/dir/p.jsonl"),  # fmt: skip
    _case("evalft-no-data", "evaluate-finetuned", "{run}"),
]

MERGE = [
    _case("merge-missing-run", "merge", "{root}/nope", "--out", "{tmp}/m"),
    _case("merge-out-exists", "merge", "{run}", "--out", "{data}"),
    _case("merge-gpt-run", "merge", "{run}", "--out", "{tmp}/m"),
    _case("merge-nonutf8-run", "merge", "{badrunconfig}", "--out", "{tmp}/m"),
    _case("merge-data-as-run", "merge", "{data}", "--out", "{tmp}/m"),
    _case("merge-no-out", "merge", "{run}"),
]

PRETRAIN = [
    _case("pretrain-missing-corpus", "pretrain", "--quiet", "--corpus", "{root}/nope.txt",
          "--out", "{tmp}/p"),  # fmt: skip
    _case("pretrain-empty-corpus", "pretrain", "--quiet", "--corpus", "{empty_corpus}", "--out",
          "{tmp}/p"),  # fmt: skip
    _case("pretrain-out-exists", "pretrain", "--quiet", "--corpus", "{afile}", "--out", "{run}"),
    _case("pretrain-bad-toml", "pretrain", "--quiet", "--corpus", "{afile}", "--out", "{tmp}/p",
          "--config", "{bad_toml}"),  # fmt: skip
    _case("pretrain-nonutf8-config", "pretrain", "--quiet", "--corpus", "{afile}", "--out",
          "{tmp}/p", "--config", "{nonutf8}"),  # fmt: skip
    _case("pretrain-set-unknown", "pretrain", "--quiet", "--corpus", "{afile}", "--out",
          "{tmp}/p", "--set", "bogus=1"),  # fmt: skip
    _case("pretrain-set-negative-steps", "pretrain", "--quiet", "--corpus", "{afile}", "--out",
          "{tmp}/p", "--set", "max_steps=-1"),  # fmt: skip
    _case("pretrain-no-corpus", "pretrain", "--out", "{tmp}/p"),
    _case("pretrain-binary-corpus", "pretrain", "--quiet", "--corpus", "{binary_markov}",
          "--out", "{tmp}/p"),  # fmt: skip
]

SWEEP = []
for command in ("sweep", "reproduce"):
    run = [command, "--quiet", "--workdir", "{tmp}/w"]
    SWEEP += [
        _case(f"{command}-workdir-is-a-file", command, "--quiet", "--workdir", "{afile}",
              "{exp_ok}"),  # fmt: skip
        _case(f"{command}-fifo-as-experiment", *run, "{fifo}"),
        _case(f"{command}-missing-experiment", *run, "{root}/nope.toml"),
        _case(f"{command}-name-traversal", *run, "{exp_traversal}"),
        _case(f"{command}-name-space", *run, "{exp_space}"),
        _case(f"{command}-preset-name", *run, "{exp_preset_name}"),
        _case(f"{command}-jobs-zero", *run, "{exp_ok}", "--jobs", "0"),
        _case(f"{command}-jobs-negative", *run, "{exp_ok}", "--jobs", "-2"),
        _case(f"{command}-jobs-text", *run, "{exp_ok}", "--jobs", "two"),
        _case(f"{command}-bad-executor", *run, "{exp_ok}", "--executor", "condor"),
        _case(f"{command}-foreign-db", *run, "{exp_ok}", "--db", "{foreign}"),
        _case(f"{command}-text-db", *run, "{exp_ok}", "--db", "{afile}"),
        _case(f"{command}-future-db", *run, "{exp_ok}", "--db", "{future_schema}"),
        _case(f"{command}-unknown-preset", *run, "{exp_ok}", "--preset", "gpu"),
        _case(f"{command}-negative-seeds", *run, "{exp_seeds}"),
        _case(f"{command}-repeated-seeds", *run, "{exp_repeated_seeds}"),
        _case(f"{command}-empty-grid", *run, "{exp_empty_grid}"),
        _case(f"{command}-bad-factor", *run, "{exp_bad_factor}"),
        _case(f"{command}-unknown-key", *run, "{exp_unknown}"),
        _case(f"{command}-bad-method", *run, "{exp_method}"),
        _case(f"{command}-no-kind", *run, "{exp_no_kind}"),
        _case(f"{command}-unknown-kind", *run, "{exp_bad_kind}"),
        _case(f"{command}-bad-train", *run, "{exp_bad_train}"),
        _case(f"{command}-bad-preset-key", *run, "{exp_bad_preset}"),
        _case(f"{command}-negative-redraws", *run, "{exp_bad_redraws}"),
        _case(f"{command}-text-redraws", *run, "{exp_text_redraws}", "--preset", "cpu"),
        _case(f"{command}-impossible-grid", *run, "{exp_impossible}"),
        _case(f"{command}-nonutf8", *run, "{exp_nonutf8}"),
        _case(f"{command}-yaml-error", *run, "{exp_yaml}"),
        _case(f"{command}-adaptive-bad-setting", *run, "{exp_adaptive_bad}", "--adaptive"),
        _case(f"{command}-adaptive-no-range", *run, "{exp_adaptive_one_count}", "--adaptive"),
        _case(f"{command}-no-experiment", command),
    ]

REPORT = [
    _case("report-missing", "report", "{tmp}/missing/results.sqlite", "--out", "{tmp}/rep"),
    _case("report-foreign", "report", "{foreign}", "--out", "{tmp}/rep"),
    _case("report-text-file", "report", "{afile}", "--out", "{tmp}/rep"),
    _case("report-directory", "report", "{root}", "--out", "{tmp}/rep"),
    _case("report-empty", "report", "{empty_results}", "--out", "{tmp}/rep"),
    _case("report-invalid-metrics", "report", "{nan_metrics}", "--out", "{tmp}/rep"),
    _case("report-unreadable-metrics", "report", "{bad_json}", "--out", "{tmp}/rep"),
    _case("report-future-schema", "report", "{future_schema}", "--out", "{tmp}/rep"),
    _case("report-no-out", "report", "{empty_results}"),
    _case("report-out-under-file", "report", "{nan_metrics}", "--out", "{afile}/rep"),
    _case("report-traversal-name", "report", "{traversal_name}", "--out", "{tmp}/rep"),
]

EXPORT = [
    _case("export-no-format", "export"),
    _case("export-sft-missing-data", "export", "sft", "{root}/nope", "--out", "{tmp}/s.jsonl"),
    _case("export-sft-not-dataset", "export", "sft", "{precious}", "--out", "{tmp}/s.jsonl"),
    _case("export-sft-over-a-file", "export", "sft", "{data}", "--out", "{afile}"),
    _case("export-sft-through-symlink", "export", "sft", "{data}", "--out", "{alink}", "--force"),
    _case("export-sft-bad-split", "export", "sft", "{data}", "--out", "{tmp}/s.jsonl",
          "--split", "classic"),
    _case("export-sft-bad-template", "export", "sft", "{data}", "--out", "{tmp}/s.jsonl",
          "--template", "fancy"),
    _case("export-sft-missing-folder", "export", "sft", "{data}", "--out", "{tmp}/no/s.jsonl"),
    _case("export-sft-into-its-dataset", "export", "sft", "{data}", "--out",
          "{data}/train.jsonl", "--force"),
    _case("export-lm-eval-into-its-dataset", "export", "lm-eval", "{data}", "--out", "{data}",
          "--name", "train", "--force"),
    _case("export-lm-eval-traversal-name", "export", "lm-eval", "{data}", "--out", "{tmp}/t",
          "--name", "../evil"),
    _case("export-lm-eval-damaged-data", "export", "lm-eval", "{jsonmanifest}", "--out",
          "{tmp}/t"),
]
RESULTS = [
    _case("results-no-action", "results"),
    _case("results-export-missing", "results", "export", "{tmp}/missing.sqlite",
          "--out", "{tmp}/f.csv"),
    _case("results-export-foreign", "results", "export", "{foreign}", "--out", "{tmp}/f.csv"),
    _case("results-export-text-file", "results", "export", "{afile}", "--out", "{tmp}/f.csv"),
    _case("results-export-bad-format", "results", "export", "{empty_results}", "--format",
          "xlsx", "--out", "{tmp}/f.xlsx"),
    _case("results-export-over-a-file", "results", "export", "{empty_results}",
          "--out", "{afile}"),
    _case("results-export-unreadable-metrics", "results", "export", "{bad_json}",
          "--out", "{tmp}/f.csv"),
    _case("results-prune-missing", "results", "prune", "{tmp}/missing.sqlite"),
    _case("results-prune-foreign", "results", "prune", "{foreign}"),
    _case("results-prune-future-schema", "results", "prune", "{future_schema}"),
]
# fmt: on

CASES = (
    GLOBAL + APPLY + MARKOV + GENERATE + INSPECT + TRAIN_CASES + EVALUATE + PREDICT + FINETUNE
    + EVALUATE_FINETUNED + MERGE + PRETRAIN + SWEEP + REPORT + RESULTS + EXPORT
)  # fmt: skip


def test_the_table_covers_every_command_with_150_cases():
    commands = {case.values[0][0] for case in CASES if case.values[0]}
    expected = {"apply", "markov", "generate", "inspect", "train", "evaluate", "predict",
                "finetune", "evaluate-finetuned", "merge", "pretrain", "sweep", "reproduce",
                "report", "export"}  # fmt: skip
    assert expected <= commands
    assert len(CASES) >= 150


def snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file (and the set of directories) under the given roots."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            found[str(path)] = (
                hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            )
    return found


def _argv(template: list[str], world: dict[str, str], tmp: Path) -> list[str]:
    return [part.format(**world, tmp=tmp) if "{" in part else part for part in template]


@pytest.mark.parametrize("template", CASES)
def test_bad_input_is_refused_in_one_line_touching_nothing(
    template, world, tmp_path, capsys, monkeypatch
):
    case_dir = tmp_path / "case"
    (case_dir / "ro").mkdir(parents=True)
    (case_dir / "ro").chmod(0o555)
    monkeypatch.chdir(case_dir)
    argv = _argv(template, world, case_dir)
    before = snapshot(Path(world["root"]), case_dir)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code not in (0, None), captured
    assert len(lines) == 1 and lines[0].startswith("rewritelab: error: "), captured.err
    assert "Traceback" not in captured.err and len(lines[0]) <= 340
    assert snapshot(Path(world["root"]), case_dir) == before
    assert not Path("/tmp/rewritelab-pwned").exists()


@pytest.mark.parametrize(
    "argv, code",
    [
        (["apply", "ab", "abc"], 2),
        (["generate", "--out", "x", "--instructions", "ten"], 2),
        (["--debug"], 2),
    ],
)
def test_real_exit_codes_in_a_subprocess(tmp_path, argv, code):
    result = subprocess.run(
        [sys.executable, "-m", "rewritelab.cli.main", *argv], cwd=tmp_path, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )  # fmt: skip
    assert result.returncode == code
    assert len(result.stderr.splitlines()) == 1 and "usage" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_debug_flag_shows_the_traceback(world, capsys):
    with pytest.raises(Exception) as raised:
        main(["--debug", "inspect", world["truncated"]])
    assert "damaged" in str(raised.value)
    assert main(["inspect", world["truncated"]]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():
    """`rewritelab apply ... | head -c 10`: the reader leaves before the output (100 kB, more
    than a pipe holds) is written; the command stops quietly, as `cat` would."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    command = [sys.executable, "-m", "rewritelab.cli.main", "apply", "a -> b", "c" * 100_000]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = process.stdout.read(10)
    process.stdout.close()  # the reader goes away
    stderr = process.stderr.read().decode()
    assert first == b"c" * 10 and process.wait() == 141
    assert stderr == ""


@pytest.mark.parametrize(
    "template, words",
    [
        (["generate", "--out", "{tmp}/d", "--seed", "-1"], "seed must be an integer in [0, 2^63)"),
        (["merge", "{run}", "--out", "{tmp}/m"], "is a run trained from scratch"),
        (["generate", "--out", "{tmp}/d", "--set", 'alphabet="a"'], "has one letter"),
        (["generate", "--out", "{tmp}/d", "--noop-share", "nan"], "train.noop_share must be a"),
        (
            ["generate", "--out", "{tmp}/d", "--set", "test.instructions=1.5"],
            "test.instructions must be an integer, got 1.5",
        ),
        (
            ["generate", "--out", "{tmp}/d", "--set", "train.family=1"],
            "unknown config key train.family",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--lr", "nan"],
            "learning_rate must be a finite number, got nan",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--set", "batch_size=1.5"],
            "batch_size must be an integer, got 1.5",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--set", "model.layers='x'"],
            "model.layers must be an integer, got 'x'",
        ),
        (
            ["finetune", "--base", "{root}/nope", "--data", "{data}", "--out", "{tmp}/f"],
            "nope: no such directory",
        ),
    ],
)
def test_the_line_names_the_input_and_what_is_allowed(template, words, world, tmp_path, capsys):
    """Not an internal exception's text (`ValueError: expected non-negative integer`)."""
    assert main(_argv(template, world, tmp_path)) == 2
    err = capsys.readouterr().err
    assert words in err and "Error:" not in err, err
