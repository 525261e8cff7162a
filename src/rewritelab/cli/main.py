"""The `rewritelab` command: parses arguments, calls the pipeline modules, prints.

It holds no logic of its own. Every error is printed as one line on stderr naming the problem:
a user mistake (`RewritelabError`, or a bad argument) exits 2, anything else exits 1. The global
`--debug` flag (`rewritelab --debug CMD ...`) shows the full traceback instead. Warnings raised
by a command that then fails are dropped, so the error stays the one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from rewritelab import __version__
from rewritelab.core.errors import RewritelabError

MAX_MESSAGE_CHARS = 300  # an error line longer than this is cut

# Shortcut flags of `generate`: flag -> config key they set.
GENERATE_SHORTCUTS = {
    "seed": "seed",
    "alphabet": "alphabet",
    "instructions": "train.instructions",
    "examples_per_instruction": "train.examples_per_instruction",
    "examples": "train.examples",
    "noop_share": "train.noop_share",
    "test_instructions": "test.instructions",
    "test_examples_per_instruction": "test.examples_per_instruction",
}


TRAIN_SHORTCUTS = {  # flag -> (config key, type)
    "seed": ("seed", int),
    "epochs": ("epochs", int),
    "max_steps": ("max_steps", int),
    "batch_size": ("batch_size", int),
    "lr": ("learning_rate", float),
    "eval_every": ("eval_every", int),
    "eval_examples": ("eval_examples", int),
    "device": ("device", str),
    "threads": ("threads", int),
    "layers": ("model.layers", int),
    "heads": ("model.heads", int),
    "width": ("model.width", int),
    "context": ("model.context", int),
    "dropout": ("model.dropout", float),
    "loss_on": ("loss_on", str),
}


FINETUNE_SHORTCUTS = {  # flag -> (config key, type)
    "seed": ("seed", int),
    "max_steps": ("max_steps", int),
    "batch_size": ("batch_size", int),
    "lr": ("learning_rate", float),
    "template": ("template", str),
    "method": ("method", str),
    "lora_rank": ("lora_rank", int),
    "lora_alpha": ("lora_alpha", int),
    "device": ("device", str),
    "threads": ("threads", int),
}


def shortcut_overrides(args: argparse.Namespace, shortcuts: dict[str, str]) -> list[str]:
    """`--set` assignments plus those of the shortcut flags given (values read as TOML)."""
    overrides = []
    for flag, key in shortcuts.items():
        key = key[0] if isinstance(key, tuple) else key
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    return overrides + list(args.set or [])


def cmd_apply(args: argparse.Namespace) -> int:
    from rewritelab.tasks.rules import Rule

    print(Rule.parse(args.rule).apply(args.word))
    return 0


def cmd_markov(args: argparse.Namespace) -> int:
    from rewritelab.tasks.rules import Halt, MarkovAlgorithm

    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")  # a leading BOM is not a symbol
    except OSError as error:
        raise RewritelabError(f"cannot read algorithm {args.file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise RewritelabError(f"cannot read algorithm {args.file}: not UTF-8 text") from None
    result = MarkovAlgorithm.parse(text).run(args.word, max_steps=args.max_steps, trace=args.trace)
    for step in result.trace:
        print(f"{step.step:>5}  [{step.rule_index}] {step.rule}  =>  {step.word}", file=sys.stderr)
    print(result.output)
    print(f"{result.steps} steps, stopped: {result.halt.value}", file=sys.stderr)
    return 3 if result.halt is Halt.STEP_LIMIT else 0


def cmd_generate(args: argparse.Namespace) -> int:
    from rewritelab.tasks.generate import generate_dataset
    from rewritelab.tasks.spec_files import load_spec

    spec = load_spec(args.config, shortcut_overrides(args, GENERATE_SHORTCUTS))
    manifest = generate_dataset(spec, args.out, force=args.force, progress=not args.quiet)
    for name, counts in manifest["counts"].items():
        print(
            f"{name:>10}: {counts['examples']} examples, {counts['instructions']} instructions, "
            f"{counts['noop']} no-ops"
        )
    print(f"wrote {args.out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from rewritelab.tasks.inspection import format_inspection, inspect_dataset

    report = inspect_dataset(args.data)
    print(json.dumps(report, indent=2) if args.json else format_inspection(report))
    return 0 if all(report["checks"].values()) else 1


def cmd_train(args: argparse.Namespace) -> int:
    from rewritelab.training.scratch import load_train_config, saved_train_config, train

    overrides = shortcut_overrides(args, TRAIN_SHORTCUTS)
    if args.no_bf16:
        overrides.append("bf16=false")
    if args.no_compile:
        overrides.append("compile=false")
    if args.resume and args.config is None:
        config = saved_train_config(args.out, overrides)
    else:
        config = load_train_config(args.config, overrides)
    final = train(config, args.data, args.out, resume=args.resume, progress=not args.quiet)
    print(json.dumps(final))
    return 0


def print_accuracy(metrics: dict) -> None:
    """Overall exact-match accuracy of an evaluation, then no-op / has-op."""
    overall = metrics["overall"]
    print(f"{metrics['split']} ({metrics['path']} path): accuracy {overall['accuracy']:.4f} "
          f"± {overall['stderr']:.4f} on {overall['examples']} examples")  # fmt: skip
    for name, accuracy in metrics["by_noop"].items():
        print(f"  {name}: {accuracy['accuracy']:.4f} ({accuracy['examples']} examples)")
    trace = metrics.get("trace")
    if trace:
        final = trace.get("final_word", {}).get("accuracy")
        print(f"  trace: steps right {trace['step_share']:.4f} (given the gold previous steps), "
              f"first wrong step {trace['first_wrong_step']['mean']}, final word "
              f"{'-' if final is None else f'{final:.4f}'}")  # fmt: skip


def check_predictions_path(path: str | None, inputs: list[str], force: bool) -> None:
    """Refuse, before any work, a predictions file that could not be written, one that would
    write through a symlink or into the run or dataset evaluated, and an existing file
    without --force."""
    if path is None:
        return
    target = Path(path)
    if target.is_symlink():
        raise RewritelabError(f"--predictions {path} is a symlink: never written through")
    if target.is_dir():
        raise RewritelabError(f"--predictions {path} is a directory")
    if not target.parent.is_dir():
        raise RewritelabError(f"--predictions {path}: no directory {target.parent}")
    where = target.resolve()
    for source in inputs:
        if where.is_relative_to(Path(source).resolve()):
            raise RewritelabError(
                f"--predictions {path} is inside {source}, which this command reads: "
                "write it elsewhere"
            )
    if target.exists() and not force:
        raise RewritelabError(f"--predictions {path} exists (use --force to replace it)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rewritelab.evaluation.evaluate import evaluate_run

    check_predictions_path(args.predictions, [args.run, args.data], args.force)
    metrics = evaluate_run(
        args.run, args.data, split=args.split, path=args.path,
        predictions_out=args.predictions, device=args.device, target=getattr(args, "target", None),
        allow_unverified=args.allow_unverified,
    )  # fmt: skip
    print_accuracy(metrics)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from rewritelab.evaluation.evaluate import predict

    answer, exact = predict(
        args.run, args.rule, args.input, device=args.device,
        allow_unverified=args.allow_unverified,
    )  # fmt: skip
    print(f"model: {answer}\nexact: {exact}\n{'correct' if answer == exact else 'wrong'}")
    return 0


def add_model_commands(commands) -> None:
    train = commands.add_parser("train", help="train a GPT from scratch on a generated dataset")
    train.add_argument("--data", required=True, help="dataset directory")
    train.add_argument(
        "--out", required=True, help="run directory (must not exist unless --resume)"
    )
    train.add_argument("--config", help="TOML or YAML training config")
    train.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a value, e.g. model.layers=2 (repeatable)")  # fmt: skip
    for flag, (key, kind) in TRAIN_SHORTCUTS.items():
        train.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, help=f"sets {key}")
    train.add_argument(
        "--no-bf16", action="store_true", help="fp32: no bf16 autocast where the device has bf16"
    )
    train.add_argument("--no-compile", action="store_true", help="no torch.compile on CUDA")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="exact-match accuracy of a trained run")
    evaluate.add_argument("run", help="run directory (or a model directory)")
    evaluate.add_argument("--data", required=True, help="dataset directory")
    evaluate.add_argument(
        "--split", default="test", choices=["train", "seen_test", "test", "classic"]
    )
    evaluate.add_argument(
        "--target",
        choices=["step", "final", "trace"],
        help="algorithm datasets: the answer to judge (default: the one the run trained on)",
    )
    evaluate.add_argument("--path", default="auto", choices=["auto", "fast", "generate"])
    evaluate.add_argument("--predictions", help="write one JSON line per example here")
    evaluate.add_argument("--force", action="store_true", help="replace an existing --predictions")
    evaluate.add_argument("--device", default="auto")
    add_unverified_flag(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="the model's answer next to the exact one")
    predict.add_argument("run", help="run directory (or a model directory)")
    predict.add_argument("--rule", required=True, help="e.g. 'ab -> c'")
    predict.add_argument("--input", required=True)
    predict.add_argument("--device", default="auto")
    add_unverified_flag(predict)
    predict.set_defaults(handler=cmd_predict)


def add_unverified_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unverified", action="store_true", help="load weights that carry no digest"
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    from rewritelab.training.finetune import finetune
    from rewritelab.training.finetune_config import finetune_config_from_dict, load_finetune_config

    overrides = shortcut_overrides(args, FINETUNE_SHORTCUTS)
    if args.load_in_8bit:
        overrides.append("load_in_8bit=true")
    if args.allow_download:
        overrides.append("allow_download=true")
    base, recorded = args.base, None
    if args.resume:
        try:
            recorded = json.loads((Path(args.out) / "run_config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise RewritelabError(f"cannot resume {args.out}: {error}") from None
        base = base or recorded["base"]
    if base is None:
        raise RewritelabError("--base is required for a new fine-tuning run")
    if recorded is not None and args.config is None and not overrides and args.preset is None:
        config = finetune_config_from_dict(recorded["config"])
    else:
        config = load_finetune_config(args.config, overrides, args.preset)
    final = finetune(base, args.data, args.out, config, resume=args.resume, progress=not args.quiet)
    print(json.dumps(final))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from rewritelab.model.pretrained import merge

    print(f"wrote {merge(args.run, args.out, device=args.device)}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from rewritelab.training.pretrain import load_pretrain_config, pretrain

    config = load_pretrain_config(args.config, list(args.set or []))
    summary = pretrain(args.corpus, args.out, config, progress=not args.quiet, resume=args.resume)
    print(json.dumps(summary))
    return 0


def add_pretrained_commands(commands) -> None:
    finetune = commands.add_parser("finetune", help="LoRA or full fine-tuning of a causal LM")
    finetune.add_argument("--base", help="model directory or Hugging Face id (resume: the run's)")
    finetune.add_argument("--data", required=True, help="dataset directory")
    finetune.add_argument("--out", required=True, help="run directory")
    finetune.add_argument("--config", help="TOML or YAML fine-tuning config")
    finetune.add_argument("--preset", choices=["paper", "small"])
    finetune.add_argument("--resume", action="store_true")
    finetune.add_argument("--load-in-8bit", action="store_true", help="needs bitsandbytes + CUDA")
    finetune.add_argument("--allow-download", action="store_true", help="fetch --base from the Hub")
    finetune.add_argument("--set", action="append", metavar="KEY=VALUE")
    for flag, (key, kind) in FINETUNE_SHORTCUTS.items():
        finetune.add_argument(
            "--" + flag.replace("_", "-"), dest=flag, type=kind, help=f"sets {key}"
        )
    finetune.add_argument("--quiet", action="store_true", help="no progress bar")
    finetune.set_defaults(handler=cmd_finetune)

    evaluate = commands.add_parser("evaluate-finetuned", help="exact match of a fine-tuning run")
    evaluate.add_argument("run")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--split", default="test", choices=["train", "seen_test", "test"])
    evaluate.add_argument("--path", default="auto", choices=["auto", "fast", "generate"])
    evaluate.add_argument("--predictions")
    evaluate.add_argument("--force", action="store_true", help="replace an existing --predictions")
    evaluate.add_argument("--device", default="auto")
    add_unverified_flag(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)  # the same evaluator as `evaluate`

    merge = commands.add_parser("merge", help="fold a LoRA run's adapter into its base model")
    merge.add_argument("run")
    merge.add_argument("--out", required=True)
    merge.add_argument("--device", default="cpu")
    merge.set_defaults(handler=cmd_merge)

    pretrain = commands.add_parser("pretrain", help="pretrain the GPT on local plain text")
    pretrain.add_argument("--corpus", nargs="+", required=True, help="files, directories, globs")
    pretrain.add_argument("--out", required=True)
    pretrain.add_argument("--config")
    pretrain.add_argument("--set", action="append", metavar="KEY=VALUE")
    pretrain.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    pretrain.add_argument("--quiet", action="store_true")
    pretrain.set_defaults(handler=cmd_pretrain)


EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"  # in a source checkout


def find_experiment(name: str) -> Path:
    """An experiment file: a path, or a name looked up in ./experiments and the source tree's."""
    candidates = [Path(name), Path("experiments") / f"{name}.toml", EXPERIMENTS / f"{name}.toml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RewritelabError(f"no experiment file {name!r} (looked in ./experiments)")


def _sweep(args: argparse.Namespace) -> tuple[Path, dict]:
    from rewritelab.sweep import ResultsDatabase, load_experiment, run_sweep
    from rewritelab.sweep.executors import check_executor, default_jobs
    from rewritelab.sweep.runner import base_of

    experiment = load_experiment(find_experiment(args.experiment), args.preset)
    jobs = default_jobs(experiment) if args.jobs is None else args.jobs
    check_executor(args.executor, jobs)  # before the database exists
    workdir = Path(args.workdir or f"runs/{experiment.name}-{experiment.preset}")
    if workdir.exists() and not workdir.is_dir():
        raise RewritelabError(f"--workdir {workdir} exists and is not a directory")
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
    if failed:
        print(f"{len(failed)} points failed (rerun with --retry-failed to retry them):")
        for row in failed:
            print(f"  failed: {row['factors']} seed {row['seed']}: {row['error']}")
    counts["failed_total"] = len(failed)
    return database_path, counts


def cmd_sweep(args: argparse.Namespace) -> int:
    _, counts = _sweep(args)
    return 1 if counts["failed_total"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from rewritelab.analysis.report import write_report

    report = write_report(args.results, args.out)
    print(f"wrote {report}")
    return 0


def cmd_results_page(args: argparse.Namespace) -> int:
    from rewritelab.analysis.results_page import write_results_page

    print(f"wrote {write_results_page(args.results, args.out)}")
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
    if args.workdir or args.db:
        raise RewritelabError("reproduce all takes no --workdir or --db (one per experiment)")
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
    import os
    import shlex
    import time

    from rewritelab.analysis.report import write_report
    from rewritelab.core.hardware import usable_cores

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    database_path, counts = _sweep(argparse.Namespace(**{**vars(args), "experiment": name}))
    command = ["rewritelab", "reproduce", name] + (["--preset", args.preset] if args.preset else [])
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
    parser.add_argument("--executor", default="local", choices=["local", "ray"])
    parser.add_argument(
        "--jobs", type=int, help="points at once (local executor; default: one per core on CPU)"
    )
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed points again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line `rewritelab: error: ...` (exit 2), no usage."""

    def error(self, message: str):
        self.exit(2, f"rewritelab: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rewritelab", description="Controlled instruction-tuning research on rewrite rules."
    )
    parser.add_argument("--version", action="version", version=f"rewritelab {__version__}")
    parser.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    apply = commands.add_parser("apply", help="apply one rule 'x -> y' to a word")
    apply.add_argument("rule", help="the rule, e.g. 'ab -> c'")
    apply.add_argument("word")
    apply.set_defaults(handler=cmd_apply)

    markov = commands.add_parser("markov", help="run a Markov algorithm file on a word")
    markov.add_argument(
        "file", help="one rule per line: 'x -> y', terminal 'x ->. y', '#' comments"
    )
    markov.add_argument("word")
    markov.add_argument("--max-steps", type=int, default=10_000)
    markov.add_argument("--trace", action="store_true", help="print every step on stderr")
    markov.set_defaults(handler=cmd_markov)

    generate = commands.add_parser("generate", help="generate a dataset from a config")
    generate.add_argument("--config", help="TOML or YAML dataset config")
    generate.add_argument("--out", required=True, help="output directory (must not exist)")
    generate.add_argument("--force", action="store_true", help="replace an existing directory")
    generate.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.noop_share=0.3 (repeatable)",
    )
    generate.add_argument("--seed", type=int)
    generate.add_argument("--alphabet")
    generate.add_argument("--instructions", type=int, help="training instructions I")
    generate.add_argument(
        "--examples-per-instruction", type=int, help="training examples per instruction S"
    )
    generate.add_argument("--examples", type=int, help="training budget N (instead of S)")
    generate.add_argument("--noop-share", type=float, help="share of training no-ops")
    generate.add_argument("--test-instructions", type=int)
    generate.add_argument("--test-examples-per-instruction", type=int)
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(handler=cmd_generate)

    inspect = commands.add_parser("inspect", help="statistics and integrity checks of a dataset")
    inspect.add_argument("data", help="dataset directory")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.set_defaults(handler=cmd_inspect)

    add_model_commands(commands)
    add_pretrained_commands(commands)

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
    page.add_argument("--out", required=True, help="the page to write (e.g. results/README.md)")
    page.set_defaults(handler=cmd_results_page)
    return parser


def one_line(text: str) -> str:
    """The first meaningful line of a message, cut to MAX_MESSAGE_CHARS characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def describe(error: BaseException) -> str:
    """One line naming the problem behind an exception."""
    if isinstance(error, RewritelabError):
        return one_line(str(error))
    if isinstance(error, MemoryError):
        return "out of memory: the requested sizes are too large for this machine"
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({one_line(str(error))})"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return one_line(f"{error.strerror}{where}")
    if type(error).__name__ == "UnpicklingError":
        return one_line(f"refused to unpickle a file (unsafe or corrupt): {error}")
    return one_line(f"{type(error).__name__}: {error}") + " (rewritelab --debug shows more)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown only if nothing fails
            warnings.simplefilter("default")
            code = args.handler(args)
        for warning in caught:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)  # fmt: skip
        return code
    except KeyboardInterrupt:
        print("rewritelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # 128 + SIGPIPE
    except Exception as error:
        if args.debug:
            raise
        print(f"rewritelab: error: {describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, RewritelabError) else 1


if __name__ == "__main__":
    sys.exit(main())
