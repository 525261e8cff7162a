"""Pretrained bases and LoRA adapters: loading a causal LM, attaching, reloading and merging.

A base is a local directory or a Hugging Face id found in the local cache (downloads only
when the config allows them); its tokenizer must be able to write the dataset's words. The
final weights of a fine-tuning run are a peft adapter (`adapter/`, method "lora") or a whole
model (`model/`, method "full"); `merge` folds an adapter into its base for tools that know
nothing of peft.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Protocol

import torch

from rewritelab.core.atomic_files import staged_directory
from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import pick_device
from rewritelab.core.seeds import seed_of
from rewritelab.model.files import WEIGHTS_FILE, model_part, sign_weights
from rewritelab.model.gpt import RUN_ARCHITECTURE_DIR, RUN_CONFIG, RUN_MODEL_DIR
from rewritelab.model.prompts import (
    CharCodec,
    Codec,
    HFCodec,
    is_char_tokenizer_dir,
)
from rewritelab.model.tokenizer import Tokenizer

ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class BaseLoading:
    """How a base model is loaded: fresh weights or its own, from where, in which precision."""

    method: str = "lora"  # "lora" (a frozen base under an adapter) or "full"
    reinitialize: bool = False
    seed: int = 0
    allow_download: bool = False
    load_in_8bit: bool = False
    bf16: bool = True

    @classmethod
    def of(cls, config: dict) -> BaseLoading:
        """The loading settings among a fine-tuning config's values (the rest are ignored)."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})


class AdapterSettings(Protocol):
    """What `attach_lora` reads of a fine-tuning config."""

    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    target_modules: list[str]
    load_in_8bit: bool
    seed: int


# ------------------------------------------------------------------ loading


def load_base(base: str | Path, config: BaseLoading, device: torch.device):
    """(model, codec) of a base model: a local directory, or a Hugging Face id from the local
    cache (or the Hub with `allow_download`). Refused in one line when it cannot be loaded.
    With `reinitialize` a pretraining run that is still training will do: its architecture."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory = Path(base)
    if final := model_part(directory):  # a pretraining run: its final model
        directory = base = final
    elif config.reinitialize and (shape := model_part(directory, RUN_ARCHITECTURE_DIR)):
        directory = base = shape  # one still training: its shape
    local = directory.is_dir()
    hub = {"local_files_only": not config.allow_download, "trust_remote_code": False}
    try:
        model_config = AutoConfig.from_pretrained(str(base), **hub)
        if getattr(model_config, "auto_map", None):
            raise RewritelabError(
                f"refusing base model {base}: it needs its own Python code (auto_map), which "
                "rewritelab never runs"
            )
        if local and is_char_tokenizer_dir(directory):
            codec = CharCodec(Tokenizer.load(directory))
        else:
            codec = HFCodec(AutoTokenizer.from_pretrained(str(base), **hub), str(base))
        if config.reinitialize:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_of(config.seed, "model_init"))
                model = AutoModelForCausalLM.from_config(model_config)
        else:
            if local:
                _refuse_pickle_only(directory)
            model = AutoModelForCausalLM.from_pretrained(
                str(base), **hub, use_safetensors=True, **_load_options(config, device)
            )
    except (OSError, ValueError, KeyError) as error:
        if not local and str(base).startswith(("/", "./", "../", "~")):  # a path, not a Hub id
            raise RewritelabError(f"cannot load base model {base}: no such directory") from None
        where = "no such directory, and " if not local else ""
        hint = "" if config.allow_download else " (allow_download = true fetches a Hub id)"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise RewritelabError(f"cannot load base model {base}: {where}{first_line}{hint}") from None
    if not config.load_in_8bit:
        model = model.to(device)
    _check_vocabulary(model, codec, str(base))
    return model, codec


def _refuse_pickle_only(directory: Path) -> None:
    """Weights are read from safetensors only: a pickle (`pytorch_model.bin`) can run code."""
    if not list(directory.glob("*.safetensors")) and list(directory.glob("*.bin")):
        raise RewritelabError(
            f"refusing base model {directory}: its weights are a pickle (*.bin), which "
            "rewritelab never loads; convert it once, where you trust the file, with "
            "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR, "
            "safe_serialization=True)"
        )


def _load_options(config: BaseLoading, device: torch.device) -> dict:
    """from_pretrained arguments: bf16 weights for LoRA on a GPU, or an 8-bit base."""
    options = {}
    if device.type == "cuda" and config.bf16 and config.method == "lora":
        options["dtype"] = torch.bfloat16
    if config.load_in_8bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise RewritelabError(
                "load_in_8bit needs bitsandbytes (pip install bitsandbytes), or set "
                "load_in_8bit = false"
            ) from None
        if device.type != "cuda" or config.method != "lora":
            raise RewritelabError("load_in_8bit needs a CUDA device and method = 'lora'")
        options["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        options["device_map"] = {"": device.index or 0}
    return options


def _check_vocabulary(model, codec: Codec, where: str) -> None:
    embedded = model.get_input_embeddings().num_embeddings
    used = codec.tokenizer.vocab_size if isinstance(codec, CharCodec) else len(codec.tokenizer)
    if used > embedded:
        raise RewritelabError(
            f"the tokenizer of {where} has {used} tokens but its model embeds only {embedded} "
            "(incompatible tokenizer)"
        )


def default_target_modules(model) -> list[str]:
    """The LoRA targets for `model`'s architecture (peft's table: GPT-2 `c_attn`, Llama
    `q_proj`/`v_proj`, GPT-NeoX `query_key_value`, ...)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    model_type = model.config.model_type
    if model_type not in TABLE:
        raise RewritelabError(
            f"no default LoRA target modules for architecture {model_type!r}: "
            'set target_modules (e.g. ["q_proj", "v_proj"])'
        )
    return list(TABLE[model_type])


