"""The trainer: learning, batches as a pure function of step, exact resume, refusals."""

import json
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_run import make_data, tiny_config

from rewritelab.core.errors import RewritelabError
from rewritelab.model.batches import Batches, batches_per_epoch, epoch_batches
from rewritelab.model.encoding import encode_split
from rewritelab.model.tokenizer import Tokenizer
from rewritelab.training.loop import Loop, learning_rate, seed_dropout
from rewritelab.training.scratch import train
from rewritelab.training.scratch_config import (
    load_train_config,
    saved_train_config,
    train_config_from_dict,
)

# Metrics that do not depend on timing, compared between interrupted and uninterrupted runs.
DETERMINISTIC = ("step", "epoch", "train_loss", "lr", "seen_accuracy", "unseen_accuracy")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data") / "tiny")


@pytest.mark.slow
def test_tiny_model_learns_seen_instructions(tiny_run):
    data, run, metrics = tiny_run
    assert metrics["seen_accuracy"] >= 0.9
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1] == metrics
    assert logged[0]["train_loss"] > logged[-1]["train_loss"]
    assert (run / "model" / "model.safetensors").is_file()


def test_run_config_records_provenance(tiny_run):
    _, run, _ = tiny_run
    recorded = json.loads((run / "run_config.json").read_text())
    assert recorded["config"] == tiny_config(eval_every=200).to_dict()
    assert set(recorded["seeds"]) == {"model_init", "data_order", "dropout", "eval_subset"}
    assert len(set(recorded["seeds"].values())) == 4
    assert recorded["torch_version"] == torch.__version__
    assert recorded["device"] == "cpu"
    assert recorded["steps_per_epoch"] * 50 == recorded["total_steps"]
    for key in ("date", "rewritelab_version", "transformers_version", "parameters", "dataset"):
        assert recorded[key]


