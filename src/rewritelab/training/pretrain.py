"""Pretraining on local plain text: the from-scratch GPT, made a 'pretrained model' here.

No model can be downloaded on our machines, so this trains the same GPT architecture as
from-scratch runs (`rewritelab.model.gpt`) as a causal language model on text files every machine
has (for instance the Python standard library's sources), through the shared loop
(`rewritelab.training.loop`: schedule, checkpoints, resume, metrics log), and saves it as a Hugging
Face model directory, ready for `rewritelab.training.finetune` (LoRA or full fine-tuning).

The tokenizer is rewritelab's character tokenizer; its alphabet is the newline plus the 95
printable ASCII characters (space to `~`) plus any `extra_alphabet` (add a dataset's letters
when they are not ASCII). Corpus text is mapped to it: a tab becomes four spaces, every other
character outside the alphabet (carriage returns, non-ASCII letters, control characters) is
dropped. Files are joined with the end token between them. Training windows of `context`
tokens start at random positions drawn from (seed, step) alone; the last
`validation_fraction` of the token stream is held out to measure the loss.

Output: a run directory (`rewritelab.training.runs`) whose `model/` is the pretrained model;
`rewritelab finetune --base OUT` accepts the run directory or its `model/`. Its
`architecture/` (config and tokenizer, no weights) is written before the first step, so that
runs which start from fresh weights of the same shape (`reinitialize`) need not wait for it.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rewritelab.core.config import load_config
from rewritelab.core.errors import RewritelabError
from rewritelab.core.seeds import seed_of, stream
from rewritelab.model.files import GPTTrainee, model_part, save_architecture
from rewritelab.model.gpt import (
    GPT,
    RUN_ARCHITECTURE_DIR,
    ModelConfig,
    build_model,
    count_parameters,
)
from rewritelab.model.tokenizer import Tokenizer
from rewritelab.training.loop import train_run
from rewritelab.training.loop_config import LoopConfig, check_ints
from rewritelab.training.runs import RunDirectory

PRINTABLE = "\n" + "".join(chr(code) for code in range(32, 127))
GLOB_CHARACTERS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class PretrainConfig(LoopConfig):
    """How to pretrain: the loop's settings, the GPT's size and the corpus reading."""

    model: ModelConfig = field(default_factory=ModelConfig)
    max_steps: int = 2000  # 0 writes the freshly initialised model (a 'scratch' base)
    batch_size: int = 64
    eval_every: int = 500  # steps between validation losses (and checkpoints)
    file_pattern: str = "*.py"  # files taken from a directory given as corpus (recursively)
    max_corpus_chars: int = 50_000_000
    validation_fraction: float = 0.02
    validation_windows: int = 64
    extra_alphabet: str = ""

    def validate(self) -> PretrainConfig:
        super().validate()
        self.model.validate()
        check_ints(self, {"batch_size": 1, "max_corpus_chars": 1, "validation_windows": 1})
        check_ints(self, {"max_steps": 0})
        if self.stop_at_train_accuracy:
            raise RewritelabError(
                "stop_at_train_accuracy: pretraining measures a validation loss, not accuracy"
            )
        if not 0 < self.validation_fraction < 0.5:
            raise RewritelabError(
                f"validation_fraction must be in (0, 0.5), got {self.validation_fraction!r}"
            )
        return self

    def alphabet(self) -> str:
        """The tokenizer alphabet: newline, printable ASCII, then the extra characters."""
        return PRINTABLE + "".join(
            dict.fromkeys(c for c in self.extra_alphabet if c not in PRINTABLE)
        )


STDLIB = "{stdlib}"  # in a corpus path: this Python's standard library directory
PRETRAIN_KEYS = {"corpus", "out", "config"}


def expand_corpus(paths: list[str]) -> list[str]:
    """Corpus paths with `{stdlib}` replaced by the standard library directory of this Python."""
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    return [path.replace(STDLIB, stdlib) for path in paths]


def check_pretrain_table(table: dict, where: str) -> PretrainConfig:
    """Validate an experiment's `pretrain` table (corpus, out, config); its PretrainConfig."""
    unknown = sorted(set(table) - PRETRAIN_KEYS)
    if unknown:
        raise RewritelabError(f"{where}: unknown key {unknown[0]!r} in pretrain")
    corpus, out = table.get("corpus"), table.get("out")
    if not isinstance(corpus, list) or not corpus or not all(isinstance(c, str) for c in corpus):
        raise RewritelabError(f"{where}: pretrain.corpus must be a non-empty list of paths")
    if not isinstance(out, str) or not out:
        raise RewritelabError(f"{where}: pretrain.out must be a directory path")
    return pretrain_config_from_dict(table.get("config", {}))


def prepare_base(table: dict, progress: bool = True) -> Path:
    """Pretrain the base model an experiment fine-tunes, as its `pretrain` table says, into
    `out`: a new run, or the resumption of a killed one; a finished run is checked (same
    config) and kept. Returns the run directory."""
    config = check_pretrain_table(table, "pretrain")
    out = Path(table["out"])
    pretrain(expand_corpus(table["corpus"]), out, config, progress=progress, resume=out.exists())
    return out


