"""Benchmark: training throughput on a CPU, rewritelab's step against two references.

For two model settings, each at 1 and at 2 torch threads, measures the real (non-padding)
tokens/s of one training step (forward, backward, grad-norm clip at 1.0, AdamW) done by
  hf-eager        Hugging Face `GPT2LMHeadModel` with GPT-2 defaults (tanh GELU), eager
                  attention, fp32, inputs padded to the
                  longest in the batch, attention mask and labels passed the usual way (HF
                  shifts the labels and computes the loss), `torch.optim.AdamW` defaults;
  nanogpt-minimal a ~40-line nanoGPT-style GPT written below (SDPA attention, tied head,
                  cross-entropy on the answer tokens), independent of `rewritelab.model.gpt`;
  rewritelab      `rewritelab.training.loop.Loop.step` over `ScratchTrainee`'s own batches: the step
                  real training takes, without evaluation or checkpoints;
and, as quick extra rows, rewritelab's step with one candidate change each:
  + head at loss  the vocabulary head computed only at positions whose target carries loss
                  (through the trainee's loss hook, below), not at every position;
  + fused AdamW   `AdamW(fused=True)` instead of rewritelab's foreach AdamW;
  + torch.compile the loss compiled as the loop compiles it on CUDA (`dynamic=True`), on the
                  CPU (inductor's C++ kernels); alone, and with fused AdamW. Each worker
                  starts with an empty inductor cache, so "first step s" (the first step's
                  time, in every row) includes the whole compilation a first run pays (the
                  second compiled row reuses what the first compiled: its first step is not
                  a cold start);
  + bf16 autocast rewritelab's bf16 autocast, only on a CPU that computes bf16 natively
                  (AVX512-BF16 or AMX); its MFU is against a bf16 torch.mm ceiling measured
                  the same way (every other row, rewritelab's included, runs in fp32).
The settings: `cpu-preset` has the shape of experiments/e1.toml [presets.cpu] (4 layers, 4
heads, width 96, batch 64, two-letter rules in words of 6-10 letters: sequences of 19-27
tokens; every row keeps GPT-2's tied head and initialisation, which the preset changes but
the step's speed does not notice: an untied head adds one 64 x 96 product; until 2026-12-08
it was the first cpu preset's, 2 layers, width 64, batch 128, 21-token sequences, which a
train.json of that time names in its `settings`); `paper` is the paper's model (6 layers, 4
heads, width 256) on E1's lengths (|z| 1-50, |x| and |y| 1-20: sequences of 11-145 tokens,
mean ~86) at batch 64. All variants see the same batches, `ScratchTrainee.batch(step)` for
the same steps (length buckets of 50 batches, padded to the longest in the batch), built
inside the timed step. Every model is the same GPT-2 (tied embeddings; exact GELU but for
hf-eager) in fp32: rewritelab's bf16 autocast is off in every row but the bf16 one.

MFU: model FLOPs per token (`rewritelab.model.gpt.estimate_flops_per_token`: 6 x matmul
parameters + attention at the mean real sequence length; one number for every variant, so
MFU ranks exactly as tokens/s) times real tokens/s, over a ceiling measured in the same
process at the same thread count: the best GFLOP/s of fp32 `torch.mm` on 1024 x 1024 x 1024
and on the model's MLP shape (B*T, C) x (C, 4C), before and after the variants. "x HF" is
tokens/s over hf-eager's in the same setting and thread count; "x minimal" is tokens/s over
nanogpt-minimal's, with a 95% interval from resampling the timed steps in pairs (each step's
two times share a batch and a moment of the machine's load), so that a ratio near 1 reads as
what it is: a tie within the run's own spread, or not.

Each (setting, threads) runs in a fresh worker process of this script (the interop thread
count can be set only once per process); the workers run one after another. A worker first
sets glibc's malloc as every rewritelab training process does (`keep_freed_memory`: freed
activations kept for the next step, not handed back to the kernel); it applies to every
variant of the worker alike. One more worker, the cpu-preset at 1 thread with glibc's default
malloc (rows "cpu-preset, default malloc"), measures what that setting is worth. Within a
worker the variants take turns, one step each in a rotating order, first the warm-up steps
(untimed), then the timed ones, so that a change in the machine's load falls on all of them
alike. Default steps: cpu-preset 5 warm-up + 150 timed (~50 ms a step); paper 2 + 6 (2-4 s a
step on 2 cores: 30 timed steps of five variants would take 15 minutes); `--steps` and
`--warmup` set both. The load average at the start and end of each worker is recorded: on a
shared 2-core machine the numbers are only as good as the load they ran under, and the
2-thread rows mean nothing unless the machine is otherwise idle.

    .venv/bin/python benchmarks/bench_train.py              # the full table (~9 minutes idle)
    .venv/bin/python benchmarks/bench_train.py --steps 5    # a quick check of the plumbing

Writes benchmarks/results/train.json (machine, load, versions, date, settings, every
measurement) and benchmarks/results/train.md (the table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results"
THREADS = (1, 2)
BUCKET_BATCHES = 50  # rewritelab's default: batches are cut from length buckets this wide

# Model settings. Data lengths are those of rewritelab's dataset spec (|z|, |x|, |y|).
SETTINGS = {
    "cpu-preset": {  # experiments/e1.toml [presets.cpu]'s shape: two-letter rules, |z| 6-10
        "model": {"layers": 4, "heads": 4, "width": 96, "context": 32},
        "batch_size": 64,
        "warmup_steps": 5,
        "timed_steps": 150,  # ~0.1 s a step
        "data": {
            "alphabet": "abcdefghijklmnopqrstuvwxyz",
            "train": {
                "instructions": 256,
                "input_length": [6, 10],
                "pattern_length": [2, 2],
                "replacement_length": [2, 2],
                "near_miss_share": 0.5,
            },
            "test": {"instructions": 20, "examples_per_instruction": 2},
        },
    },
    "paper": {  # the paper's model on E1's lengths: sequences of 11-145 tokens, mean ~86
        "model": {"layers": 6, "heads": 4, "width": 256, "context": 160},
        "batch_size": 64,
        "warmup_steps": 2,
        "timed_steps": 6,  # 2-4 s a step on 2 cores: 30 would take 15 minutes
        "data": {
            "alphabet": "abcdefghijklmnopqrstuvwxyz",
            "train": {
                "instructions": 1000,
                "input_length": [1, 50],
                "pattern_length": [1, 20],
                "replacement_length": [1, 20],
            },
            "test": {"instructions": 20, "examples_per_instruction": 2},
        },
    },
}
IGNORE = -100  # target that carries no loss (rewritelab.model.tokenizer.IGNORE)


# ------------------------------------------------------------------ the nanoGPT reference


class MiniAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.heads, C // self.heads).transpose(1, 2)
            for t in self.qkv(x).split(C, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MiniBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(width), MiniAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class MiniGPT(nn.Module):
    """GPT-2 in a few lines: learned positions, pre-norm blocks, tied vocabulary head."""

    def __init__(self, vocab_size: int, layers: int, heads: int, width: int, context: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, width), nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(MiniBlock(width, heads) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.wte.weight
        for parameter in self.parameters():
            if parameter.dim() >= 2:
                nn.init.normal_(parameter, std=0.02)

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of `targets` (B, T - 1; IGNORE = no loss) given `ids` (B, T)."""
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))  # (B, T, C)
        logits = self.head(self.ln_f(self.blocks(x)))[:, :-1]  # (B, T - 1, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


