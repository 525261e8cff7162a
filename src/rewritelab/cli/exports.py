"""`export sft` and `export lm-eval`: a dataset as text for TRL's SFTTrainer and for lm-eval."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rewritelab.cli.options import check_output_file
from rewritelab.core.errors import RewritelabError

TASK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def cmd_export_sft(args: argparse.Namespace) -> int:
    from rewritelab.model.text_exports import write_sft

    out = Path(args.out)
    check_output_file("--out", args.out, [args.data], args.force)
    count = write_sft(args.data, args.split, args.template, out)
    print(f"wrote {out} ({count} prompt-completion examples of {args.split})")
    return 0


def cmd_export_lm_eval(args: argparse.Namespace) -> int:
    from rewritelab.model.text_exports import write_lm_eval_task

    if not TASK_NAME.fullmatch(args.name):
        raise RewritelabError(
            f"--name must be letters, digits and '_', starting with a letter, got {args.name!r}"
        )
    out = Path(args.out)
    if out.is_dir():  # a folder that exists: each file of the task is checked as an output
        for name in (f"{args.name}.yaml", f"{args.name}.jsonl"):
            check_output_file("--out", str(out / name), [args.data], args.force)
    else:  # a folder to create: checked as one new output
        check_output_file("--out", args.out, [args.data], args.force)
    path = write_lm_eval_task(args.data, args.split, args.template, out, args.name)
    print(f"wrote {path}: lm_eval --include_path {out} --tasks {args.name} ...")
    return 0


def add_export_commands(commands) -> None:
    export = commands.add_parser("export", help="a dataset as text for TRL or lm-eval")
    kinds = export.add_subparsers(dest="format", required=True)
    for name, handler, split, what in (
        ("sft", cmd_export_sft, "train", "prompt-completion JSON lines for TRL's SFTTrainer"),
        ("lm-eval", cmd_export_lm_eval, "test", "an lm-eval task folder (generate, exact match)"),
    ):
        command = kinds.add_parser(name, help=what)
        command.add_argument("data", help="dataset directory")
        command.add_argument("--out", required=True, help="output file (sft) or folder (lm-eval)")
        command.add_argument("--split", default=split, help=f"split to export (default {split})")
        command.add_argument(
            "--template", default="native", choices=("native", "symbolic", "natural"),
            help="native: our models' layout; symbolic, natural: text for pretrained LMs",
        )  # fmt: skip
        command.add_argument("--force", action="store_true", help="replace an existing output")
        if name == "lm-eval":
            command.add_argument("--name", default="rewritelab_rules", help="lm-eval task name")
        command.set_defaults(handler=handler)