def base_finished(table: dict) -> bool:
    """Whether the `pretrain` table's run has written its final model (a sweep still checks
    it against the table with `prepare_base`)."""
    return model_part(table["out"]) is not None


def write_architecture(trainee: PretrainTrainee, run_dir: Path) -> None:
    """Write the model's shape, without weights (`save_architecture`), into
    `run_dir/architecture` when the run starts (once; atomically): what a fine-tuning run that
    draws fresh weights (`reinitialize`) takes from this base, available while it trains."""
    if model_part(run_dir, RUN_ARCHITECTURE_DIR):
        return
    with RunDirectory(run_dir).staged(RUN_ARCHITECTURE_DIR) as partial:
        save_architecture(trainee.model, trainee.tokenizer, partial)


def pretrain_config_from_dict(values: dict) -> PretrainConfig:
    """A validated PretrainConfig from plain data; unknown keys are refused by name."""
    return load_config(PretrainConfig, base=values)


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] = ()):
    """A validated PretrainConfig from an optional file plus `key=value` overrides."""
    return load_config(PretrainConfig, path, overrides)


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


class PretrainTrainee(GPTTrainee):
    """Our GPT as a causal LM on random windows of a token stream; evaluated by its loss on
    fixed held-out windows."""

    def __init__(self, corpus_paths: list, config: PretrainConfig, device: torch.device):
        self.config, self.width, self.corpus_paths = config, config.model.context, corpus_paths
        self.tokenizer = Tokenizer(config.alphabet())
        self.files = corpus_files(corpus_paths, config.file_pattern)
        tokens, self.corpus = encode_corpus(self.files, self.tokenizer, config.max_corpus_chars)
        held_out = int(len(tokens) * config.validation_fraction)
        self.train_tokens, self.valid_tokens = tokens[: len(tokens) - held_out], tokens[-held_out:]
        if len(self.train_tokens) <= self.width or held_out <= self.width:
            raise RewritelabError(
                f"the corpus ({len(tokens)} tokens) is too small for windows of {self.width} tokens"
            )
        rng = stream(config.seed, "eval_subset", "validation")
        self.valid_starts = rng.integers(0, held_out - self.width, config.validation_windows)
        self.steps_per_epoch = max(1, len(self.train_tokens) // (config.batch_size * self.width))
        self.total_steps = self.eval_every_default = config.max_steps
        init_seed = seed_of(config.seed, "model_init")
        self.model: GPT = build_model(config.model, self.tokenizer, init_seed).to(device)

    def batch(self, step: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
        """Random windows (B, T) drawn from (seed, step) alone; every next token is a target."""
        starts = stream(self.config.seed, "data_order", step).integers(
            0, len(self.train_tokens) - self.width, self.config.batch_size
        )
        ids = window_batch(self.train_tokens, starts, self.width)
        return [(ids, ids[:, 1:])], ids.size

    def evaluate(self) -> dict[str, float]:
        return {"validation_loss": self.validation_loss()}

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean next-token loss over the fixed held-out windows."""
        losses = []
        for chunk in np.array_split(self.valid_starts, max(1, len(self.valid_starts) // 16)):
            ids = torch.from_numpy(window_batch(self.valid_tokens, chunk, self.width))
            ids = ids.to(self.model.device)  # (B, T)
            logits = self.model(ids)[:, :-1].float()  # (B, T - 1, V)
            losses.append(F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).item())
        return float(np.mean(losses))

    def data_identity(self) -> dict:
        return {"paths": [str(p) for p in self.corpus_paths], **self.corpus}

    def facts(self) -> dict:
        return {
            "validation_loss_before": self.validation_loss(),
            "corpus": self.corpus,
            "first_files": [str(f) for f in self.files[:5]],
            "total_steps": self.config.max_steps,
            "parameters": count_parameters(self.model),
        }


def pretrain(
    corpus_paths: list[str | Path],
    out_dir: str | Path,
    config: PretrainConfig,
    progress: bool = True,
    resume: bool = False,
) -> dict:
    """Pretrain a GPT on the text files of `corpus_paths` into the run directory `out_dir`
    (the model in `out_dir/model`); return the validation losses before and after, and facts
    about the corpus. `max_steps = 0` saves the initialised model (a 'scratch' base)."""
    trainees = []

    def make_trainee(device: torch.device) -> PretrainTrainee:
        trainees.append(PretrainTrainee(corpus_paths, config, device))
        return trainees[-1]

    final = train_run(make_trainee, config, out_dir, resume, progress, write_architecture)
    before = RunDirectory(out_dir).recorded()["validation_loss_before"]
    return {
        "validation_loss_before": before,
        "validation_loss_after": final.get("validation_loss", before),
        "train_loss_last": final.get("train_loss"),
        "corpus": trainees[0].corpus,
        "steps": config.max_steps,
        "parameters": count_parameters(trainees[0].model),
    }
