"""Our GPT on disk in Hugging Face's GPT-2 layout: safetensors weights signed with their digests,
`config.json`, the tokenizer; loading verifies the digests and refuses what it cannot trust."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from rewritelab.core.errors import RewritelabError
from rewritelab.model.gpt import ACTIVATION, CONV1D_WEIGHTS, GPT, RUN_MODEL_DIR, ModelConfig
from rewritelab.model.tokenizer import Tokenizer

WEIGHTS_FILE = "model.safetensors"


CONFIG_FILE = "config.json"


GENERATION_FILE = "generation_config.json"


def hf_config(config: ModelConfig, vocab_size: int, bos_id: int, eos_id: int) -> dict:
    """The Hugging Face GPT-2 `config.json` of a model of this size."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": vocab_size,
        "n_positions": config.context,
        "n_embd": config.width,
        "n_layer": config.layers,
        "n_head": config.heads,
        "n_inner": None,
        "activation_function": ACTIVATION,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "use_cache": True,
    }


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Weights under GPT-2's names and layouts (Conv1D matrices transposed; a tied head is
    stored once, as the token embedding)."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_embeddings:
            continue
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        state[name] = tensor.detach().contiguous().cpu()
    return state


def save_model(model: GPT, tokenizer: Tokenizer, directory: str | Path) -> None:
    """Write a Hugging Face model directory: its architecture (`save_architecture`) and its
    weights, model.safetensors."""

    save_architecture(model, tokenizer, directory)
    (Path(directory) / WEIGHTS_FILE).write_bytes(
        signed_safetensors(hf_state_dict(model), tokenizer)
    )


def signed_safetensors(state: dict[str, torch.Tensor], tokenizer: Tokenizer) -> bytes:
    """The safetensors bytes of `state` with the digests `load_model` checks: of the tensors
    and of the tokenizer they go with (metadata keys sorted, so the bytes repeat)."""
    from safetensors.torch import save

    metadata = {"format": "pt", "weights_sha256": weights_digest(state),
                "tokenizer_sha256": tokenizer_digest(tokenizer)}  # fmt: skip
    return sorted_metadata(save(state, metadata=metadata))


def sign_weights(path: Path, tokenizer: Tokenizer) -> None:
    """Rewrite a safetensors file written by another tool (a merged adapter, say) with our
    digests."""
    from safetensors.torch import load_file

    Path(path).write_bytes(signed_safetensors(load_file(str(path)), tokenizer))


