"""The GPT: a GPT-2 decoder trained from scratch (paper default: 6 layers, 4 heads, width 256).

Our own nanoGPT-style module rather than Hugging Face's `GPT2LMHeadModel`: on a 2-core CPU it
trains 1.5-1.7x faster (see benchmarks/bench_train.py), mostly by skipping the per-call
bookkeeping of the HF model and by computing the vocabulary head only where a target carries
loss. The architecture is exactly GPT-2's (pre-norm blocks, GELU, learned positions, tied
embeddings), and the parameter names are GPT-2's, so a saved model directory (config.json +
model.safetensors) opens as it is in `transformers.AutoModelForCausalLM` with the same logits.
Only the four projection matrices of each block are stored transposed, as HF's `Conv1D` keeps
them (in, out). Loading reads safetensors only; nothing is ever unpickled, and a file with a
missing, unexpected or misshapen tensor is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from rewritelab.core.errors import RewritelabError
from rewritelab.model.tokenizer import Tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
GENERATION_FILE = "generation_config.json"
RUN_CONFIG = "run_config.json"  # a run's resolved config, seeds and provenance
RUN_MODEL_DIR = "model"  # where a finished training run keeps its final model
RUN_ARCHITECTURE_DIR = "architecture"  # where a pretraining run keeps its shape (no weights)
IGNORE = -100  # target id that carries no loss
# GELU computed exactly (erf), as Hugging Face's "gelu", not GPT-2's tanh approximation
# ("gelu_new"): the two differ by < 1e-3, and on a CPU the tanh form runs 6x slower, a fifth of
# a training step of the small models (benchmarks/bench_train.py).
ACTIVATION = "gelu"
CONV1D_WEIGHTS = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)


@dataclass(frozen=True)
class ModelConfig:
    """Size of the GPT. `context` is the longest sequence (prompt + answer) it can hold.

    `vocab_size` is the number of rows of the token embedding and the output head: 0 means the
    tokenizer's vocabulary; a larger value pads it with ids that no text uses (their logits
    still take part in every softmax). On the CPU presets' 32-token vocabularies, padding to 64
    took E1's runs off the optimisation plateau where a third to two thirds of the seeds stayed
    (results/cpu/plateau/NOTES.md).
    """

    layers: int = 6
    heads: int = 4
    width: int = 256
    context: int = 256
    dropout: float = 0.0
    vocab_size: int = 0
    tie_embeddings: bool = True  # the output head shares the token embedding (GPT-2's)
    init: str = "gpt2"  # or "pytorch" (see INITS)

    def validate(self) -> ModelConfig:
        for name in ("layers", "heads", "width", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RewritelabError(f"model.{name} must be a positive integer, got {value!r}")
        size = self.vocab_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RewritelabError(f"model.vocab_size must be an integer >= 0, got {size!r}")
        if self.width % self.heads:
            raise RewritelabError(
                f"model.width ({self.width}) must be divisible by model.heads ({self.heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise RewritelabError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise RewritelabError(
                f"model.tie_embeddings must be true or false, got {self.tie_embeddings!r}"
            )
        if self.init not in INITS:
            raise RewritelabError(
                f"model.init must be one of {', '.join(INITS)}, got {self.init!r}"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# How fresh weights are drawn. "gpt2": every matrix and embedding N(0, 0.02), the residual
# projections scaled by 1/sqrt(2 * layers), biases 0 (GPT-2's, and Hugging Face's). "pytorch":
# each module's own `reset_parameters` (embeddings N(0, 1), linear layers uniform in
# +-1/sqrt(fan_in)), as models built from `torch.nn` layers start; with it, an untied head
# learns the multi-letter rules of the mastery ladder several times faster on a CPU
# (benchmarks/results/mastery.md).
INITS = ("gpt2", "pytorch")
KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (B, H, T, D)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads, self.dropout = config.heads, config.dropout
        self.c_attn = nn.Linear(config.width, 3 * config.width)
        self.c_proj = nn.Linear(config.width, config.width)
        self.resid_dropout = nn.Dropout(config.dropout)
        causal = torch.ones(config.context, config.context, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)  # (context, context)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, C = x.shape
        if past is not None and T > 1:
            raise ValueError("a cached forward takes one new token at a time")
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        if past is not None:  # decoding with a cache: the new tokens see every earlier one
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # A GPU wants `is_causal`. On a CPU an explicit mask measured 3-4x faster on our short
        # sequences on the AMD EPYC; on an AMX Xeon (torch 2.13) both take the flash kernel and
        # run alike. In bf16 the loop's precision sends CPU attention to the math kernel.
        causal = past is None and T > 1
        mask = self.causal[:T, :T] if causal and not x.is_cuda else None
        y = F.scaled_dot_product_attention(  # (B, H, T, D)
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.width, 4 * config.width)
        self.c_proj = nn.Linear(4 * config.width, config.width)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # exact GELU: see ACTIVATION


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.width)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.width)
        self.mlp = MLP(config)

    def forward(self, x, past=None):
        attended, present = self.attn(self.ln_1(x), past)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), present


class Transformer(nn.Module):
    """The body, named as GPT-2's `transformer` so weight names match Hugging Face's."""

    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, config.width)
        self.wpe = nn.Embedding(config.context, config.width)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(config.width)


class GPT(nn.Module):
    """GPT-2 language model over a rewritelab tokenizer's vocabulary (`tokens` ids), padded to
    `config.vocab_size` rows when that is set."""

    def __init__(self, config: ModelConfig, tokens: int, bos_id: int = 1, eos_id: int = 5):
        super().__init__()
        self.config, self.vocab_size = config.validate(), padded_vocab_size(config, tokens)
        self.bos_id, self.eos_id = bos_id, eos_id
        self.transformer = Transformer(config, self.vocab_size)
        self.lm_head = nn.Linear(config.width, self.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2
        if config.init == "gpt2":  # else the modules' own initialisation, drawn as built
            self._init_gpt2(config.layers)

    def _init_gpt2(self, layers: int) -> None:
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():  # GPT-2's scaled residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def hidden(
        self, ids: torch.Tensor, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """Final hidden states (B, T, C) of `ids` (B, T), and the keys/values for decoding."""
        start = 0 if cache is None else cache[0][0].shape[2]
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.transformer.drop(self.transformer.wte(ids) + self.transformer.wpe(positions))
        presents = []
        for i, block in enumerate(self.transformer.h):
            x, present = block(x, None if cache is None else cache[i])
            presents.append(present)
        return self.transformer.ln_f(x), presents

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V) at every position."""
        return self.lm_head(self.hidden(ids)[0])

    def loss(
        self, ids: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """Cross-entropy of `targets` (B, T - 1; IGNORE where no loss) given `ids` (B, T)."""
        logits = self(ids)[:, :-1]  # (B, T - 1, V)
        return F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction=reduction
        )

    def step_logits(self, ids: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        """Logits (B, V) of the token after `ids`, and the updated cache (greedy decoding)."""
        h, cache = self.hidden(ids, cache)
        return self.lm_head(h[:, -1]), cache


def padded_vocab_size(config: ModelConfig, tokens: int) -> int:
    """Rows of the embedding and head for a tokenizer of `tokens` ids under `config`."""
    if config.vocab_size and config.vocab_size < tokens:
        raise RewritelabError(
            f"model.vocab_size ({config.vocab_size}) is smaller than the tokenizer's "
            f"vocabulary ({tokens}); use 0 (the tokenizer's) or a larger value"
        )
    return config.vocab_size or tokens


def build_model(config: ModelConfig, tokenizer: Tokenizer, seed: int) -> GPT:
    """A freshly initialised GPT for `tokenizer`'s vocabulary; the same seed gives the same
    weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT(config, tokenizer.vocab_size, tokenizer.bos_id, tokenizer.eos_id)


def estimate_flops_per_token(config: ModelConfig, vocab_size: int, tokens: int) -> float:
    """Training FLOPs per token (forward + backward = 3x forward) of a sequence of `tokens`:
    6 x matmul parameters, plus attention's 12 x layers x width x tokens (nanoGPT's estimate)."""
    width, layers = config.width, config.layers
    matmul_parameters = layers * 12 * width * width + vocab_size * width
    return 6 * matmul_parameters + 12 * layers * width * tokens


def estimate_mfu(
    config: ModelConfig, vocab_size: int, tokens: int, tokens_per_s: float, peak_flops: float
) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s as a share of `peak_flops`."""
    return estimate_flops_per_token(config, vocab_size, tokens) * tokens_per_s / peak_flops


# ------------------------------------------------------------------ saving and loading


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
    tokenizer.save(directory)


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


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
