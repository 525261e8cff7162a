"""`sweep`, `reproduce`, `report`, `compare`, `results-page`: experiments and their results."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.sweep.executors import EXECUTORS

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"  # in a source checkout


def find_experiment(name: str) -> Path:
    """An experiment file: a path, or a name looked up in ./experiments and the source tree's."""
    candidates = [Path(name), Path("experiments") / f"{name}.toml", EXPERIMENTS / f"{name}.toml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RewritelabError(f"no experiment file {name!r} (looked in ./experiments)")


def _sweep(args: argparse.Namespace) -> tuple[Path, dict]:
    from rewritelab.sweep.database import ResultsDatabase
    from rewritelab.sweep.executors import check_executor, default_jobs
    from rewritelab.sweep.experiment import load_experiment
    from rewritelab.sweep.runner import base_of, run_sweep

    experiment = load_experiment(find_experiment(args.experiment), args.preset)
    jobs = default_jobs(experiment) if args.jobs is None else args.jobs
    check_executor(args.executor, jobs)  # before the database exists
    if args.adaptive:
        return _adaptive_sweep(args, experiment, jobs)
    workdir = _workdir(args, experiment)
    database_path = Path(args.db) if args.db else workdir / "results.sqlite"
    database = ResultsDatabase(database_path)
    print(f"{experiment.title}: {len(experiment.points())} points -> {database_path}")
    try:
        with base_of(experiment, progress=not args.quiet) as base:
            counts = run_sweep(
                experiment, database, workdir, executor=args.executor, jobs=jobs,
                retry_failed=args.retry_failed, address=args.address, progress=not args.quiet,
                base=base,
            )  # fmt: skip
        ids = {point.point_id for point in experiment.points()}
        failed = [r for r in database.rows() if r["point_id"] in ids and r["status"] == "failed"]
    finally:
        database.close()
    print(f"done {counts['done']}, failed {counts['failed']}, already there {counts['skipped']}"
          + (f", running in another sweep {counts['busy']}" if counts["busy"] else ""))  # fmt: skip
    return database_path, counts | {"failed_total": _list_failed(failed)}


def _list_failed(failed: list[dict]) -> int:
    if failed:
        print(f"{len(failed)} points failed (rerun with --retry-failed to retry them):")
        for row in failed:
            print(f"  failed: {row['factors']} seed {row['seed']}: {row['error']}")
    return len(failed)


def _workdir(args: argparse.Namespace, experiment, suffix: str = "") -> Path:
    workdir = Path(args.workdir or f"runs/{experiment.name}-{experiment.preset}{suffix}")
    if workdir.exists() and not workdir.is_dir():
        raise RewritelabError(f"--workdir {workdir} exists and is not a directory")
    return workdir


def _adaptive_sweep(args: argparse.Namespace, experiment, jobs: int) -> tuple[Path, dict]:
    """The adaptive transition search (`--adaptive`): rounds of points where I50 is, each
    through the chosen executor, until its interval is narrow enough or its budget spent."""
    from rewritelab.analysis.adaptive_search import search_settings
    from rewritelab.analysis.adaptive_sweep import instruction_range, run_adaptive_sweep
    from rewritelab.sweep.database import ResultsDatabase
    from rewritelab.sweep.runner import run_sweep

    if experiment.pretrain:
        raise RewritelabError("--adaptive does not make a pretrain table's base model: "
                              "run the sweep once without it first")  # fmt: skip
    settings = search_settings(experiment.adaptive, f"{experiment.source} adaptive")
    instruction_range(experiment)  # one curve with a range of counts: checked before any file
    workdir = _workdir(args, experiment, "-adaptive")
    database_path = Path(args.db) if args.db else workdir / "results.sqlite"
    database = ResultsDatabase(database_path)
    print(f"{experiment.title}: adaptive search (at most {settings.budget} runs) -> "
          f"{database_path}")  # fmt: skip
    try:
        rounds = run_adaptive_sweep(experiment, database, settings, lambda points: run_sweep(
            experiment, database, workdir, executor=args.executor, jobs=jobs, points=points,
            retry_failed=args.retry_failed, address=args.address, progress=not args.quiet,
        ))  # fmt: skip
        ids = {a["point_id"] for r in database.search_rounds()[(experiment.name,
               experiment.preset)] for a in r["additions"]}  # fmt: skip
        failed = [r for r in database.rows() if r["point_id"] in ids and r["status"] == "failed"]
    finally:
        database.close()
    last = rounds[-1]
    print(f"adaptive search: {len(rounds)} rounds, {last.runs} runs, stopped: {last.stop}")
    return database_path, {"failed_total": _list_failed(failed)}


def cmd_sweep(args: argparse.Namespace) -> int:
    _, counts = _sweep(args)
    return 1 if counts["failed_total"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from rewritelab.analysis.report import write_report

    report = write_report(args.results, args.out)
    print(f"wrote {report}")
    return 0


def cmd_results_page(args: argparse.Namespace) -> int:
    """Markdown, or the interactive page where the output ends in .html."""
    from rewritelab.analysis.results_page import rows_with_points, write_results_page

    if Path(args.out).suffix == ".html":
        from rewritelab.analysis.results_html import write_results_html

        written = write_results_html(rows_with_points(args.results), args.results, args.out)
    else:
        written = write_results_page(args.results, args.out)
    print(f"wrote {written}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 0 when the databases share runs and every shared run is identical."""
    from rewritelab.sweep.compare import compare_databases, format_comparison

    result = compare_databases(args.first, args.second)
    print(format_comparison(result, (args.first, args.second)))
    return 0 if result["common"] and not result["differing"] else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Sweep then report one experiment, or `all` of those with the preset (then also the
    results page). The report records the command, the wall time of this invocation and the
    machine's load."""
    from rewritelab.analysis.results_page import write_results_page

    if args.experiment != "all":
        if args.companions:
            raise RewritelabError("--companions goes with `reproduce all`")
        return reproduce_one(args, args.experiment, args.out)
    if args.workdir or args.db or args.adaptive:
        raise RewritelabError(
            "reproduce all takes no --workdir, --db or --adaptive (one search per experiment)"
        )
    runs = experiments_with_preset(args.preset, args.companions)
    if not runs:
        raise RewritelabError(f"no experiment in experiments/ has a preset {args.preset!r}")
    out = Path(args.out or f"results/{args.preset}")
    failed = sum(
        reproduce_one(argparse.Namespace(**{**vars(args), "preset": preset}), name, out / subdir)
        for name, preset, subdir in runs
    )
    print(f"wrote {write_results_page(out, out / 'README.md')}")
    return 1 if failed else 0


def experiments_with_preset(
    preset: str | None, companions: bool = False
) -> list[tuple[str, str | None, str]]:
    """(experiment, preset, results subdirectory) for each experiment file in experiments/
    that defines `preset`, and with `companions` also for its presets `preset-*` (the checks
    and controls: e6's `cpu-dense` beside `cpu`, in `e6-dense`); every file's base settings
    when `preset` is None."""
    import tomllib

    directory = EXPERIMENTS if not Path("experiments").is_dir() else Path("experiments")
    runs = []
    for path in sorted(directory.glob("*.toml")):
        if preset is None:
            runs.append((path.stem, None, path.stem))
            continue
        for name in tomllib.loads(path.read_text(encoding="utf-8")).get("presets", {}):
            if name == preset:
                runs.append((path.stem, name, path.stem))
            elif companions and name.startswith(preset + "-"):
                runs.append((path.stem, name, f"{path.stem}-{name.removeprefix(preset + '-')}"))
    return runs


def reproduce_one(args: argparse.Namespace, name: str, out: str | Path | None) -> int:
    """Sweep and report experiment `name`; 1 if some point failed."""
    import shlex
    import time

    from rewritelab.analysis.report import write_report
    from rewritelab.core.hardware import usable_cores

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    database_path, counts = _sweep(argparse.Namespace(**{**vars(args), "experiment": name}))
    command = ["rewritelab", "reproduce", name] + (["--preset", args.preset] if args.preset else [])
    command += ["--adaptive"] if args.adaptive else []
    run = {
        "command": shlex.join(command),
        "wall_s": round(time.perf_counter() - started, 1),
        "wall_note": "this invocation only (a resumed sweep counts its own time)",
        "usable_cores": usable_cores(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
    }
    report = write_report(database_path, out or database_path.parent / "report", run=run)
    print(report.read_text(encoding="utf-8"))
    return 1 if counts["failed_total"] else 0


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment", help="experiment file, or a name in experiments/ (e1, e2, ...)"
    )
    parser.add_argument("--preset", help="preset of the experiment file (paper, gpu, cpu)")
    parser.add_argument("--workdir", help="datasets and runs go here (default runs/NAME-PRESET)")
    parser.add_argument("--db", help="results database (default WORKDIR/results.sqlite)")
    parser.add_argument("--executor", default="local", choices=list(EXECUTORS))
    parser.add_argument(
        "--jobs",
        type=int,
        help="points at once (local pool or submitit jobs; default: one per core on CPU)",
    )
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed points again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--adaptive", action="store_true",
        help="place instruction counts and seeds where the transition is, round by round, "
        "until the I50 interval is narrow (the experiment's [adaptive] table)",
    )  # fmt: skip


def add_experiment_commands(commands) -> None:
    sweep = commands.add_parser("sweep", help="run an experiment's grid into a results database")
    add_sweep_arguments(sweep)
    sweep.set_defaults(handler=cmd_sweep)

    reproduce = commands.add_parser(
        "reproduce", help="sweep an experiment (or `all` with the preset), then report it"
    )
    add_sweep_arguments(reproduce)
    reproduce.add_argument(
        "--out", help="report directory (default WORKDIR/report; with `all`: results/PRESET)"
    )
    reproduce.add_argument(
        "--companions",
        action="store_true",
        help="with `all`: also each experiment's PRESET-* presets (checks and controls)",
    )
    reproduce.set_defaults(handler=cmd_reproduce)

    report = commands.add_parser("report", help="figures and tables from a results database")
    report.add_argument("results", help="results database (SQLite)")
    report.add_argument("--out", required=True, help="report directory")
    report.set_defaults(handler=cmd_report)

    compare = commands.add_parser(
        "compare", help="two results databases run by run: identical metrics, or what differs"
    )
    compare.add_argument("first", help="results database (SQLite), e.g. the committed run's")
    compare.add_argument("second", help="results database (SQLite), e.g. a rerun's")
    compare.set_defaults(handler=cmd_compare)

    page = commands.add_parser(
        "results-page", help="one page: claim, result, verdict per experiment"
    )
    page.add_argument("results", help="directory of <experiment>/summary.json (e.g. results/cpu)")
    page.add_argument(
        "--out", required=True,
        help="the page: Markdown (results/cpu/README.md) or, ending in .html, the interactive "
        "page (results/index.html)",
    )  # fmt: skip
    page.set_defaults(handler=cmd_results_page)
