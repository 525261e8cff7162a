"""Pretraining on local plain text: the from-scratch GPT, made a 'pretrained model' here.

No model can be downloaded on our machines, so this trains the same GPT architecture as
from-scratch runs (`rewritelab.model.build_model`) as a causal language model on text files
every machine has (for instance the Python standard library's sources) and saves it as a
Hugging Face model directory, ready for `rewritelab.finetune` (LoRA or full fine-tuning).

The tokenizer is rewritelab's character tokenizer; its alphabet is the newline plus the 95
printable ASCII characters (space to `~`) plus any `extra_alphabet` (add a dataset's letters
when they are not ASCII). Corpus text is mapped to it: a tab becomes four spaces, every other
character outside the alphabet (carriage returns, non-ASCII letters, control characters) is
dropped. Files are joined with the end token between them. Training windows of `context`
tokens start at random positions drawn from (seed, step) alone; the last
`validation_fraction` of the token stream is held out to measure the loss.

Output directory (written under a temporary name, renamed when complete):
    config.json, model.safetensors, tokenizer files   the model, as `rewritelab.model` saves
    pretrain.json                                      config, corpus facts, losses, provenance
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rewritelab import __version__
from rewritelab.checkpoint import git_hash
from rewritelab.errors import RewritelabError
from rewritelab.model import ModelConfig, build_model, count_parameters, pick_device, save_model
from rewritelab.spec import apply_override, read_config_file
from rewritelab.tokenizer import Tokenizer
from rewritelab.train import learning_rate, make_optimizer
from rewritelab.train_config import seed_of, stream

PRINTABLE = "\n" + "".join(chr(code) for code in range(32, 127))
GLOB_CHARACTERS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class PretrainConfig:
    """How to pretrain: the GPT's size, the corpus reading and the optimisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    max_steps: int = 2000  # 0 writes the freshly initialised model (a 'scratch' base)
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    file_pattern: str = "*.py"  # files taken from a directory given as corpus (recursively)
    max_corpus_chars: int = 50_000_000
    validation_fraction: float = 0.02
    validation_windows: int = 64
    extra_alphabet: str = ""
    device: str = "auto"
    bf16: bool = True
    log_every: int = 50

    def validate(self) -> PretrainConfig:
        self.model.validate()
        for name in ("batch_size", "max_corpus_chars", "validation_windows", "log_every"):
            _positive_int(name, getattr(self, name), 1)
        for name in ("seed", "max_steps", "warmup_steps"):
            _positive_int(name, getattr(self, name), 0)
        if not self.learning_rate > 0:
            raise RewritelabError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 < self.validation_fraction < 0.5:
            raise RewritelabError(
                f"validation_fraction must be in (0, 0.5), got {self.validation_fraction!r}"
            )
        pick_device(self.device)
        return self

    def alphabet(self) -> str:
        """The tokenizer alphabet: newline, printable ASCII, then the extra characters."""
        return PRINTABLE + "".join(
            dict.fromkeys(c for c in self.extra_alphabet if c not in PRINTABLE)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RewritelabError(f"{name} must be an integer >= {minimum}, got {value!r}")


def pretrain_config_from_dict(values: dict[str, Any]) -> PretrainConfig:
    """A validated PretrainConfig from plain data; unknown keys are refused by name."""
    values = dict(values)
    model = values.pop("model", {})
    if not isinstance(model, dict):
        raise RewritelabError("the [model] section must be a table of settings")
    known = set(PretrainConfig.__dataclass_fields__) - {"model"}
    unknown = sorted(set(values) - known) + sorted(
        f"model.{k}" for k in set(model) - set(ModelConfig.__dataclass_fields__)
    )
    if unknown:
        raise RewritelabError(f"unknown pretraining setting(s): {', '.join(unknown)}")
    defaults = PretrainConfig()
    for key, value in values.items():
        default = getattr(defaults, key)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif type(value) is not type(default):
            raise RewritelabError(f"pretraining setting {key} has the wrong type: {value!r}")
    return PretrainConfig(model=ModelConfig(**model), **values).validate()


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] = ()):
    """A validated PretrainConfig from an optional file plus `key=value` overrides."""
    values = read_config_file(path) if path is not None else {}
    for assignment in overrides:
        apply_override(values, assignment)
    return pretrain_config_from_dict(values)


# ------------------------------------------------------------------ corpus


def corpus_files(paths: list[str | Path], file_pattern: str) -> list[Path]:
    """The files named by `paths` (files, directories searched recursively for
    `file_pattern`, or glob patterns), sorted and without repeats."""
    found: set[Path] = set()
    for item in paths:
        text = str(item)
        if GLOB_CHARACTERS.search(text):
            matches = [Path(m) for m in glob.glob(text, recursive=True)]
            found.update(m for m in matches if m.is_file())
            if not matches:
                raise RewritelabError(f"corpus pattern {text} matches no file")
        elif Path(text).is_dir():
            found.update(p for p in Path(text).rglob(file_pattern) if p.is_file())
        elif Path(text).is_file():
            found.add(Path(text))
        else:
            raise RewritelabError(f"corpus path {text} does not exist")
    if not found:
        raise RewritelabError(f"no corpus files found in {[str(p) for p in paths]}")
    return sorted(found)


