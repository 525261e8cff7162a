"""Stacked seeds: each seed of a stack trains as its own run would, to fp32 rounding; it
checkpoints, resumes and stops at mastery on its own."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import TINY_DATA, tiny_config

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.generate import generate_dataset
from rewritelab.tasks.spec_files import spec_from_dict
from rewritelab.training.loop import Loop
from rewritelab.training.scratch import train
from rewritelab.training.stacked import SeedRun, StackedLoop, train_stacked

EXACT = ("step", "epoch", "lr", "train_tokens")
CLOSE = ("train_loss",)
ACCURACIES = ("seen_accuracy", "unseen_accuracy", "train_accuracy")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Four datasets of the same size but different rules and lengths (one per seed, as a
    sweep gives each seed its own draw); the first is easy (one instruction)."""
    root = tmp_path_factory.mktemp("stack-data")
    shapes = [(1, 300), (3, 100), (3, 100), (2, 150)]
    return [_data(root / f"d{i}", i, n, per) for i, (n, per) in enumerate(shapes)]


def _data(directory, i, instructions, per):
    train_split = {**TINY_DATA["train"], "instructions": instructions,
                   "examples_per_instruction": per}  # fmt: skip
    generate_dataset(spec_from_dict({**TINY_DATA, "seed": 10 + i, "train": train_split}), directory)
    return directory


