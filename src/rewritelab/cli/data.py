"""`apply`, `markov`, `generate`, `inspect`: rules, algorithms and datasets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rewritelab.cli.options import (
    shortcut_overrides,
)
from rewritelab.core.errors import RewritelabError

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


def add_data_commands(commands) -> None:
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
