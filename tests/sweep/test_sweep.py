"""Sweeps: grid expansion, presets, the results database, caching, failures, resume, Ray, report."""

from __future__ import annotations

import json
import sqlite3

import pytest
from tiny_sweep import TINY

from rewritelab.analysis.report import (
    aggregate,
    mean_and_stderr,
    plot_curves,
    write_report,
    x_axis_factor,
)
from rewritelab.core.errors import RewritelabError
from rewritelab.sweep import ResultsDatabase, load_experiment, run_sweep
from rewritelab.sweep import runner as runner_module


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_grid_expansion_seeds_and_presets(tiny):
    experiment = load_experiment(tiny)
    points = experiment.points()
    assert [(p.factors["dataset.train.instructions"], p.seed) for p in points] == [
        (2, 0), (2, 1), (8, 0), (8, 1),
    ]  # fmt: skip
    assert points[0].dataset["train"]["instructions"] == 2 and points[0].dataset["seed"] == 0
    assert points[1].train["seed"] == 1
    assert len({p.point_id for p in points}) == 4
    assert points[0].dataset_id != points[1].dataset_id  # the seed changes the data
    small = load_experiment(tiny, "small").points()
    assert [(p.factors["dataset.train.instructions"], p.seed) for p in small] == [(3, 5)]
    assert small[0].train["model"]["width"] == 16  # the base survives the deep merge


def test_a_preset_extends_another_and_resolves_to_the_same_points_as_a_copy(tmp_path):
    small = "[presets.small.train]\nbatch_size = 16\n"
    copy = "[presets.copy]\nseeds = [5]\n[presets.copy.train]\nbatch_size = 16\nepochs = 3\n"
    copy += '[presets.copy.grid]\n"dataset.train.instructions" = [3]\n'
    longer = '[presets.longer]\nextends = "small"\n[presets.longer.train]\nepochs = 3\n'
    path = tmp_path / "t.toml"
    path.write_text(TINY + small + copy + longer)
    extended, written_out = (load_experiment(path, name).points() for name in ("longer", "copy"))
    assert [p.point_id for p in extended] == [p.point_id for p in written_out]
    assert extended[0].train["batch_size"] == 16 and extended[0].train["epochs"] == 3
    assert load_experiment(path, "small").points()[0].train["epochs"] == 1  # the parent unchanged
    for parent, message in (('"gpu"', "extends 'gpu', which is not a preset"),
                            ("[1]", "extends \\[1\\], which is not a preset"),
                            ('"longer"', "extend each other")):  # fmt: skip
        cyclic = TINY.replace("[presets.small]\n", f"[presets.small]\nextends = {parent}\n")
        path.write_text(cyclic + small + longer)
        with pytest.raises(RewritelabError, match=message):
            load_experiment(path, "longer")


def test_table_valued_factors_and_bad_experiments(tmp_path, tiny):
    text = TINY.replace(
        '"dataset.train.instructions" = [2, 8]',
        'spread = [{label = "uniform", "dataset.train.spread" = "uniform"},'
        ' {label = "0.5", "dataset.train.spread" = "power", "dataset.train.alpha" = 0.5}]',
    )
    path = tmp_path / "t.toml"
    path.write_text(text)
    points = load_experiment(path).points()
    assert [p.factors["spread"] for p in points] == ["uniform", "uniform", "0.5", "0.5"]
    assert points[2].dataset["train"]["alpha"] == 0.5
    with pytest.raises(RewritelabError, match="no preset 'gpu'"):
        load_experiment(tiny, "gpu")
    path.write_text(TINY.replace("[2, 8]", "[2, 100000]"))
    with pytest.raises(RewritelabError, match="grid point"):
        load_experiment(path)  # 100000 rules cannot exist over 4 letters and lengths 1-2
    path.write_text("nonsense = 1\n" + TINY)
    with pytest.raises(RewritelabError, match="unknown experiment key 'nonsense'"):
        load_experiment(path)


