"""A run's model card: the `README.md` of its final model directory, in the Hugging Face hub's
layout (a YAML header, then prose): what the model is, how it was trained and on what data,
how well it did at its last evaluation, and the command that made it."""

from __future__ import annotations

import json
from pathlib import Path

from rewritelab.core.atomic_files import write_text_atomic

CARD = "README.md"
RESULTS = ("train_accuracy", "seen_accuracy", "unseen_accuracy", "train_loss")


def card_text(recorded: dict, metrics: dict, adapter: bool = False) -> str:
    """The card of a run from its `run_config.json` (`recorded`) and its last logged metrics."""
    config = recorded.get("config") or {}
    base = config.get("base")
    header = ["---", f"library_name: {'peft' if adapter else 'transformers'}",
              "pipeline_tag: text-generation", "tags:", "- rewritelab",
              "- instruction-following", "- synthetic-data", "---"]  # fmt: skip
    facts = [
        ("parameters", recorded.get("parameters")),
        ("training examples", recorded.get("train_examples")),
        ("steps", f"{metrics.get('step', '?')} of {recorded.get('total_steps', '?')}"),
        ("epochs", _rounded(metrics.get("epoch"))),
        ("training tokens", metrics.get("train_tokens")),
        ("device, threads", f"{recorded.get('device')}, {recorded.get('threads')}"),
        ("trained", recorded.get("date")),
        (
            "rewritelab, torch",
            f"{recorded.get('rewritelab_version')}, {recorded.get('torch_version')}",
        ),  # fmt: skip
    ]
    lines = header + [
        "",
        "# A rewritelab model",
        "",
        _what(adapter, base),
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in facts if value is not None]
    lines += ["", "## Accuracy at the last evaluation", "", _results(metrics, config), ""]
    lines += ["## Data", "", "The training dataset's split files (SHA-256):", ""]
    dataset = recorded.get("dataset")
    files = dataset.get("files") if isinstance(dataset, dict) else None
    for name, facts in sorted((files if isinstance(files, dict) else {}).items()):
        lines.append(f"- `{name}`: `{(facts or {}).get('sha256')}`")
    lines += ["", "## Command", "", f"`{recorded.get('command', '?')}`", "", "## Config", "",
              "```json", json.dumps(config, indent=1, sort_keys=True), "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _what(adapter: bool, base: str | None) -> str:
    if adapter:
        return (f"A LoRA adapter of `{base}` fine-tuned by rewritelab on rewrite "
                "instructions; load it with `peft` on that base model.")  # fmt: skip
    if base:
        return (f"`{base}` fine-tuned by rewritelab on rewrite instructions (prompt template "
                "in the config below); it loads with `AutoModelForCausalLM`.")  # fmt: skip
    return (
        "A causal language model trained by rewritelab on rewrite instructions (one rule "
        "`x -> y` applied to the leftmost `x` of a word, or a Markov algorithm). It loads with "
        "`AutoModelForCausalLM` and `AutoTokenizer`; a prompt is `<bos>x<to>y<in>z<out>` and "
        'the model writes the rewritten word, then `<eos>`: `pipeline("text-generation", '
        "model=this_directory)`."
    )


def _results(metrics: dict, config: dict) -> str:
    measured = [(name, metrics.get(name)) for name in RESULTS if metrics.get(name) is not None]
    if not measured:
        return "_no evaluation was logged_"
    rows = ["| metric | value |", "|---|---|"]
    rows += [f"| {name.replace('_', ' ')} | {_rounded(value)} |" for name, value in measured]
    examples = config.get("eval_examples")
    note = (f"\nExact match on {examples} examples of each split, at step {metrics.get('step')} "
            "(`rewritelab evaluate` measures whole splits). `unseen` rules never occur in "
            "training; `seen` are fresh inputs of the training rules.")  # fmt: skip
    return "\n".join(rows) + note


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def write_model_card(directory: Path, recorded: dict, metrics: dict) -> None:
    """Write the card into a final model directory (or a peft adapter's)."""
    adapter = (Path(directory) / "adapter_config.json").is_file()
    write_text_atomic(Path(directory) / CARD, card_text(recorded, metrics, adapter))
