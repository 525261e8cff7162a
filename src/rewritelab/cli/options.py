"""What several command groups share: shortcut flags, the --allow-unverified flag, printing
accuracies, checking a predictions path."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rewritelab.core.errors import RewritelabError


def shortcut_overrides(args: argparse.Namespace, shortcuts: dict[str, str]) -> list[str]:
    """`--set` assignments plus those of the shortcut flags given (values read as TOML)."""
    overrides = []
    for flag, key in shortcuts.items():
        key = key[0] if isinstance(key, tuple) else key
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={toml_literal(value)}")
    return overrides + list(args.set or [])


def toml_literal(value) -> str:
    """A flag's value as the TOML an override reads: any Unicode text as itself, and a float
    that is not finite as TOML's `nan` / `inf` (so that validation names it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value, ensure_ascii=False)


def add_unverified_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unverified", action="store_true", help="load weights that carry no digest"
    )


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


def check_output_file(flag: str, path: str | None, inputs: list[str], force: bool) -> None:
    """Refuse, before any work, an output file (given as `flag`) that could not be written, one
    that would write through a symlink or into a run or dataset the command reads, and an
    existing file without --force."""
    if path is None:
        return
    target = Path(path)
    if target.is_symlink():
        raise RewritelabError(f"{flag} {path} is a symlink: never written through")
    if target.is_dir():
        raise RewritelabError(f"{flag} {path} is a directory")
    if not target.parent.is_dir():
        raise RewritelabError(f"{flag} {path}: no directory {target.parent}")
    where = target.resolve()
    for source in inputs:
        if where.is_relative_to(Path(source).resolve()):
            raise RewritelabError(
                f"{flag} {path} is inside {source}, which this command reads: write it elsewhere"
            )
    if target.exists() and not force:
        raise RewritelabError(f"{flag} {path} exists (use --force to replace it)")


# Shortcut flags every training command has: flag -> (config key, type)
LOOP_SHORTCUTS = {
    "seed": ("seed", int),
    "max_steps": ("max_steps", int),
    "batch_size": ("batch_size", int),
    "lr": ("learning_rate", float),
    "device": ("device", str),
    "threads": ("threads", int),
}


def switch_overrides(args: argparse.Namespace, switches: dict[str, str]) -> list[str]:
    """The `key=value` overrides of the on/off flags that are set (flag -> override)."""
    return [override for flag, override in switches.items() if getattr(args, flag)]