def test_database_schema_and_plan(tmp_path, tiny):
    database = ResultsDatabase(tmp_path / "r.sqlite")
    points = load_experiment(tiny).points()
    database.plan(points)
    database.plan(points)  # planning twice adds nothing
    rows = database.rows()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"pending"}
    assert rows[0]["factors"] == {"dataset.train.instructions": 2}
    columns = {
        c[1] for c in sqlite3.connect(tmp_path / "r.sqlite").execute("PRAGMA table_info(points)")
    }
    assert {"point_id", "config", "metrics", "unseen_accuracy", "device", "versions"} <= columns
    database.close()
    (tmp_path / "bad.sqlite").write_text("not a database")
    with pytest.raises(RewritelabError, match="not a usable results database"):
        ResultsDatabase(tmp_path / "bad.sqlite")


def _fake_outcome(accuracy: float) -> dict:
    return {"metrics": {"unseen_accuracy": accuracy, "seen_accuracy": 1.0}, "elapsed_s": 1.0,
            "device": "cpu", "versions": {"rewritelab": "test"}}  # fmt: skip


def test_aggregation_statistics_and_transition():
    assert mean_and_stderr([0.2, 0.4]) == pytest.approx((0.3, 0.1))
    rows = [
        {"status": "done", "factors": {"dataset.train.instructions": i}, "elapsed_s": 1,
         "metrics": {"unseen_accuracy": a, "seen_accuracy": 1.0}}
        for i, a in [(10, 0.0), (10, 0.1), (100, 0.2), (100, 0.4), (1000, 0.9), (1000, 1.0)]
    ] + [{"status": "failed", "factors": {"dataset.train.instructions": 5}}]  # fmt: skip
    entries = aggregate(rows)
    assert [e["factors"]["dataset.train.instructions"] for e in entries] == [10, 100, 1000]
    assert entries[1]["unseen_accuracy"] == pytest.approx(0.3)
    assert entries[1]["seeds"] == 2
    figure, axis = plot_curves(entries, "dataset.train.instructions", "t", ("unseen_accuracy",))
    line = axis.lines[0]
    assert list(line.get_xdata()) == [10, 100, 1000]
    assert list(line.get_ydata()) == pytest.approx([0.05, 0.3, 0.95])


def test_sweep_runs_caches_records_and_reports(tmp_path, tiny):
    experiment = load_experiment(tiny)
    database = ResultsDatabase(tmp_path / "results.sqlite")
    counts = run_sweep(experiment, database, tmp_path / "work", progress=False)
    assert counts == {"skipped": 0, "done": 4, "failed": 0, "failed_earlier": 0, "busy": 0}
    rows = database.rows()
    assert {r["status"] for r in rows} == {"done"}
    for row in rows:
        assert 0 <= row["unseen_accuracy"] <= 1 and 0 <= row["seen_accuracy"] <= 1
        assert row["metrics"]["unseen_examples"] == 20
        assert row["device"] == "cpu" and "torch" in row["versions"]
    assert len(list((tmp_path / "work" / "datasets").iterdir())) == 4  # one per (I, seed)
    again = run_sweep(experiment, database, tmp_path / "work", progress=False)
    assert again == {"skipped": 4, "done": 0, "failed": 0, "failed_earlier": 0, "busy": 0}
    report = write_report(tmp_path / "results.sqlite", tmp_path / "report")
    text = report.read_text()
    assert "tiny" in text and "| instructions |" in text
    assert (tmp_path / "report" / "tiny-base.png").stat().st_size > 0
    assert (tmp_path / "report" / "tiny-base.pdf").stat().st_size > 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    by_i = {e["factors"]["dataset.train.instructions"]: e for e in summary["tiny/base"]}
    expected = (
        sum(r["unseen_accuracy"] for r in rows if r["factors"]["dataset.train.instructions"] == 8)
        / 2
    )
    assert by_i[8]["unseen_accuracy"] == pytest.approx(expected)