def _log(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(stacked, alone):
    """The same evaluation points, tokens and learning rates; losses and weights to fp32
    rounding; accuracies within one example of a sample (rounding can flip a near-tie)."""
    stacked_log, alone_log = _log(stacked), _log(alone)
    assert [[p[k] for k in EXACT] for p in stacked_log] == [
        [p[k] for k in EXACT] for p in alone_log
    ]
    for s, a in zip(stacked_log, alone_log, strict=True):
        assert s["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4, abs=1e-6)
        for key in ACCURACIES:
            if key in a:
                assert s[key] == pytest.approx(a[key], abs=0.011), (key, s["step"])
    weights = _comparable(load_file(alone / "model" / "model.safetensors"))
    stacked_weights = _comparable(load_file(stacked / "model" / "model.safetensors"))
    assert weights.keys() == stacked_weights.keys()
    for name, tensor in weights.items():
        torch.testing.assert_close(stacked_weights[name], tensor, rtol=1e-5, atol=1e-5)


def _comparable(weights):
    """The weights without the key bias: softmax ignores a shift that is the same for every
    key, so its gradient is zero in exact arithmetic and pure rounding noise in fp32, which
    AdamW's normalisation turns into steps of the learning rate's size: any two runs that
    round differently (another thread count, too) disagree there by ~lr."""
    for name, tensor in weights.items():
        if name.endswith("attn.c_attn.bias"):
            width = tensor.shape[0] // 3
            weights[name] = torch.cat([tensor[:width], tensor[2 * width :]])
    return weights


def _alone(config, seed, data, out, resume=False):
    return train(replace(config, seed=seed), data, out, resume=resume, progress=False)


@pytest.mark.parametrize("seeds", [2, 4])
def test_stacked_seeds_train_as_their_own_runs(datasets, tmp_path, seeds):
    config = tiny_config(max_steps=60, eval_every=20, checkpoint_every=10, eval_at=[5])
    runs = [SeedRun(s, datasets[s], tmp_path / f"stacked-{s}") for s in range(seeds)]
    metrics = train_stacked(config, runs, progress=False)
    for s, run in enumerate(runs):
        alone = _alone(config, s, datasets[s], tmp_path / f"alone-{s}")
        assert metrics[s]["step"] == alone["step"] == 60
        assert [point["step"] for point in _log(run.out_dir)] == [5, 20, 40, 60]
        _assert_same_run(run.out_dir, tmp_path / f"alone-{s}")
        assert json.loads((run.out_dir / "run_config.json").read_text())["config"]["seed"] == s


def test_each_seed_stops_at_its_own_mastery(datasets, tmp_path):
    """The easy seed masters its training examples early and leaves the stack; the other goes
    on; both equal their own runs."""
    config = tiny_config(
        max_steps=200, eval_every=20, stop_at_train_accuracy=0.9, learning_rate=1e-3
    )  # at 3e-3 a loss spike amplifies rounding: the runs part after ~100 steps
    runs = [SeedRun(s, datasets[s], tmp_path / f"stacked-{s}") for s in (0, 1)]
    metrics = train_stacked(config, runs, progress=False)
    assert metrics[0]["step"] < metrics[1]["step"], metrics  # the test needs different stops
    for s, run in zip((0, 1), runs, strict=True):
        _alone(config, s, datasets[s], tmp_path / f"alone-{s}")
        _assert_same_run(run.out_dir, tmp_path / f"alone-{s}")


def test_a_killed_stack_resumes_each_seed_from_its_checkpoint(datasets, tmp_path, monkeypatch):
    """Killed mid-run, a stack resumes to the runs an uninterrupted stack gives; one seed
    resumed alone from a stacked checkpoint gives the same run too."""
    config = tiny_config(max_steps=60, eval_every=20, checkpoint_every=10)
    straight = [SeedRun(s, datasets[s], tmp_path / f"straight-{s}") for s in (0, 1, 2)]
    train_stacked(config, straight, progress=False)

    real_step, calls = StackedLoop.step, []

    def killed_at_step_25(*args, **kwargs):
        calls.append(1)
        if len(calls) == 25:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    resumed = [SeedRun(s, datasets[s], tmp_path / f"resumed-{s}") for s in (0, 1, 2)]
    monkeypatch.setattr(StackedLoop, "step", killed_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        train_stacked(config, resumed, progress=False)
    monkeypatch.setattr(StackedLoop, "step", real_step)
    for run in resumed:
        latest = run.out_dir / "checkpoints" / "latest"
        assert latest.read_text().strip() == "step-00000020"
    _alone(config, 2, datasets[2], resumed[2].out_dir, resume=True)
    train_stacked(config, resumed, resume=True, progress=False)  # seed 2 has ended: skipped
    for run, done in zip(resumed, straight, strict=True):
        _assert_same_run(run.out_dir, done.out_dir)


def _killed_after(monkeypatch, steps, action, *args):
    """Run `action(*args)` with `Loop.step` raising KeyboardInterrupt at its call `steps` + 1."""
    real_step, calls = Loop.step, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) > steps:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(Loop, "step", killed)
    with pytest.raises(KeyboardInterrupt):
        action(*args)
    monkeypatch.setattr(Loop, "step", real_step)


def test_seeds_at_different_checkpoints_join_the_stack_at_their_own_step(
    datasets, tmp_path, monkeypatch
):
    """Seeds killed alone at different steps resume as one stack: the one behind trains alone
    until the stack reaches the other's checkpoint, then both go on together, each as its own
    run resumed alone would."""
    config = tiny_config(max_steps=40, eval_every=20, checkpoint_every=10)
    for name in ("stacked", "alone"):
        for s, kill in ((0, 25), (1, 15)):
            _killed_after(
                monkeypatch, kill, _alone, config, s, datasets[s], tmp_path / f"{name}-{s}"
            )
    latest = [(tmp_path / f"stacked-{s}/checkpoints/latest").read_text().strip() for s in (0, 1)]
    assert latest == ["step-00000020", "step-00000010"]
    runs = [SeedRun(s, datasets[s], tmp_path / f"stacked-{s}") for s in (0, 1)]
    train_stacked(config, runs, resume=True, progress=False)
    for s in (0, 1):
        _alone(config, s, datasets[s], tmp_path / f"alone-{s}", resume=True)
        _assert_same_run(tmp_path / f"stacked-{s}", tmp_path / f"alone-{s}")


def test_bad_stacks_are_refused(datasets, tmp_path):
    config = tiny_config(max_steps=20)
    with pytest.raises(RewritelabError, match="at least one seed"):
        train_stacked(config, [], progress=False)
    twice = [SeedRun(0, datasets[0], tmp_path / "a"), SeedRun(0, datasets[1], tmp_path / "b")]
    with pytest.raises(RewritelabError, match="must differ"):
        train_stacked(config, twice, progress=False)
    same_dir = [SeedRun(0, datasets[0], tmp_path / "a"), SeedRun(1, datasets[1], tmp_path / "a")]
    with pytest.raises(RewritelabError, match="one run directory each"):
        train_stacked(config, same_dir, progress=False)
    with pytest.raises(RewritelabError, match="dropout"):
        train_stacked(tiny_config(max_steps=20, model={"layers": 1, "dropout": 0.1}),
                      [SeedRun(0, datasets[0], tmp_path / "c")], progress=False)  # fmt: skip
    smaller = _data(tmp_path / "small-data", 9, 2, 100)  # 200 examples: fewer steps an epoch
    uneven = [SeedRun(0, datasets[0], tmp_path / "d"), SeedRun(1, smaller, tmp_path / "e")]
    with pytest.raises(RewritelabError, match="same steps with the same evaluation points"):
        train_stacked(tiny_config(max_steps=20, eval_every=0), uneven, progress=False)
    assert not any((tmp_path / name).exists() for name in "abcde")