def encode_corpus(
    files: list[Path], tokenizer: Tokenizer, max_chars: int
) -> tuple[np.ndarray, dict]:
    """The corpus as one token stream (end token between files) and facts about it."""
    drop = re.compile(f"[^{re.escape(tokenizer.alphabet)}]")
    ascii_ids = np.full(128, -1, dtype=np.int64)
    for char in tokenizer.alphabet:
        if ord(char) < 128:
            ascii_ids[ord(char)] = tokenizer.encode_word(char)[0]
    pieces, kept_chars, read_chars, used_files = [], 0, 0, 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        read_chars += len(text)
        text = drop.sub("", text.replace("\t", "    "))[: max_chars - kept_chars]
        if not text:
            continue
        if text.isascii():
            ids = ascii_ids[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        else:
            ids = np.array(tokenizer.encode_word(text), dtype=np.int64)
        pieces += [ids, np.array([tokenizer.eos_id], dtype=np.int64)]
        kept_chars, used_files = kept_chars + len(text), used_files + 1
        if kept_chars >= max_chars:
            break
    if not pieces:
        raise RewritelabError("the corpus holds no text in the tokenizer's alphabet")
    tokens = np.concatenate(pieces)
    facts = {"files": used_files, "chars_read": read_chars, "chars_kept": kept_chars}
    return tokens, facts | {"tokens": len(tokens)}


def window_batch(tokens: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Windows `tokens[s : s + width]` for each start s, shape (B, width)."""
    return tokens[starts[:, None] + np.arange(width)[None, :]]


# ------------------------------------------------------------------ training


@torch.no_grad()
def mean_loss(model, tokens: np.ndarray, starts: np.ndarray, width: int, device) -> float:
    """Mean next-token loss over the windows starting at `starts`."""
    model.eval()
    losses = []
    for chunk in np.array_split(starts, max(1, len(starts) // 16)):
        ids = torch.from_numpy(window_batch(tokens, chunk, width)).to(device)  # (B, T)
        logits = model(input_ids=ids).logits[:, :-1].float()  # (B, T - 1, V)
        losses.append(F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).item())
    model.train()
    return float(np.mean(losses))


def pretrain(
    corpus_paths: list[str | Path], out_dir: str | Path, config: PretrainConfig, progress=True
) -> dict:
    """Pretrain a GPT on the text files of `corpus_paths`; save it to `out_dir` (a Hugging Face
    model directory with our tokenizer); return the losses and corpus facts."""
    config.validate()
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise RewritelabError(f"{out_dir} already exists")
    tokenizer = Tokenizer(config.alphabet())
    files = corpus_files(corpus_paths, config.file_pattern)
    tokens, corpus = encode_corpus(files, tokenizer, config.max_corpus_chars)
    width = config.model.context
    held_out = int(len(tokens) * config.validation_fraction)
    train_tokens, valid_tokens = tokens[: len(tokens) - held_out], tokens[len(tokens) - held_out :]
    if len(train_tokens) <= width or len(valid_tokens) <= width:
        raise RewritelabError(
            f"the corpus ({len(tokens)} tokens) is too small for windows of {width} tokens"
        )
    device = pick_device(config.device)
    model = build_model(config.model, tokenizer, seed_of(config.seed, "model_init")).to(device)
    rng = stream(config.seed, "eval_subset", "validation")
    valid_starts = rng.integers(0, len(valid_tokens) - width, config.validation_windows)
    started = time.perf_counter()
    losses = {"validation_loss_before": mean_loss(model, valid_tokens, valid_starts, width, device)}
    train_losses = _train(model, train_tokens, config, device, progress)
    losses["validation_loss_after"] = mean_loss(model, valid_tokens, valid_starts, width, device)
    summary = {
        **losses,
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": float(np.mean(train_losses[-10:])) if train_losses else None,
        "corpus": corpus,
        "steps": config.max_steps,
        "parameters": count_parameters(model),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    _save(model, tokenizer, out_dir, config, summary, files, corpus_paths, device)
    return summary


def _train(model, tokens: np.ndarray, config: PretrainConfig, device, progress: bool) -> list:
    """Causal-LM steps on random windows; a batch is a pure function of (seed, step)."""
    optimizer = make_optimizer(model, config)
    autocast = torch.autocast(
        device.type, torch.bfloat16, enabled=device.type == "cuda" and config.bf16
    )
    width, losses = config.model.context, []
    model.train()
    for step in tqdm(range(config.max_steps), disable=not progress, unit="step"):
        starts = stream(config.seed, "data_order", step).integers(
            0, len(tokens) - width, config.batch_size
        )
        ids = torch.from_numpy(window_batch(tokens, starts, width)).to(device)  # (B, T)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config, config.max_steps)
        if config.model.dropout > 0:
            torch.manual_seed(seed_of(config.seed, "dropout", step))
        with autocast:
            logits = model(input_ids=ids).logits[:, :-1]  # (B, T - 1, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % config.log_every == 0 or step + 1 == config.max_steps:
            losses.append(loss.item())
    return losses


def _save(model, tokenizer, out_dir: Path, config, summary, files, corpus_paths, device) -> None:
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(model.eval(), tokenizer, partial)
    record = {
        "config": config.to_dict(),
        "corpus_paths": [str(p) for p in corpus_paths],
        "first_files": [str(f) for f in files[:5]],
        **summary,
        "rewritelab_version": __version__,
        "git_hash": git_hash(),
        "torch_version": torch.__version__,
        "device": str(device),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (partial / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out_dir)