@contextmanager
def peft_without_deprecation_noise() -> Iterator[None]:
    """Within the block, the FutureWarning transformers gives each time peft wraps a model
    (peft asks its deprecated `is_gradient_checkpointing`) is not shown: a line of noise per
    LoRA run that no setting of ours can change."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def attach_lora(model, config: AdapterSettings):
    """`model` wrapped with a fresh LoRA adapter (seeded by the `model_init` stream)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    targets = list(config.target_modules) or default_target_modules(model)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2 stores Conv1D (in, out)
        task_type="CAUSAL_LM",
    )
    if config.load_in_8bit:
        model = prepare_model_for_kbit_training(model)
    try:
        with torch.random.fork_rng(devices=[]), peft_without_deprecation_noise():
            torch.manual_seed(seed_of(config.seed, "model_init"))
            return get_peft_model(model, lora)
    except ValueError as error:
        raise RewritelabError(f"cannot attach LoRA to {targets}: {error}") from None


def load_finetuned(run_dir: str | Path, device: str = "auto", merged_precision: bool = False):
    """(model, codec, template) of a finished fine-tuning run, in eval mode.

    A LoRA run is its base plus the saved adapter; `merged_precision` loads the base without
    8-bit quantisation (needed to merge)."""
    from peft import PeftModel

    run_dir = Path(run_dir)
    recorded = recorded_run(run_dir)
    if "base" not in recorded:
        raise RewritelabError(
            f"{run_dir} is a run trained from scratch, not a fine-tuning run: there is no base "
            f"or adapter to load or merge (its model is {run_dir / RUN_MODEL_DIR})"
        )
    config = BaseLoading.of(recorded["config"])
    if merged_precision:
        config = replace(config, load_in_8bit=False)
    target = pick_device(device)
    final = run_dir / (ADAPTER_DIR if config.method == "lora" else RUN_MODEL_DIR)
    if not final.is_dir():
        raise RewritelabError(f"{run_dir} is not a finished fine-tuning run (no {final.name}/)")
    if config.method == "full":
        model, codec = load_base(final, replace(config, reinitialize=False), target)
    else:
        base, codec = load_base(recorded["base"], config, target)
        with peft_without_deprecation_noise():
            model = PeftModel.from_pretrained(base, final)
    return model.eval(), codec, recorded["template"]


def recorded_run(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RewritelabError(f"{run_dir} is not a fine-tuning run: {error}") from None


def merge(run_dir: str | Path, out_dir: str | Path, device: str = "cpu") -> Path:
    """Merge a LoRA run's adapter into its base and save a plain model directory (weights +
    config + tokenizer) that any tool opens without peft; written atomically."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise RewritelabError(f"{out_dir} already exists")
    model, codec, _ = load_finetuned(run_dir, device, merged_precision=True)
    if not hasattr(model, "merge_and_unload"):
        raise RewritelabError(f"{run_dir} was fully fine-tuned: its {RUN_MODEL_DIR}/ is the model")
    merged = model.merge_and_unload()
    with staged_directory(out_dir, replace=False) as partial:
        save_tuned(merged, codec, partial)
    return out_dir


def save_tuned(model, codec, directory: Path) -> None:
    """A tuned model (or adapter) and its tokenizer in Hugging Face's layout; whole weights of
    our GPT also get the digests `load_model` verifies."""
    model.save_pretrained(directory, safe_serialization=True)
    codec.save(directory)
    if isinstance(codec, CharCodec) and (Path(directory) / WEIGHTS_FILE).is_file():
        sign_weights(Path(directory) / WEIGHTS_FILE, codec.tokenizer)