def save_architecture(model: GPT, tokenizer: Tokenizer, directory: str | Path) -> None:
    """Write what a Hugging Face model directory holds besides the weights: config.json,
    generation_config.json (so that `pipeline("text-generation")` stops at <eos>) and the
    tokenizer files. Enough to build the model with freshly drawn weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = hf_config(model.config, model.vocab_size, tokenizer.bos_id, tokenizer.eos_id)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id,
                  "pad_token_id": tokenizer.pad_id}  # fmt: skip
    (directory / GENERATION_FILE).write_text(json.dumps(generation) + "\n", encoding="utf-8")
    tokenizer.save(directory, model_max_length=model.config.context)


def sorted_metadata(blob: bytes) -> bytes:
    """A safetensors file's bytes with its `__metadata__` keys in sorted order. safetensors
    writes them in a random order (its issue #584), so two saves of the same weights differed
    in their bytes; sorted, they are identical. Only the order changes: the same length."""
    size = int.from_bytes(blob[:8], "little")
    header = blob[8 : 8 + size].decode("utf-8")
    metadata = json.loads(header).get("__metadata__")
    if not metadata:
        return blob
    written, ordered = (
        json.dumps(m, separators=(",", ":")) for m in (metadata, dict(sorted(metadata.items())))
    )
    if header.count(written) != 1:
        raise RewritelabError("unexpected safetensors header: its metadata was not found")
    return blob[:8] + header.replace(written, ordered).encode("utf-8") + blob[8 + size :]


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, shape, dtype and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    """SHA-256 of what decides the tokenizer's ids: its alphabet, in order (and its layout,
    when not the single-rule one: `Tokenizer.identity`)."""
    return hashlib.sha256(tokenizer.identity().encode("utf-8")).hexdigest()


def model_config_of(hf: dict) -> ModelConfig:
    """The ModelConfig of a GPT-2 `config.json`."""
    try:
        return ModelConfig(
            hf["n_layer"],
            hf["n_head"],
            hf["n_embd"],
            hf["n_positions"],
            hf["resid_pdrop"],
            hf["vocab_size"],
            hf.get("tie_word_embeddings", True),
        ).validate()
    except (KeyError, TypeError) as error:
        raise RewritelabError(f"not a GPT-2 config: {error!r} is missing") from None


def load_model(
    directory: str | Path, device: torch.device | str = "cpu", allow_unverified: bool = False
) -> tuple[GPT, Tokenizer]:
    """The model and tokenizer saved by `save_model`, in eval mode on `device`. Weights that
    carry no digest to check (stripped, or written by another tool) are refused unless
    `allow_unverified`, and then loaded with a warning."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / WEIGHTS_FILE).is_file() or not (directory / CONFIG_FILE).is_file():
        raise RewritelabError(f"{directory} holds no saved model ({WEIGHTS_FILE}, {CONFIG_FILE})")
    tokenizer = Tokenizer.load(directory)
    try:
        hf = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        state = load_file(str(directory / WEIGHTS_FILE))
        with safe_open(str(directory / WEIGHTS_FILE), "pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, ValueError, SafetensorError) as error:
        raise RewritelabError(f"cannot load the model in {directory}: {error}") from None
    if not isinstance(hf, dict) or hf.get("model_type") != "gpt2":
        raise RewritelabError(f"{directory}/{CONFIG_FILE} is not a GPT-2 config")
    rows = hf.get("vocab_size")
    if not isinstance(rows, int) or rows < tokenizer.vocab_size:
        raise RewritelabError(
            f"{directory}: model vocabulary ({rows}) does not hold its "
            f"tokenizer's ({tokenizer.vocab_size})"
        )
    _check_digests(metadata, state, tokenizer, directory, allow_unverified)
    model = GPT(model_config_of(hf), tokenizer.vocab_size, tokenizer.bos_id, tokenizer.eos_id)
    _load_hf_state(model, state, directory)
    return model.to(device).eval(), tokenizer


def _check_digests(
    metadata: dict, state: dict, tokenizer: Tokenizer, where: Path, allow_unverified: bool
) -> None:
    """Refuse weights or a tokenizer changed since the model was saved, and weights without
    a digest unless `allow_unverified`."""
    if "weights_sha256" not in metadata:
        if not allow_unverified:
            raise RewritelabError(
                f"{where}/{WEIGHTS_FILE} carries no digest to verify (stripped, or saved by "
                "another tool): use --allow-unverified to load it anyway"
            )
        print(f"warning: {where}/{WEIGHTS_FILE} is not verified (no digest)", file=sys.stderr)
    if "weights_sha256" in metadata and metadata["weights_sha256"] != weights_digest(state):
        raise RewritelabError(f"{where}/{WEIGHTS_FILE} was changed after it was saved (digest)")
    if "tokenizer_sha256" in metadata and metadata["tokenizer_sha256"] != tokenizer_digest(
        tokenizer
    ):
        raise RewritelabError(f"{where}: the tokenizer is not the one the model was saved with")


def _load_hf_state(model: GPT, state: dict[str, torch.Tensor], where: Path) -> None:
    """Copy GPT-2-named weights into `model`, refusing missing, extra or misshapen tensors."""
    expected = hf_state_dict(model)
    state = {k: v for k, v in state.items() if not k.endswith(".attn.bias")}  # old HF buffers
    missing, unexpected = (
        sorted(expected.keys() - state.keys()),
        sorted(state.keys() - expected.keys()),
    )
    if missing or unexpected:
        raise RewritelabError(
            f"{where}/{WEIGHTS_FILE} does not match its config: missing "
            f"{missing[:3] or 'none'}, unexpected {unexpected[:3] or 'none'}"
        )
    ours = {}
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise RewritelabError(
                f"{where}/{WEIGHTS_FILE}: {name} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[name].shape)}"
            )
        ours[name] = tensor.t() if name.endswith(CONV1D_WEIGHTS) else tensor
    model.load_state_dict(ours, strict=not model.config.tie_embeddings)  # tied: wte's


class GPTTrainee:
    """What every trainee of our GPT shares (`rewritelab.training.loop.Trainee`): its summed
    loss, and weights saved and reloaded as a model directory. Subclasses set `model` and
    `tokenizer`."""

    final_dir = RUN_MODEL_DIR
    model: GPT
    tokenizer: Tokenizer

    @staticmethod
    def loss(model: GPT, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return model.loss(ids, targets, reduction="sum")

    def save(self, directory: Path) -> None:
        save_model(self.model, self.tokenizer, directory)

    def load(self, directory: Path) -> None:
        saved, _ = load_model(directory, self.model.device)
        self.model.load_state_dict(saved.state_dict())


def model_part(run_dir: str | Path, part: str = RUN_MODEL_DIR) -> Path | None:
    """`run_dir/part` once a model's config is written there, else None: a training run's final
    `model/` by default, or the `architecture/` a pretraining run writes before its first step."""
    directory = Path(run_dir) / part
    return directory if (directory / CONFIG_FILE).is_file() else None


def resolve_model_dir(path: str | Path) -> Path:
    """The model directory named by `path`: a model directory itself, or a run's final model."""
    path = Path(path)
    if not path.is_dir():
        raise RewritelabError(f"{path} does not exist")
    if (path / CONFIG_FILE).is_file():
        return path
    if final := model_part(path):
        return final
    raise RewritelabError(
        f"{path} holds no model: neither a model directory nor a finished run with {RUN_MODEL_DIR}/"
    )
