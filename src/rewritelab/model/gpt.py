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

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from rewritelab.core.errors import RewritelabError
from rewritelab.model.tokenizer import IGNORE, Tokenizer

RUN_CONFIG = "run_config.json"  # a run's resolved config, seeds and provenance
RUN_MODEL_DIR = "model"  # where a finished training run keeps its final model
RUN_ARCHITECTURE_DIR = "architecture"  # where a pretraining run keeps its shape (no weights)
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


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
