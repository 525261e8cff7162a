"""`finetune`, `evaluate-finetuned`, `merge`, `pretrain`: pretrained causal LMs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewritelab.cli.models import cmd_evaluate
from rewritelab.cli.options import (
    LOOP_SHORTCUTS,
    add_unverified_flag,
    shortcut_overrides,
    switch_overrides,
)
from rewritelab.core.errors import RewritelabError

FINETUNE_SHORTCUTS = {  # flag -> (config key, type)
    **LOOP_SHORTCUTS,
    "template": ("template", str),
    "method": ("method", str),
    "lora_rank": ("lora_rank", int),
    "lora_alpha": ("lora_alpha", int),
}


def cmd_finetune(args: argparse.Namespace) -> int:
    from rewritelab.training.finetune import finetune
    from rewritelab.training.finetune_config import finetune_config_from_dict, load_finetune_config

    switches = {"load_in_8bit": "load_in_8bit=true", "allow_download": "allow_download=true"}
    overrides = shortcut_overrides(args, FINETUNE_SHORTCUTS) + switch_overrides(args, switches)
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