def test_a_plateaued_run_is_redrawn_and_every_draw_is_recorded(tmp_path, tiny, monkeypatch):
    from rewritelab.core.seeds import seed_of
    from rewritelab.model.gpt import RUN_CONFIG

    plain = load_experiment(tiny, "small").points()[0]
    redrawing = tiny.parent / "redraw.toml"
    redrawing.write_text("redraw_unmastered = 1\n" + TINY)
    point = load_experiment(redrawing, "small").points()[0]
    assert "redraw_unmastered" not in plain.identity and point.point_id != plain.point_id
    first = runner_module.run_point(plain, tmp_path / "plain")["metrics"]
    assert first["seen_accuracy"] < 0.95  # one epoch of a tiny model masters nothing
    outcome = runner_module.run_point(point, tmp_path / "work")
    metrics = outcome["metrics"]
    assert [d["seen_accuracy"] for d in metrics["redrawn"]] == [first["seen_accuracy"]]
    assert metrics["redrawn"][0]["unseen_accuracy"] == first["unseen_accuracy"]
    assert metrics["train_seed"] == seed_of(5, "redraw", 1)
    assert outcome["run_dir"].endswith(f"{point.point_id}-redraw1")
    recorded = json.loads((tmp_path / "work" / "runs" / f"{point.point_id}-redraw1" / RUN_CONFIG)
                          .read_text())  # fmt: skip
    assert recorded["config"]["seed"] == seed_of(5, "redraw", 1)
    again = runner_module.run_point(point, tmp_path / "work")["metrics"]  # both draws resumed
    assert again == metrics
    database = ResultsDatabase(tmp_path / "r.sqlite")
    database.plan([point])
    database.record(point.point_id, outcome)
    database.close()
    text = write_report(tmp_path / "r.sqlite", tmp_path / "report").read_text()
    seen = f"{first['seen_accuracy']:.2f} → {metrics['seen_accuracy']:.2f}"
    assert "mastered (seen ≥ 0.95): 0 of 1 runs" in text
    assert "- redrawn: 1 run(s)" in text and f"instructions=3 seed 5 (seen {seen})" in text
    assert first["final_train"]["train_loss"] >= 0.05  # unmastered and unfit: the plateau
    monkeypatch.setattr("rewritelab.core.paper.PLATEAU_LOSS", 100.0)  # now it counts as fit
    kept = runner_module.run_point(point, tmp_path / "fit")
    assert "redrawn" not in kept["metrics"] and kept["run_dir"].endswith(point.point_id)
    assert kept["metrics"]["seen_accuracy"] == first["seen_accuracy"]


@pytest.mark.parametrize(
    "seen, loss, plateau",
    [(0.30, 0.22, True), (0.70, 0.099, True), (0.94, 0.05, True), (0.95, 0.50, False),
     (0.82, 0.002, False), (0.44, 0.017, False), (0.954, 0.033, False), (0.30, None, False)],
)  # fmt: skip
def test_only_a_run_that_never_fit_its_examples_counts_as_on_the_plateau(seen, loss, plateau):
    final = {} if loss is None else {"train_loss": loss}
    assert runner_module.on_plateau({"seen_accuracy": seen, "final_train": final}) is plateau


def test_failing_point_is_recorded_and_the_others_go_on(tmp_path, tiny):
    text = TINY.replace('"dataset.train.instructions" = [2, 8]', '"train.model.context" = [8, 24]')
    path = tmp_path / "fails.toml"
    path.write_text(text)
    database = ResultsDatabase(tmp_path / "r.sqlite")
    counts = run_sweep(load_experiment(path), database, tmp_path / "work", progress=False)
    assert counts["failed"] == 2 and counts["done"] == 2
    failed = [r for r in database.rows() if r["status"] == "failed"]
    assert {r["factors"]["train.model.context"] for r in failed} == {8}
    assert all("context" in r["error"] for r in failed)


