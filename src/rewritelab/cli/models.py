"""`train`, `evaluate`, `predict`: GPTs trained from scratch."""

from __future__ import annotations

import argparse
import json

from rewritelab.cli.options import (
    LOOP_SHORTCUTS,
    add_unverified_flag,
    check_output_file,
    print_accuracy,
    shortcut_overrides,
    switch_overrides,
)

TRAIN_SHORTCUTS = {  # flag -> (config key, type)
    **LOOP_SHORTCUTS,
    "epochs": ("epochs", int),
    "eval_every": ("eval_every", int),
    "eval_examples": ("eval_examples", int),
    "layers": ("model.layers", int),
    "heads": ("model.heads", int),
    "width": ("model.width", int),
    "context": ("model.context", int),
    "dropout": ("model.dropout", float),
    "loss_on": ("loss_on", str),
}


def cmd_train(args: argparse.Namespace) -> int:
    from rewritelab.training.scratch import train
    from rewritelab.training.scratch_config import load_train_config, saved_train_config

    switches = {"no_bf16": "bf16=false", "no_compile": "compile=false"}
    overrides = shortcut_overrides(args, TRAIN_SHORTCUTS) + switch_overrides(args, switches)
    if args.resume and args.config is None:
        config = saved_train_config(args.out, overrides)
    else:
        config = load_train_config(args.config, overrides)
    final = train(config, args.data, args.out, resume=args.resume, progress=not args.quiet)
    print(json.dumps(final))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rewritelab.evaluation.evaluate import evaluate_run

    check_output_file("--predictions", args.predictions, [args.run, args.data], args.force)
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