def test_epoch_visits_every_example_once_in_length_buckets():
    lengths = np.random.default_rng(0).integers(5, 40, size=103)
    batches = epoch_batches(lengths, batch_size=8, rng=np.random.default_rng(1), bucket_batches=4)
    assert len(batches) == batches_per_epoch(103, 8, 4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    unbucketed = epoch_batches(lengths, 8, np.random.default_rng(1), bucket_batches=1)
    assert spread < np.mean([np.ptp(lengths[b]) for b in unbucketed])


def test_batch_is_a_pure_function_of_seed_and_step(data):
    split = encode_split(data, "train", Tokenizer("abc"))
    config = tiny_config()

    def batches(seed):
        return Batches(split, seed, config.batch_size, config.bucket_batches, pad_id=0)

    first = batches(config.seed)
    steps = [0, 3, first.per_epoch + 2, 1, 2 * first.per_epoch]
    expected = {step: first(step) for step in steps}
    second = batches(config.seed)
    for step in reversed(steps):  # another instance, another visiting order
        (got_ids, got_targets), got_tokens = second(step)[0][0], second(step)[1]
        (ids, targets), tokens = expected[step][0][0], expected[step][1]
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_array_equal(got_targets, targets)
        assert got_tokens == tokens
    (ids, targets), tokens = expected[0][0][0], expected[0][1]
    assert tokens == int((ids != Tokenizer.pad_id).sum())
    assert not np.array_equal(first.indices(0), first.indices(first.per_epoch))
    assert not np.array_equal(first.indices(0), batches(config.seed + 1).indices(0))


def test_learning_rate_warms_up_then_decays_linearly():
    config = tiny_config(learning_rate=1e-3, warmup_steps=4)
    rates = [learning_rate(step, config, total_steps=12) for step in range(12)]
    np.testing.assert_allclose(rates[:4], [2.5e-4, 5e-4, 7.5e-4, 1e-3])
    np.testing.assert_allclose(rates[4:], [1e-3 * (12 - s) / 8 for s in range(4, 12)])


def _short_config():
    return tiny_config(
        max_steps=12,
        eval_every=4,
        batch_size=8,
        model={"layers": 2, "heads": 2, "width": 32, "context": 32, "dropout": 0.1},
    )


def _logged(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{key: json.loads(line)[key] for key in DETERMINISTIC} for line in lines]


def test_resume_after_a_kill_matches_an_uninterrupted_run(data, tmp_path, monkeypatch):
    config = _short_config()
    straight = train(config, data, tmp_path / "straight", progress=False)

    real_step, calls = Loop.step, []

    def killed_at_step_7(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:  # after the step-4 checkpoint, before the step-8 one
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(Loop, "step", killed_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(config, data, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(Loop, "step", real_step)
    assert (tmp_path / "resumed" / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    assert not (tmp_path / "resumed" / "model").exists()

    resumed = train(config, data, tmp_path / "resumed", resume=True, progress=False)
    assert {k: resumed[k] for k in DETERMINISTIC} == {k: straight[k] for k in DETERMINISTIC}
    assert _logged(tmp_path / "resumed") == _logged(tmp_path / "straight")
    weights = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed_weights = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert weights.keys() == resumed_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name


def test_logged_throughput_counts_training_steps_not_evaluations(data, tmp_path, monkeypatch):
    """A clock that moves 1 s a step and 100 s an evaluation: every window is 1 step/s."""
    now = [0.0]
    monkeypatch.setattr(
        "rewritelab.training.loop.time", SimpleNamespace(perf_counter=lambda: now[0])
    )
    real_step, real_evaluate = Loop.step, Loop.evaluate

    def step_taking_a_second(*args, **kwargs):
        now[0] += 1.0
        return real_step(*args, **kwargs)

    def evaluation_taking_100_seconds(*args, **kwargs):
        now[0] += 100.0
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(Loop, "step", step_taking_a_second)
    monkeypatch.setattr(Loop, "evaluate", evaluation_taking_100_seconds)
    train(_short_config(), data, tmp_path / "run", progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [m["step"] for m in logged] == [4, 8, 12]
    assert [m["steps_per_s"] for m in logged] == [1.0, 1.0, 1.0]


def test_dropout_seeding_on_a_cpu_gives_the_state_torch_manual_seed_gives():
    for seed in (0, 7, 2**62 + 12345):
        torch.manual_seed(seed)
        expected, expected_draw = torch.get_rng_state(), torch.rand(5)
        torch.manual_seed(seed + 1)  # elsewhere
        seed_dropout(torch.device("cpu"), seed)
        assert torch.equal(torch.get_rng_state(), expected)
        assert torch.equal(torch.rand(5), expected_draw)


def test_resuming_a_finished_run_returns_its_metrics(data, tmp_path):
    config = tiny_config(max_steps=2, eval_every=1, model={**_short_config().model.to_dict()})
    first = train(config, data, tmp_path / "run", progress=False)
    assert train(config, data, tmp_path / "run", resume=True, progress=False) == first


def test_existing_run_directory_is_never_overwritten(data, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("results")
    with pytest.raises(RewritelabError, match="already exists"):
        train(_short_config(), data, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "precious.txt").read_text() == "results"


def test_resume_refuses_missing_run_or_changed_config(data, tmp_path):
    with pytest.raises(RewritelabError, match="cannot resume"):
        train(_short_config(), data, tmp_path / "nothing", resume=True, progress=False)
    config = tiny_config(max_steps=2, eval_every=2, model=_short_config().model.to_dict())
    train(config, data, tmp_path / "run", progress=False)
    changed = tiny_config(
        max_steps=2, eval_every=2, model=_short_config().model.to_dict(), learning_rate=0.5
    )
    with pytest.raises(RewritelabError, match="learning_rate"):
        train(changed, data, tmp_path / "run", resume=True, progress=False)


def test_corrupt_checkpoint_is_refused_on_resume(data, tmp_path):
    config = tiny_config(max_steps=4, eval_every=2, model=_short_config().model.to_dict())
    train(config, data, tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000004"
    (checkpoint / "optimizer.pt").write_bytes(b"not a tensor archive")
    with pytest.raises(RewritelabError, match="corrupt checkpoint"):
        train(config, data, tmp_path / "run", resume=True, progress=False)
    (checkpoint / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RewritelabError, match="cannot load"):
        train(config, data, tmp_path / "run", resume=True, progress=False)


def test_missing_data_is_refused(data, tmp_path):
    with pytest.raises(RewritelabError, match="does not exist"):
        train(_short_config(), tmp_path / "no_data", tmp_path / "run", progress=False)
    broken = make_data(tmp_path / "broken")
    (broken / "seen_test.jsonl").unlink()
    with pytest.raises(RewritelabError, match="seen_test.jsonl"):
        train(_short_config(), broken, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_examples_longer_than_the_context_are_refused(data, tmp_path):
    config = tiny_config(max_steps=2, model={"layers": 1, "heads": 1, "width": 8, "context": 6})
    with pytest.raises(RewritelabError, match="context"):
        train(config, data, tmp_path / "run", progress=False)


def test_config_from_file_and_overrides(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('epochs = 3\nloss_on = "sequence"\n[model]\nlayers = 2\nwidth = 64\n')
    config = load_train_config(path, ["model.heads=2", "learning_rate=0.01"])
    assert (config.epochs, config.loss_on, config.learning_rate) == (3, "sequence", 0.01)
    assert (config.model.layers, config.model.width, config.model.heads) == (2, 64, 2)
    assert config.model.context == 256


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"epoch": 3}, "unknown"),
        ({"model": {"depth": 3}}, "unknown setting.*model.depth"),
        ({"learning_rate": float("inf")}, "finite"),
        ({"weight_decay": float("nan")}, "finite"),
        ({"batch_size": "big"}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"loss_on": "prompt"}, "loss_on"),
        ({"bf16": 1}, "bf16"),
        ({"stop_at_train_accuracy": 1.5}, "stop_at_train_accuracy"),
        ({"stop_at_train_accuracy": -0.1}, "stop_at_train_accuracy"),
        ({"eval_at": [10, 0]}, "eval_at"),
        ({"eval_at": 10}, "eval_at"),
        ({"eval_at": [2.5]}, "eval_at"),
    ],
)
def test_bad_train_configs_are_refused(values, problem):
    with pytest.raises(RewritelabError, match=problem):
        train_config_from_dict(values)


def test_saved_config_resumes_with_the_same_settings(data, tmp_path):
    config = tiny_config(max_steps=2, eval_every=2, model=_short_config().model.to_dict())
    train(config, data, tmp_path / "run", progress=False)
    assert saved_train_config(tmp_path / "run") == config
    assert saved_train_config(tmp_path / "run", ["device=cpu"]).device == "cpu"
    with pytest.raises(RewritelabError, match="not a run directory"):
        saved_train_config(tmp_path / "elsewhere")


def test_padded_vocabulary_through_the_cli(data, tmp_path, capsys):
    """`model.vocab_size` pads the vocabulary with unused ids: `train` saves a model of that
    many rows, and `evaluate` (both paths) and `predict` read answers that may name those ids
    (a barely trained model over 40 rows, 9 of them letters and specials, mostly does)."""
    from rewritelab.cli.main import main

    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), "--set", "model.vocab_size=40",
            "--max-steps", "2", "--eval-every", "2", "--layers", "1", "--heads", "2",
            "--width", "16", "--context", "32", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((run / "model" / "config.json").read_text())["vocab_size"] == 40
    assert json.loads((run / "run_config.json").read_text())["config"]["model"]["vocab_size"] == 40
    capsys.readouterr()
    printed = {}
    for path in ("fast", "generate"):
        assert main(["evaluate", str(run), "--data", str(data), "--path", path]) == 0
        printed[path] = capsys.readouterr().out.splitlines()[0].split("accuracy ")[1].split()[0]
    assert printed["fast"] == printed["generate"]
    assert main(["predict", str(run), "--rule", "a -> b", "--input", "cac"]) == 0
    out = capsys.readouterr().out
    assert "exact: cbc" in out and "\ufffd" in out and out.rstrip().endswith("wrong")


def _log(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_stops_at_the_first_evaluation_that_masters_its_training_examples(
    data, tmp_path, capsys
):
    """`stop_at_train_accuracy` (here through the CLI) ends a run at the first evaluation
    point whose accuracy on its training examples reaches the threshold: the run equals one
    with a higher threshold, cut there, and the logged accuracy is the exact match that
    `evaluate` (the generate path) finds on the training split."""
    from rewritelab.cli.main import main

    def train_cli(run, threshold):
        argv = ["train", "--data", str(data), "--out", str(run), "--max-steps", "240",
                "--eval-every", "20", "--set", f"stop_at_train_accuracy={threshold}",
                "--set", "warmup_steps=10",
                "--layers", "2", "--heads", "4", "--width", "64", "--context", "32",
                "--batch-size", "16", "--lr", "3e-3", "--quiet"]  # fmt: skip
        assert main(argv) == 0
        return _log(run)

    longer = train_cli(tmp_path / "longer", 1.0)
    accuracies = [line["train_accuracy"] for line in longer]
    stop = int(np.argmax(accuracies[:-1]))  # every point before it is below its accuracy
    assert stop > 0 and len(accuracies) > 2, accuracies  # the test needs a rise to cut
    stopped = train_cli(tmp_path / "stopped", accuracies[stop])
    assert [{k: line[k] for k in DETERMINISTIC} for line in stopped] == [
        {k: line[k] for k in DETERMINISTIC} for line in longer[: stop + 1]
    ]
    assert stopped[-1]["step"] == 20 * (stop + 1) < 240
    capsys.readouterr()
    argv = ["evaluate", str(tmp_path / "stopped"), "--data", str(data), "--split", "train",
            "--path", "generate"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()[0].split("accuracy ")[1].split()[0]
    assert float(printed) == pytest.approx(stopped[-1]["train_accuracy"], abs=5e-4)


def test_a_run_killed_after_mastering_resumes_to_its_end_without_training(
    data, tmp_path, monkeypatch
):
    """Killed between the evaluation that stops it and its final weights, a run resumes to
    those weights without another step; resumed once finished, it returns its metrics."""
    from rewritelab.training.runs import RunDirectory

    config = tiny_config(max_steps=240, eval_every=20, stop_at_train_accuracy=0.5)
    straight = train(config, data, tmp_path / "straight", progress=False)
    assert straight["step"] < 240 and straight["train_accuracy"] >= 0.5

    real_staged = RunDirectory.staged

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    @contextmanager
    def killed_at_the_final_weights(run, relative, metrics=None):
        if relative == "model":
            raise KeyboardInterrupt
        with real_staged(run, relative, metrics) as partial:
            yield partial

    monkeypatch.setattr(RunDirectory, "staged", killed_at_the_final_weights)
    with pytest.raises(KeyboardInterrupt):
        train(config, data, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(RunDirectory, "staged", real_staged)
    assert not (tmp_path / "resumed" / "model").exists()
    assert _log(tmp_path / "resumed")[-1]["step"] == straight["step"]

    monkeypatch.setattr(Loop, "step", killed)  # resuming must not train
    resumed = train(config, data, tmp_path / "resumed", resume=True, progress=False)
    assert {k: resumed[k] for k in DETERMINISTIC} == {k: straight[k] for k in DETERMINISTIC}
    weights = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed_weights = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name
    assert train(config, data, tmp_path / "resumed", resume=True, progress=False) == resumed


def test_a_run_recorded_before_a_setting_existed_resumes_at_its_default(data, tmp_path):
    """A run started by an older rewritelab has no record of a setting added since; it ran
    as that setting's default does, so a resume with the default is the same config."""
    config = tiny_config(max_steps=4, eval_every=2, model=_short_config().model.to_dict())
    train(config, data, tmp_path / "run", progress=False)
    record_path = tmp_path / "run" / "run_config.json"
    record = json.loads(record_path.read_text())
    del record["config"]["stop_at_train_accuracy"]
    record_path.write_text(json.dumps(record))
    assert train(config, data, tmp_path / "run", resume=True, progress=False)["step"] == 4
    stopping = tiny_config(
        max_steps=4, eval_every=2, model=_short_config().model.to_dict(), stop_at_train_accuracy=0.9
    )
    with pytest.raises(RewritelabError, match="stop_at_train_accuracy"):
        train(stopping, data, tmp_path / "run", resume=True, progress=False)


def test_extra_evaluation_steps_are_logged_beside_the_regular_ones(data, tmp_path):
    """`eval_at` adds evaluation points (and their checkpoints) to those `eval_every` gives,
    through the CLI's `--set`; the run's weights are those of a run without them."""
    from rewritelab.cli.main import main

    argv = ["train", "--data", str(data), "--max-steps", "30", "--eval-every", "20",
            "--layers", "2", "--heads", "4", "--width", "64", "--context", "32",
            "--batch-size", "16", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "extra"), "--set", "eval_at=[3,7]"]) == 0
    assert main([*argv, "--out", str(tmp_path / "plain")]) == 0
    assert [line["step"] for line in _log(tmp_path / "extra")] == [3, 7, 20, 30]
    assert [line["step"] for line in _log(tmp_path / "plain")] == [20, 30]
    for name, tensor in load_file(tmp_path / "plain" / "model" / "model.safetensors").items():
        extra = load_file(tmp_path / "extra" / "model" / "model.safetensors")[name]
        assert torch.equal(tensor, extra), name
