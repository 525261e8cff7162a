"""A dataset's examples as text, for tools that tokenise it themselves: TRL's `SFTTrainer`
(prompt-completion JSON lines) and lm-eval (a task folder).

The text is what our own models and fine-tuning see, so a model trained or evaluated by those
tools sees the same tokens as one trained or evaluated by rewritelab:

    native    prompt "<bos>x<to>y<in>z<out>"     completion "output"   (a rewritelab tokenizer
              matches the special tokens whole, so the ids are ours exactly)
    symbolic  prompt "x -> y | z =>"             completion " output"
    natural   prompt "Replace the first ... Answer:"   completion " output"

The completion carries no end token: TRL appends the tokenizer's own, and lm-eval stops at
it. Only rule datasets (one rule per example) have a text form.
"""

from __future__ import annotations

import json
from pathlib import Path

from rewritelab.core.atomic_files import write_text_atomic
from rewritelab.core.errors import RewritelabError
from rewritelab.model.prompts import ANSWER_TEMPLATE, TEXT_TEMPLATES
from rewritelab.model.tokenizer import BOS, EOS, IN, OUT, TO
from rewritelab.tasks.storage import SPLIT_FILES, read_manifest, read_records

TEXT_TEMPLATE_NAMES = ("native", "symbolic", "natural")


def prompt_and_completion(template: str, record: dict) -> tuple[str, str]:
    """The prompt and the expected completion of one rule example, as text."""
    x, y, z, output = record["x"], record["y"], record["z"], record["output"]
    if template == "native":
        return f"{BOS}{x}{TO}{y}{IN}{z}{OUT}", output
    return TEXT_TEMPLATES[template].format(x=x, y=y, z=z), ANSWER_TEMPLATE.format(output=output)


def text_examples(data_dir: str | Path, split: str, template: str) -> list[dict]:
    """`{"prompt", "completion"}` per example of a split, with the record's other fields."""
    if template not in TEXT_TEMPLATE_NAMES:
        raise RewritelabError(f"template must be one of {TEXT_TEMPLATE_NAMES}, got {template!r}")
    if split not in SPLIT_FILES:
        raise RewritelabError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    manifest = read_manifest(data_dir)
    if manifest.get("task", "rule") != "rule":
        raise RewritelabError(
            f"{data_dir} holds a {manifest['task']!r} dataset: only rule datasets have a "
            "prompt-completion text form"
        )
    examples = []
    for record in read_records(Path(data_dir) / SPLIT_FILES[split]):
        prompt, completion = prompt_and_completion(template, record)
        examples.append({"prompt": prompt, "completion": completion, **record})
    return examples


def write_sft(data_dir: str | Path, split: str, template: str, out: str | Path) -> int:
    """Write a split as prompt-completion JSON lines (TRL's SFTTrainer format); the count."""
    examples = text_examples(data_dir, split, template)
    write_text_atomic(Path(out), _json_lines(examples))
    return len(examples)


def write_lm_eval_task(
    data_dir: str | Path, split: str, template: str, out_dir: str | Path, name: str
) -> Path:
    """Write an lm-eval task folder: the split's examples and `NAME.yaml`, a generate-until
    task scored by exact match (whitespace around the answer ignored). The YAML names the
    examples by absolute path, as lm-eval reads data files from its working directory."""
    examples = text_examples(data_dir, split, template)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = (out_dir / f"{name}.jsonl").resolve()
    write_text_atomic(data, _json_lines(examples))
    longest = max((len(e["completion"]) for e in examples), default=1)
    stop = EOS if template == "native" else "\n"
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{completion}}",
        "generation_kwargs": {"until": [stop], "do_sample": False, "max_gen_toks": longest + 2},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True, "regexes_to_ignore": ["^\\s+", "\\s+$"]}],
        "metadata": {"version": 1.0, "source": str(Path(data_dir).resolve()), "split": split,
                     "template": template},
    }  # fmt: skip
    path = out_dir / f"{name}.yaml"
    write_text_atomic(path, json.dumps(task, indent=2, ensure_ascii=False) + "\n")  # YAML ⊃ JSON
    return path


def _json_lines(examples: list[dict]) -> str:
    return "".join(json.dumps(example, ensure_ascii=False) + "\n" for example in examples)
