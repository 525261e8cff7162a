"""Benchmark: training and evaluation throughput of our trainer against a plain HF loop.

On one generated dataset, with the same model size and batch size, measures
- training throughput in real (non-padding) tokens/s of `rewritelab.train.train` (length
  buckets, SDPA attention, no per-step host sync; bf16 + torch.compile on CUDA), and of a plain
  PyTorch loop over Hugging Face `GPT2LMHeadModel` with default settings (fp32, eager
  attention, every sequence padded to the longest in the dataset, attention mask and labels passed
  the usual way);
- evaluation throughput in examples/s of the fast path and the generate path.
Each training measurement skips a warm-up window (compilation, allocator) and times the next
one. Prints a table and writes JSON (device, versions, date) to benchmarks/results/.

    python benchmarks/bench_train.py --preset cpu     # small, minutes on 2 CPU cores
    python benchmarks/bench_train.py --preset gpu     # paper model, E1 lengths, 10^5 test
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import transformers
from rewritelab.train_config import train_config_from_dict

from rewritelab.batches import encode_split
from rewritelab.datasets import generate_dataset
from rewritelab.evaluate import fast_verdicts, generate_answers
from rewritelab.model import build_model, load_model, pick_device
from rewritelab.spec import spec_from_dict
from rewritelab.tokenizer import Tokenizer, loss_mask
from rewritelab.train import train

RESULTS = Path(__file__).parent / "results"

PRESETS = {
    "cpu": {  # the default (E1) lengths, a small model
        "data": {
            "train": {"instructions": 100, "examples": 20_000},
            "test": {"instructions": 100, "examples_per_instruction": 20},
        },
        "model": {"layers": 2, "heads": 4, "width": 128, "context": 168},
        "batch_size": 64,
        "warmup_steps": 10,
        "measured_steps": 40,
    },
    "gpu": {
        "data": {
            "train": {"instructions": 1000, "examples": 200_000},
            "test": {"instructions": 1000, "examples_per_instruction": 100},
        },
        "model": {"layers": 6, "heads": 4, "width": 256, "context": 168},
        "batch_size": 512,
        "warmup_steps": 30,
        "measured_steps": 200,
    },
}


def ours_tokens_per_s(preset: dict, data: Path, scratch: Path, device: str) -> float:
    """Real tokens/s of `train`, over the window after the warm-up window."""
    config = train_config_from_dict(
        {
            "max_steps": preset["warmup_steps"] + preset["measured_steps"],
            "eval_every": preset["warmup_steps"],
            "eval_examples": 256,
            "batch_size": preset["batch_size"],
            "model": preset["model"],
            "device": device,
        }
    )
    final = train(config, data, scratch / "run", progress=False)
    return final["tokens_per_s"]


def baseline_tokens_per_s(preset: dict, data: Path, device: torch.device) -> float:
    """Real tokens/s of a plain loop over HF GPT2LMHeadModel: fp32, eager, padded to context."""
    tokenizer = Tokenizer("abcdefghijklmnopqrstuvwxyz")
    split = encode_split(data, "train", tokenizer)
    config = train_config_from_dict({"model": preset["model"]})
    model = build_model(config.model, tokenizer, seed=0, attention="eager").to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    width, batch_size = int(split.lengths.max()), preset["batch_size"]  # longest in the data
    rng = np.random.default_rng(0)
    tokens, start = 0, 0.0
    for step in range(preset["warmup_steps"] + preset["measured_steps"]):
        if step == preset["warmup_steps"]:
            _sync(device)
            tokens, start = 0, time.perf_counter()
        indices = rng.choice(len(split), batch_size, replace=False)
        lengths = split.lengths[indices]
        ids = np.full((batch_size, width), tokenizer.pad_id, dtype=np.int64)
        for row, i in enumerate(indices.tolist()):
            ids[row, : lengths[row]] = split.tokens[split.offsets[i] : split.offsets[i + 1]]
        labels = np.full_like(ids, -100)
        labels[:, 1:] = np.where(
            loss_mask(split.prompt_lengths[indices], lengths, width), ids[:, 1:], -100
        )
        attention = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        batch = {
            k: torch.from_numpy(v).to(device)
            for k, v in {"input_ids": ids, "attention_mask": attention, "labels": labels}.items()
        }
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(lengths.sum())
    _sync(device)
    return tokens / (time.perf_counter() - start)


def evaluation_examples_per_s(run: Path, data: Path, device: torch.device) -> dict:
    """Examples/s of the fast and generate paths on the whole test split."""
    model, tokenizer = load_model(run / "model", device)
    split = encode_split(data, "test", tokenizer)
    fast_verdicts(model, split, tokenizer)  # warm-up
    _sync(device)
    start = time.perf_counter()
    accuracy = fast_verdicts(model, split, tokenizer).mean()
    _sync(device)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    generate_answers(model, split, tokenizer)
    _sync(device)
    generate_s = time.perf_counter() - start
    return {
        "test_examples": len(split),
        "fast_examples_per_s": len(split) / fast_s,
        "fast_seconds": fast_s,
        "generate_examples_per_s": len(split) / generate_s,
        "generate_seconds": generate_s,
        "test_accuracy_of_benchmarked_model": float(accuracy),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    preset, device = PRESETS[args.preset], pick_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = scratch / "data"
        generate_dataset(spec_from_dict({"seed": 0, **preset["data"]}), data)
        ours = ours_tokens_per_s(preset, data, scratch, args.device)
        baseline = baseline_tokens_per_s(preset, data, device)
        evaluation = evaluation_examples_per_s(scratch / "run", data, device)
    result = {
        "preset": args.preset,
        "settings": preset,
        "train_tokens_per_s": {"rewritelab": ours, "hf_baseline": baseline},
        "speedup": ours / baseline,
        "evaluation": evaluation,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"\n{'measure':<34}{'value':>14}")
    rows = [
        ("train tokens/s, rewritelab", ours),
        ("train tokens/s, HF baseline", baseline),
        ("speed-up", ours / baseline),
        ("eval examples/s, fast path", evaluation["fast_examples_per_s"]),
        ("eval examples/s, generate path", evaluation["generate_examples_per_s"]),
        (f"eval seconds, fast ({evaluation['test_examples']} ex.)", evaluation["fast_seconds"]),
    ]
    for name, value in rows:
        print(f"{name:<34}{value:>14,.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"train-{args.preset}-{device.type}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