# ------------------------------------------------------------------ the variants
# Each builds its model and returns `step(index) -> (loss, real tokens)`.

Step = Callable[[int], tuple[torch.Tensor, int]]


def hf_step(trainee) -> Step:
    """Plain Hugging Face: GPT2LMHeadModel of the same size with GPT-2's defaults (tanh GELU
    `gelu_new`, eager attention), fp32, attention mask and labels passed the usual way."""
    from transformers import AutoModelForCausalLM, GPT2Config

    from rewritelab.model.files import hf_config

    tokenizer = trainee.tokenizer
    hf = hf_config(trainee.config.model, tokenizer.vocab_size, tokenizer.bos_id, tokenizer.eos_id)
    hf["activation_function"] = "gelu_new"  # GPT-2's default; ours computes the exact GELU
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(**hf), attn_implementation="eager")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(index: int) -> tuple[torch.Tensor, int]:
        [(ids, targets)], real_tokens = trainee.batch(index)
        ids = torch.from_numpy(ids)
        labels = torch.cat([torch.full_like(ids[:, :1], IGNORE), torch.from_numpy(targets)], 1)
        attention_mask = (ids != tokenizer.pad_id).long()
        loss = model(input_ids=ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach(), real_tokens

    return step


def minimal_step(trainee) -> Step:
    """The nanoGPT-style reference above, with `torch.optim.AdamW` defaults."""
    size = trainee.config.model
    torch.manual_seed(0)
    model = MiniGPT(trainee.tokenizer.vocab_size, size.layers, size.heads, size.width, size.context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(index: int) -> tuple[torch.Tensor, int]:
        [(ids, targets)], real_tokens = trainee.batch(index)
        loss = model.loss(torch.from_numpy(ids), torch.from_numpy(targets))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach(), real_tokens

    return step


def head_at_loss_positions(model, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """rewritelab's summed answer loss, with the vocabulary head applied only where a target
    carries loss (the candidate change measured by the "+ head at loss" row)."""
    hidden = model.hidden(ids)[0][:, :-1]  # (B, T - 1, C)
    scored = targets != IGNORE  # (B, T - 1)
    logits = model.lm_head(hidden[scored])  # (scored tokens, V)
    return F.cross_entropy(logits, targets[scored], reduction="sum")


def rewritelab_step(trainee, *changes: str) -> Step:
    """`Loop.step` of rewritelab's own loop over the trainee; each of `changes` swaps one
    piece."""
    from rewritelab.core.hardware import precision
    from rewritelab.training.loop import Loop, learning_rate
    from rewritelab.training.runs import RunDirectory

    if "head at loss" in changes:
        trainee.loss = head_at_loss_positions  # the Trainee protocol's loss hook
    config = trainee.config
    loop = Loop(trainee, config, RunDirectory(Path(tempfile.gettempdir()) / "unused"), 10**6)
    if "bf16 autocast" in changes:
        loop.precision = partial(precision, torch.device("cpu"), torch.bfloat16)
    if "torch.compile" in changes:  # as the loop compiles on CUDA (there: config.compile)
        loop.loss = torch.compile(trainee.loss, dynamic=True)
    if "fused AdamW" in changes:
        groups = [
            {"params": g["params"], "weight_decay": g["weight_decay"]}
            for g in loop.optimizer.param_groups
        ]
        loop.optimizer = torch.optim.AdamW(
            groups, lr=config.learning_rate, betas=(0.9, 0.95), fused=True
        )
    trainee.model.train()
    return lambda index: loop.step(index, learning_rate(index, config, 10**6))


VARIANTS = {
    "hf-eager": hf_step,
    "nanogpt-minimal": minimal_step,
    "rewritelab": rewritelab_step,
    "rewritelab + head at loss": lambda trainee: rewritelab_step(trainee, "head at loss"),
    "rewritelab + fused AdamW": lambda trainee: rewritelab_step(trainee, "fused AdamW"),
    "rewritelab + torch.compile": lambda trainee: rewritelab_step(trainee, "torch.compile"),
    "rewritelab + fused AdamW + torch.compile": lambda trainee: rewritelab_step(
        trainee, "fused AdamW", "torch.compile"
    ),
    "rewritelab + bf16 autocast": lambda trainee: rewritelab_step(trainee, "bf16 autocast"),
}
MALLOC_COMPARED = "cpu-preset"  # measured again with glibc's default malloc, at 1 thread
BF16_VARIANT = "rewritelab + bf16 autocast"  # measured only where the CPU computes bf16
MINIMAL = "nanogpt-minimal"  # the reference of the "x minimal" column
RATIO_REPLICATES = 2000  # bootstrap replicates of its interval


def time_interleaved(steps: dict[str, Step], warmup: int, timed: int) -> dict[str, dict]:
    """Real tokens/s of each variant over `timed` steps after `warmup` untimed ones. The
    variants take turns, one step each, in an order rotated every round, so that a change in
    the machine's load during the run falls on all of them alike."""
    names = list(steps)
    first_loss, first_s = {}, {}
    step_s, tokens = {name: [] for name in names}, dict.fromkeys(names, 0)
    for index in range(warmup + timed):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            loss, real_tokens = steps[name](index)
            elapsed_s = time.perf_counter() - start
            first_loss.setdefault(name, float(loss))
            first_s.setdefault(name, elapsed_s)  # the one-off cost: torch.compile's warm-up
            if index >= warmup:
                step_s[name].append(elapsed_s)
                tokens[name] += real_tokens
    results = {}
    for name in names:
        times = sorted(step_s[name])
        results[name] = {
            "tokens_per_s": tokens[name] / sum(times),
            "step_ms_median": 1000 * times[len(times) // 2],
            "step_ms_min": 1000 * times[0],
            "first_loss": first_loss[name],  # ~ ln(vocab) for every variant: a sanity check
            "first_step_s": first_s[name],
            "x_minimal": speed_ratio(step_s[name], step_s[MINIMAL]),
            "step_s": step_s[name],  # in step order: the same batches for every variant
        }
    return results


def speed_ratio(times: list[float], reference: list[float]) -> dict[str, float]:
    """Tokens/s over the reference's on the same batches (so: its total time over ours), with
    a 95% percentile interval from resampling the timed steps as pairs (a step's two times
    share the batch and the moment's load)."""
    times, reference = np.asarray(times), np.asarray(reference)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(times), size=(RATIO_REPLICATES, len(times)))
    replicates = reference[picks].sum(axis=1) / times[picks].sum(axis=1)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return {"ratio": reference.sum() / times.sum(), "low": float(low), "high": float(high)}


# ------------------------------------------------------------------ the matmul ceiling


def matmul_gflops(
    m: int, k: int, n: int, seconds: float = 0.5, dtype: torch.dtype = torch.float32
) -> float:
    """Best GFLOP/s of torch.mm (m, k) x (k, n) in `dtype` over repeats filling `seconds`."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    best, deadline = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def matmul_ceiling(mlp_shape: tuple[int, int, int]) -> dict[str, float]:
    """GFLOP/s of a square matmul and of the model's MLP matmul (B*T, C) x (C, 4C)."""
    return {
        "1024x1024x1024": matmul_gflops(1024, 1024, 1024),
        "x".join(map(str, mlp_shape)): matmul_gflops(*mlp_shape),
    }


# ------------------------------------------------------------------ one worker process


def worker(
    setting_name: str, threads: int, data_dir: Path, warmup: int, steps: int, malloc: str
) -> dict:
    """Every variant and the ceiling of one (setting, threads), in this fresh process. The
    ceiling is measured before and after the variants and the best is kept: on a shared
    machine a lower one only means something else ran at that moment."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    from rewritelab.core.hardware import cpu_has_bf16, keep_freed_memory
    from rewritelab.model.gpt import ModelConfig, estimate_flops_per_token, estimate_mfu
    from rewritelab.training.scratch import ScratchTrainee
    from rewritelab.training.scratch_config import train_config_from_dict

    if malloc == "kept":
        keep_freed_memory()

    load_start = os.getloadavg()
    setting = SETTINGS[setting_name]
    config = train_config_from_dict(
        {
            "batch_size": setting["batch_size"],
            "bucket_batches": BUCKET_BATCHES,
            "model": setting["model"],
            "device": "cpu",
            "threads": threads,
            "eval_examples": 8,
            "warmup_steps": warmup,
            "bf16": False,
        }
    )
    probe = ScratchTrainee(config, data_dir, torch.device("cpu"))
    timed = [probe.batch(index) for index in range(warmup, warmup + steps)]
    sequences = sum(len(ids) for [(ids, _)], _ in timed)
    real = sum(tokens for _, tokens in timed)
    padded = sum(ids.size for [(ids, _)], _ in timed)
    mean_length = real / sequences
    width = setting["model"]["width"]
    mlp_shape = (round(setting["batch_size"] * mean_length), width, 4 * width)
    ceiling_before = matmul_ceiling(mlp_shape)
    model_config, vocab_size, tokens = (
        ModelConfig(**setting["model"]),
        probe.tokenizer.vocab_size,
        round(mean_length),
    )
    flops_per_token = estimate_flops_per_token(model_config, vocab_size, tokens)
    bf16 = cpu_has_bf16()
    bf16_before = matmul_gflops(1024, 1024, 1024, dtype=torch.bfloat16) if bf16 else None
    steps_of = {  # each variant with its own trainee: a fresh model, the same batches
        name: make_step(ScratchTrainee(config, data_dir, torch.device("cpu")))
        for name, make_step in VARIANTS.items()
        if bf16 or name != BF16_VARIANT
    }
    measured = time_interleaved(steps_of, warmup, steps)
    ceiling_after = matmul_ceiling(mlp_shape)
    ceiling = max([*ceiling_before.values(), *ceiling_after.values()])
    bf16_ceiling = (
        max(bf16_before, matmul_gflops(1024, 1024, 1024, dtype=torch.bfloat16)) if bf16 else None
    )
    for name, result in measured.items():
        result["model_gflops_per_s"] = flops_per_token * result["tokens_per_s"] / 1e9
        peak = (bf16_ceiling if name == BF16_VARIANT else ceiling) * 1e9
        result["mfu"] = estimate_mfu(model_config, vocab_size, tokens, result["tokens_per_s"], peak)
    return {
        "setting": setting_name,
        "threads": threads,
        "malloc": malloc,
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "warmup_steps": warmup,
        "timed_steps": steps,
        "cpu_computes_bf16": bf16,
        "bf16_ceiling_gflops_per_s": bf16_ceiling,
        "mean_tokens_per_sequence": mean_length,
        "padding_share": 1 - real / padded,
        "flops_per_token": flops_per_token,
        "ceiling_gflops_per_s": ceiling,
        "matmul_gflops_per_s_before": ceiling_before,
        "matmul_gflops_per_s_after": ceiling_after,
        "variants": measured,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }


def run_worker(
    setting: str, threads: int, data_dir: Path, warmup: int, steps: int, malloc: str = "kept"
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        setting,
        "--threads",
        str(threads),
        "--data",
        str(data_dir),
        "--warmup",
        str(warmup),
        "--steps",
        str(steps),
        "--malloc",
        malloc,
    ]
    with tempfile.TemporaryDirectory() as cache:  # torch.compile starts cold, as a first run
        environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        child = subprocess.run(command, capture_output=True, text=True, env=environment)
    if child.returncode:
        sys.exit(f"worker {setting} x {threads} thread(s) failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ data, table, provenance


def make_dataset(setting_name: str, directory: Path, examples_needed: int) -> Path:
    """The setting's training data: whole length buckets, at least `examples_needed`."""
    from rewritelab.tasks.generate import generate_dataset
    from rewritelab.tasks.spec_files import spec_from_dict

    data = SETTINGS[setting_name]["data"]
    chunk = SETTINGS[setting_name]["batch_size"] * BUCKET_BATCHES
    examples = chunk * -(-examples_needed // chunk)
    spec = {
        "seed": 0,
        "alphabet": data["alphabet"],
        "seen_test_examples": 16,
        "train": {**data["train"], "examples": examples},
        "test": data["test"],
    }
    generate_dataset(spec_from_dict(spec), directory / setting_name)
    return directory / setting_name


def markdown_table(workers: list[dict]) -> str:
    lines = [
        "| setting | threads | variant | real tokens/s | ms/step (median) | first step s "
        "| model GFLOP/s | MFU | x HF | x minimal (95% CI) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workers:
        setting = w["setting"] + (", default malloc" if w.get("malloc") == "default" else "")
        matmuls = {
            k: max(v, w["matmul_gflops_per_s_after"][k])
            for k, v in w["matmul_gflops_per_s_before"].items()
        }
        shapes = ", ".join(f"{shape}: {gflops:.0f}" for shape, gflops in matmuls.items())
        load = f"load {w['load_average_start'][0]:.1f}-{w['load_average_end'][0]:.1f}"
        lines.append(
            f"| {setting} | {w['threads']} | torch.mm ceiling ({shapes}; "
            f"{w['warmup_steps']}+{w['timed_steps']} steps; {load}) | | | | "
            f"{w['ceiling_gflops_per_s']:.1f} | 100% | | |"
        )
        if w["bf16_ceiling_gflops_per_s"]:
            lines.append(
                f"| {setting} | {w['threads']} | bf16 torch.mm ceiling (1024x1024x1024; "
                f"for the bf16 row) | | | | {w['bf16_ceiling_gflops_per_s']:.1f} | 100% | | |"
            )
        hf = w["variants"]["hf-eager"]["tokens_per_s"]
        for name, v in w["variants"].items():
            ratio = v["x_minimal"]
            lines.append(
                f"| {setting} | {w['threads']} | {name} | {v['tokens_per_s']:,.0f} | "
                f"{v['step_ms_median']:.1f} | {v['first_step_s']:.1f} | "
                f"{v['model_gflops_per_s']:.1f} | "
                f"{100 * v['mfu']:.1f}% | {v['tokens_per_s'] / hf:.2f} | "
                f"{ratio['ratio']:.2f} ({ratio['low']:.2f}-{ratio['high']:.2f}) |"
            )
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="timed steps per variant (default: per setting)")
    parser.add_argument(
        "--warmup", type=int, help="untimed steps before them (default: per setting)"
    )
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    parser.add_argument("--worker", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--malloc", choices=["kept", "default"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        [threads] = args.threads
        measured = worker(args.worker, threads, args.data, args.warmup, args.steps, args.malloc)
        print(json.dumps(measured))
        return
    import transformers

    from rewritelab.core.version import __version__
    from rewritelab.training.runs import git_hash

    load_start, started = os.getloadavg(), time.perf_counter()
    workers = []
    with tempfile.TemporaryDirectory() as scratch:
        for setting in args.settings:
            warmup = args.warmup if args.warmup is not None else SETTINGS[setting]["warmup_steps"]
            steps = args.steps or SETTINGS[setting]["timed_steps"]
            data_dir = make_dataset(setting, Path(scratch), warmup + steps)
            for threads in args.threads:
                print(f"measuring {setting} at {threads} thread(s)...", file=sys.stderr)
                workers.append(run_worker(setting, threads, data_dir, warmup, steps))
            if setting == MALLOC_COMPARED and 1 in args.threads:
                print(
                    f"measuring {setting} at 1 thread with glibc's default malloc...",
                    file=sys.stderr,
                )
                workers.append(run_worker(setting, 1, data_dir, warmup, steps, "default"))
    table = markdown_table(workers)
    load_end = os.getloadavg()
    result = {
        "benchmark": "train",
        "command": " ".join(["python", "benchmarks/bench_train.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "machine": {
            "nproc": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
        },
        "load_average_start": load_start,
        "load_average_end": load_end,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "rewritelab": __version__,
            "git_hash": git_hash(),
        },
        "threads": args.threads,
        "settings": {name: SETTINGS[name] for name in args.settings},
        "workers": workers,
    }
    header = (
        f"{result['date']}, {result['machine']['cpu_model']} ({result['machine']['nproc']} "
        f"cores), torch {torch.__version__}, warm-up + timed steps per variant as in each "
        f"ceiling row, load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end"
    )
    print(f"\n{header}\n\n{table}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "train.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    print(f"\nwritten to {args.out / 'train.json'} and {args.out / 'train.md'}")


if __name__ == "__main__":
    main()