def test_killed_sweep_resumes_where_it_stopped(tmp_path, tiny, monkeypatch):
    experiment = load_experiment(tiny)
    database = ResultsDatabase(tmp_path / "r.sqlite")
    real_run_point, calls = runner_module.run_point, []

    def dies_on_second_point(point, workdir):
        calls.append(point.point_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the sweep is killed while running its second point
        return real_run_point(point, workdir)

    monkeypatch.setattr(runner_module, "run_point", dies_on_second_point)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(experiment, database, tmp_path / "work", progress=False)
    statuses = [r["status"] for r in database.rows()]
    assert statuses.count("done") == 1 and statuses.count("pending") == 3  # claims handed back
    monkeypatch.setattr(runner_module, "run_point", real_run_point)
    counts = run_sweep(experiment, database, tmp_path / "work", progress=False)
    assert counts == {"skipped": 1, "done": 3, "failed": 0, "failed_earlier": 0, "busy": 0}
    attempts = {r["point_id"]: r["attempts"] for r in database.rows()}
    assert attempts[calls[0]] == 1  # the finished point was not run again


@pytest.mark.slow
def test_ray_executor_runs_points_into_the_same_database(tmp_path, tiny):
    pytest.importorskip("ray")
    experiment = load_experiment(tiny, "small")
    database = ResultsDatabase(tmp_path / "r.sqlite")
    counts = run_sweep(experiment, database, tmp_path / "work", executor="ray", progress=False)
    assert counts == {"skipped": 0, "done": 1, "failed": 0, "failed_earlier": 0, "busy": 0}
    assert database.rows()[0]["status"] == "done"


def test_finetune_points_run_through_the_same_runner(tmp_path, tiny):
    """A `method = "finetune"` experiment fine-tunes a base model per point (here an untrained
    locally 'pretrained' GPT, written by `pretrain` with zero steps)."""
    from rewritelab.training.pretrain import pretrain, pretrain_config_from_dict

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcd dcba abba cddc\n" * 500)
    base = tmp_path / "base"
    config = {"max_steps": 0, "model": {"layers": 1, "heads": 1, "width": 16, "context": 32}}
    pretrain([corpus], base, pretrain_config_from_dict(config), progress=False)
    text = 'method = "finetune"\n' + TINY.split("[train]")[0]
    text += f'[train]\nbase = "{base}"\nmethod = "full"\nmax_steps = 5\nbatch_size = 16\n'
    text += 'eval_examples = 0\ndevice = "cpu"\n[grid]\n"dataset.train.instructions" = [3]\n'
    path = tmp_path / "ft.toml"
    path.write_text(text.replace("seeds = 2", "seeds = 1"))
    experiment = load_experiment(path)
    assert experiment.points()[0].method == "finetune"
    database = ResultsDatabase(tmp_path / "r.sqlite")
    counts = run_sweep(experiment, database, tmp_path / "work", progress=False)
    expected = {"skipped": 0, "done": 1, "failed": 0, "failed_earlier": 0, "busy": 0}
    assert counts == expected, database.rows()[0]["error"]
    row = database.rows()[0]
    assert 0 <= row["unseen_accuracy"] <= 1 and row["metrics"]["unseen_examples"] == 20
    path.write_text(text.replace(f'base = "{base}"\n', ""))
    with pytest.raises(RewritelabError, match="needs train.base"):
        load_experiment(path)


STARTS = (
    '[grid]\n"dataset.train.instructions" = [3, 5]\ninit = [\n'
    '    { label = "scratch", "train.reinitialize" = true },\n'
    '    { label = "pretrained", "train.reinitialize" = false },\n]\n'
)


def _starts_experiment(tmp_path, base, extra: str = ""):
    """An experiment file: fine-tuning from fresh weights of `base`'s shape and from its
    weights, at two instruction counts, one seed."""
    text = 'method = "finetune"\n' + TINY.split("[train]")[0].replace("seeds = 2", "seeds = 1")
    text += extra + f'[train]\nbase = "{base}"\nmethod = "full"\nmax_steps = 4\n'
    text += 'batch_size = 16\neval_examples = 0\ndevice = "cpu"\n' + STARTS
    path = tmp_path / "starts.toml"
    path.write_text(text)
    return path


def test_points_that_need_no_base_weights_run_while_the_base_trains(tmp_path, monkeypatch):
    """With a base still training (a future), the sweep runs the fresh-weight points first,
    and the others only once the base is done; a base that fails stops the sweep there."""
    from concurrent.futures import Future

    experiment = load_experiment(_starts_experiment(tmp_path, tmp_path / "base"))
    scratch = [p for p in experiment.points() if p.train["reinitialize"]]
    assert len(scratch) == 2 and experiment.points()[0] in scratch  # grid order: mixed
    for fails in (False, True):
        base, ran = Future(), []

        def fake_point(point, workdir, base=base, ran=ran, fails=fails):
            ran.append((point.factors["init"], base.done()))
            if len(ran) == len(scratch):  # the base is done as the last fresh point ends
                base.set_exception(RewritelabError("corpus gone")) if fails else base.set_result(1)
            return {"metrics": {"unseen_accuracy": 0.5, "seen_accuracy": 1.0}}

        monkeypatch.setattr(runner_module, "run_point", fake_point)
        database = ResultsDatabase(tmp_path / f"r{fails}.sqlite")
        if fails:
            with pytest.raises(RewritelabError, match="corpus gone"):
                run_sweep(experiment, database, tmp_path / "w", progress=False, base=base)
            assert ran == [("scratch", False), ("scratch", False)]
            statuses = {r["factors"]["init"] + r["status"] for r in database.rows()}
            assert statuses == {"scratchdone", "pretrainedpending"}  # resumable
        else:
            counts = run_sweep(experiment, database, tmp_path / "w", progress=False, base=base)
            assert counts["done"] == 4
            assert ran == [("scratch", False)] * 2 + [("pretrained", True)] * 2


def test_a_sweep_pretrains_its_base_beside_the_fresh_weight_points(tmp_path, capsys):
    """Through the CLI: the base trains in a worker while the fresh-weight points run on its
    architecture; their results are those of the same points run on the finished base. A
    base that cannot be made stops the sweep with its error in one line."""
    from rewritelab.cli.main import main

    corpus, base = tmp_path / "corpus.txt", tmp_path / "base"
    corpus.write_text("abcd dcba abba cddc\n" * 200)
    table = f'[pretrain]\ncorpus = ["{corpus}"]\nout = "{base}"\n[pretrain.config]\n'
    table += "max_steps = 40\nbatch_size = 4\neval_every = 20\nvalidation_windows = 2\n"
    table += "threads = 1\nmodel = { layers = 1, heads = 1, width = 16, context = 32 }\n"
    path = _starts_experiment(tmp_path, base, table)
    work = ["--quiet", "--jobs", "1"]
    assert main(["sweep", str(path), "--workdir", str(tmp_path / "beside"), *work]) == 0
    out = capsys.readouterr().out
    assert f"pretraining the base model into {base} beside the 2 points" in out
    assert (base / "model" / "model.safetensors").is_file()
    assert main(["sweep", str(path), "--workdir", str(tmp_path / "after"), *work]) == 0
    assert "pretraining" not in capsys.readouterr().out  # the finished base, checked
    beside, after = (str(tmp_path / w / "results.sqlite") for w in ("beside", "after"))
    assert [r["status"] for r in ResultsDatabase(beside).rows()] == ["done"] * 4
    assert main(["compare", beside, after]) == 0  # run for run, the same metrics
    gone, elsewhere = tmp_path / "gone.txt", tmp_path / "base2"
    text = path.read_text().replace(str(corpus), str(gone))
    path.write_text(text.replace(f'"{base}"', f'"{elsewhere}"'))
    assert main(["sweep", str(path), "--workdir", str(tmp_path / "failed"), *work]) == 2
    err = capsys.readouterr().err  # the worker's error, in one line
    assert f"corpus path {gone} does not exist" in err and len(err.strip().splitlines()) == 1


def test_a_base_left_to_the_machines_thread_count_trains_before_the_sweep(tmp_path, capsys):
    """A base's weights depend on its thread count, which a worker beside the sweep would
    change: a base whose config leaves it to the machine (`threads = 0`) is made first, in the
    sweep's own process, even when points could run beside it."""
    from rewritelab.sweep.runner import base_of

    corpus, base = tmp_path / "corpus.txt", tmp_path / "base"
    corpus.write_text("abcd dcba abba cddc\n" * 200)
    table = f'[pretrain]\ncorpus = ["{corpus}"]\nout = "{base}"\n[pretrain.config]\n'
    table += "max_steps = 4\nbatch_size = 4\nvalidation_windows = 2\n"
    table += "model = { layers = 1, heads = 1, width = 16, context = 32 }\n"
    experiment = load_experiment(_starts_experiment(tmp_path, base, table))
    with base_of(experiment, progress=False) as made:
        assert made is None and (base / "model" / "model.safetensors").is_file()
    printed = capsys.readouterr().out
    assert f"pretraining the base model into {base}" in printed and "beside" not in printed


def test_labelled_factors_keep_the_grid_order_and_plot_categorically():
    labels = ["I=500", "I=1000", "I=9000 halved"]  # alphabetical order would differ
    rows = [
        {"status": "done", "factors": {"data": label}, "elapsed_s": 0,
         "metrics": {"unseen_accuracy": accuracy, "seen_accuracy": 1.0}}
        for label, accuracy in zip(labels, [0.1, 0.2, 0.3], strict=True)
    ]  # fmt: skip
    entries = aggregate(rows)
    assert [e["factors"]["data"] for e in entries] == labels
    assert x_axis_factor(entries) == "data"
    _, axis = plot_curves(entries, "data", "t", ("unseen_accuracy",))
    assert list(axis.lines[0].get_ydata()) == pytest.approx([0.1, 0.2, 0.3])
    assert [t.get_text() for t in axis.get_xticklabels()] == labels


INSTRUCTION_KEY = "dataset.train.instructions"


def test_a_pretrain_table_makes_the_base_before_the_sweep_then_reuses_it(tmp_path, capsys):
    """`sweep` pretrains the base an experiment's `pretrain` table describes, and a second
    sweep resumes/checks the finished run instead of pretraining again; a table whose `out` is
    not `train.base` is refused before any work."""
    from rewritelab.cli.main import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcd dcba abba cddc\n" * 200)
    base = tmp_path / "base"
    text = 'method = "finetune"\n' + TINY.split("[train]")[0].replace("seeds = 2", "seeds = 1")
    text += f'[pretrain]\ncorpus = ["{corpus}"]\nout = "{base}"\n[pretrain.config]\n'
    text += "max_steps = 3\nbatch_size = 4\neval_every = 3\nvalidation_windows = 2\n"
    text += "model = { layers = 1, heads = 1, width = 16, context = 32 }\n"
    text += f'[train]\nbase = "{base}"\nmethod = "full"\nmax_steps = 2\nbatch_size = 16\n'
    text += 'eval_examples = 0\ndevice = "cpu"\n[grid]\n"dataset.train.instructions" = [3]\n'
    path = tmp_path / "ft.toml"
    path.write_text(text)
    work = ["--workdir", str(tmp_path / "work"), "--quiet", "--jobs", "1"]
    assert main(["sweep", str(path), *work]) == 0
    assert f"pretraining the base model into {base}" in capsys.readouterr().out
    assert json.loads((base / "model" / "config.json").read_text())["n_layer"] == 1
    weights = (base / "model" / "model.safetensors").read_bytes()
    assert main(["sweep", str(path), *work]) == 0
    out = capsys.readouterr().out
    assert "pretraining" not in out and "already there 1" in out
    assert (base / "model" / "model.safetensors").read_bytes() == weights
    path.write_text(text.replace(f'base = "{base}"\n', f'base = "{tmp_path / "elsewhere"}"\n'))
    assert main(["sweep", str(path), *work]) == 2
    assert "train.base = pretrain.out" in capsys.readouterr().err


def test_e4_puts_the_spread_on_the_x_axis_as_the_papers_figure_4():
    factors = [{INSTRUCTION_KEY: i, "spread": s} for i in (64, 512) for s in ("uniform", "0.1")]
    entries = aggregate([{"status": "done", "factors": f, "elapsed_s": 0,
                          "metrics": {"unseen_accuracy": 0.5, "seen_accuracy": 1.0}}
                         for f in factors])  # fmt: skip
    assert x_axis_factor(entries, "e4") == "spread"
    assert x_axis_factor(entries, "e2") == INSTRUCTION_KEY  # other kinds: the instruction count
    without = aggregate([{"status": "done", "factors": {INSTRUCTION_KEY: 8}, "elapsed_s": 0,
                          "metrics": {"unseen_accuracy": 0.5}}])  # fmt: skip
    assert x_axis_factor(without, "e4") == INSTRUCTION_KEY  # an E4 file without the factor
    one_count = aggregate([{"status": "done", "factors": {INSTRUCTION_KEY: 512, "noop": share},
                            "elapsed_s": 0, "metrics": {"unseen_accuracy": 0.5}}
                           for share in (0.1, 0.3)])  # fmt: skip
    assert x_axis_factor(one_count, "e2") == "noop"  # one I: what the grid compares


def test_the_e4_figure_shades_the_papers_finding_behind_the_spreads():
    from rewritelab.analysis.figures import FigureData
    from rewritelab.analysis.kinds import draw

    spreads = ("uniform", "0.5", "0.2", "0.1", "0.03")
    rows = [{"status": "done", "factors": {INSTRUCTION_KEY: 256, "spread": s}, "elapsed_s": 0,
             "seed": 0, "metrics": {"unseen_accuracy": a, "seen_accuracy": 1.0}}
            for s, a in zip(spreads, (1.0, 1.0, 0.98, 0.87, 0.27), strict=True)]  # fmt: skip
    data = FigureData("e4 (cpu)", "e4", "spread", aggregate(rows), rows,
                      ("unseen_accuracy", "seen_accuracy"), {})  # fmt: skip
    axis = draw(data).axes[0]
    bands = {p.get_label(): (round(p.get_x(), 2), round(p.get_x() + p.get_width(), 2))
             for p in axis.patches}  # fmt: skip
    # categories sit at 0..4: uniform, 0.5 and 0.2 are "high", 0.1 and 0.03 the steep drop
    assert bands == {"paper, I = 1k: high down to α ≈ 0.2": (-0.45, 2.45),
                     "paper, I = 1k: steep drop for α ≤ 0.1": (2.55, 4.45)}  # fmt: skip
    assert set(bands) <= {t.get_text() for t in axis.get_legend().get_texts()}


def test_reproduce_one_and_all_through_the_cli(tmp_path, monkeypatch, capsys):
    """`reproduce NAME` sweeps and reports; `reproduce all --preset P` does every experiment
    of ./experiments with that preset (with `--companions` also their `P-*` presets), then the
    results page, recording command and wall time."""
    from rewritelab.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    small = TINY.split("[presets.small]")[1]
    companion = "[presets.small-more]" + small.replace("[5]", "[6]").replace("small", "small-more")
    (tmp_path / "experiments" / "tiny.toml").write_text(TINY + companion)
    (tmp_path / "experiments" / "other.toml").write_text(
        TINY.replace('"tiny"', '"other"').split("[presets.small]")[0]
    )
    code = main(["reproduce", "tiny", "--preset", "small", "--quiet", "--jobs", "1",
                 "--out", "one"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["run"]["command"] == "rewritelab reproduce tiny --preset small"
    assert summary["run"]["wall_s"] > 0 and "load_average_start" in summary["run"]
    code = main(["reproduce", "all", "--preset", "small", "--quiet", "--jobs", "1"])
    printed = capsys.readouterr()
    assert code == 0, printed
    results = tmp_path / "results" / "small"
    assert sorted(p.name for p in results.iterdir()) == ["README.md", "tiny"]  # not `other`
    assert "already there 1" in printed.out  # the point of the first run is reused
    code = main(["reproduce", "all", "--preset", "small", "--companions", "--quiet", "--jobs", "1"])
    printed = capsys.readouterr()
    assert code == 0, printed
    # `small-more` is a companion of `small`, in its own directory
    assert sorted(p.name for p in results.iterdir()) == ["README.md", "tiny", "tiny-more"]
    more = json.loads((results / "tiny-more" / "summary.json").read_text())
    assert more["run"]["command"] == "rewritelab reproduce tiny --preset small-more"
    assert "tiny/small-more" in more and "tiny/small" in (results / "README.md").read_text()
    assert main(["reproduce", "all", "--preset", "nothing", "--quiet"]) == 2
    assert main(["reproduce", "tiny", "--preset", "small", "--companions", "--quiet"]) == 2
    assert "--companions goes with `reproduce all`" in capsys.readouterr().err


def test_a_damaged_cached_dataset_is_generated_again(tmp_path, capsys):
    """A cached dataset whose files no longer match its manifest (truncated, edited) is made
    anew, to the same bytes; an intact one is used as it is."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    point = load_experiment(path).points()[0]
    data = runner_module.ensure_dataset(point, tmp_path)
    original = (data / "train.jsonl").read_bytes()
    (data / "train.jsonl").write_bytes(original[: len(original) // 2])
    assert runner_module.ensure_dataset(point, tmp_path) == data
    assert (data / "train.jsonl").read_bytes() == original
    assert "is damaged (train.jsonl differs from its manifest)" in capsys.readouterr().err
    written = (data / "manifest.json").stat().st_mtime_ns
    assert runner_module.ensure_dataset(point, tmp_path) == data
    assert (data / "manifest.json").stat().st_mtime_ns == written
    assert capsys.readouterr().err == ""
