"""The GPT: a GPT-2 decoder trained from scratch (paper default: 6 layers, 4 heads, width 256).

We build Hugging Face's `GPT2LMHeadModel` rather than our own module: with its SDPA attention
it is as fast as a hand-written nanoGPT block on our short sequences, and its
`save_pretrained` directory (config.json + model.safetensors) opens as is in
`transformers.AutoModelForCausalLM`, so no weight-name mapping has to be kept in sync. Our
tokenizer (`tokenizer.json`) is saved in the same directory. Loading reads safetensors only;
nothing is ever unpickled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from rewritelab.errors import RewritelabError
from rewritelab.tokenizer import Tokenizer

WEIGHTS_FILE = "model.safetensors"
RUN_MODEL_DIR = "model"  # where a finished training run keeps its final model


@dataclass(frozen=True)
class ModelConfig:
    """Size of the GPT. `context` is the longest sequence (prompt + answer) it can hold."""

    layers: int = 6
    heads: int = 4
    width: int = 256
    context: int = 256
    dropout: float = 0.0

    def validate(self) -> ModelConfig:
        for name in ("layers", "heads", "width", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RewritelabError(f"model.{name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise RewritelabError(
                f"model.width ({self.width}) must be divisible by model.heads ({self.heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise RewritelabError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(
    config: ModelConfig, tokenizer: Tokenizer, seed: int, attention: str = "sdpa"
) -> GPT2LMHeadModel:
    """A freshly initialised GPT for `tokenizer`'s vocabulary; the same seed gives the same
    weights. `attention="eager"` is the unoptimised Hugging Face default (for benchmarks)."""
    config.validate()
    gpt2_config = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=config.context,
        n_embd=config.width,
        n_layer=config.layers,
        n_head=config.heads,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        # No pad id: padding sits after the real tokens and never carries loss, and with a pad
        # id set transformers checks every input for it (a warning and a device sync per call).
        pad_token_id=None,
        attn_implementation=attention,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(gpt2_config)


def model_config_of(model: GPT2LMHeadModel) -> ModelConfig:
    """The ModelConfig a loaded model was built from."""
    c = model.config
    return ModelConfig(c.n_layer, c.n_head, c.n_embd, c.n_positions, c.resid_pdrop)


def save_model(model: GPT2LMHeadModel, tokenizer: Tokenizer, directory: str | Path) -> None:
    """Write a Hugging Face model directory: config.json, generation_config.json,
    model.safetensors, and the tokenizer (see `Tokenizer.save`)."""
    hf_logging.disable_progress_bar()
    generation = model.generation_config  # pipeline("text-generation") stops at <eos>
    generation.bos_token_id, generation.eos_token_id = tokenizer.bos_id, tokenizer.eos_id
    generation.pad_token_id = tokenizer.pad_id
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save(directory)


def load_model(
    directory: str | Path, device: torch.device | str = "cpu"
) -> tuple[GPT2LMHeadModel, Tokenizer]:
    """The model and tokenizer saved by `save_model`, in eval mode on `device`."""
    directory = Path(directory)
    if not (directory / WEIGHTS_FILE).is_file() or not (directory / "config.json").is_file():
        raise RewritelabError(f"{directory} holds no saved model ({WEIGHTS_FILE}, config.json)")
    tokenizer = Tokenizer.load(directory)
    hf_logging.disable_progress_bar()
    try:
        model = GPT2LMHeadModel.from_pretrained(
            directory, use_safetensors=True, attn_implementation="sdpa"
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise RewritelabError(f"cannot load the model in {directory}: {error}") from None
    if model.config.vocab_size != tokenizer.vocab_size:
        raise RewritelabError(
            f"{directory}: model vocabulary ({model.config.vocab_size}) does not match its "
            f"tokenizer ({tokenizer.vocab_size})"
        )
    return model.to(device).eval(), tokenizer


def resolve_model_dir(path: str | Path) -> Path:
    """The model directory named by `path`: a model directory itself, or a run's final model."""
    path = Path(path)
    if not path.is_dir():
        raise RewritelabError(f"{path} does not exist")
    for candidate in (path, path / RUN_MODEL_DIR):
        if (candidate / "config.json").is_file():
            return candidate
    raise RewritelabError(
        f"{path} holds no model: neither a model directory nor a finished run with {RUN_MODEL_DIR}/"
    )


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when available unless a device is named ("cpu", "cuda", "cuda:1", ...)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise RewritelabError(f"unknown device {requested!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RewritelabError(f"device {requested!r} requested but CUDA is not available")
    return device


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
