"""Fine-tuning pretrained causal LMs on rewrite instructions (paper E6): LoRA or full.

The story of `finetune`: load the base model and its tokenizer (a local directory, or a
Hugging Face id found in the local cache), check that the tokenizer can write the dataset's
words, tokenise the splits with a prompt template (`rewritelab.prompts`), wrap the model
with a LoRA adapter (`peft`) unless every weight is to train, then take AdamW steps on
batches that are a pure function of (seed, step), with loss on the answer tokens only and
gradient accumulation over micro-batches. Evaluation points and checkpoints are written as
in from-scratch training (`rewritelab.checkpoint.RunDirectory`), so a killed run resumes.

Accuracy uses the from-scratch evaluator's definitions and breakdowns: greedy decoding with
a KV cache (Hugging Face `generate`, left-padded batches) compared as text with the exact
answer; or, when the tokenizer writes every gold answer canonically, the teacher-forced fast
path of `rewritelab.evaluate`.

Run directory:
    run_config.json    resolved config, base, template, target modules, seeds, versions
    metrics.jsonl      one line per evaluation point
    checkpoints/       step-N/ (adapter or model + tokenizer + optimizer state) and `latest`
    adapter/           the final LoRA adapter (peft) + tokenizer       (method = "lora")
    model/             the final fine-tuned model + tokenizer          (method = "full")
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rewritelab.batches import EncodedSplit, check_dataset, dataset_alphabet, to_device
from rewritelab.checkpoint import CHECKPOINTS, LATEST, OPTIMIZER, RUN_CONFIG, STATE, RunDirectory
from rewritelab.errors import RewritelabError
from rewritelab.evaluate import breakdown, fast_verdicts, write_predictions
from rewritelab.finetune_config import FinetuneConfig
from rewritelab.prompts import (
    CharCodec,
    Codec,
    HFCodec,
    answer_text,
    check_codec,
    concatenation_is_canonical,
    encode_dataset_split,
    is_char_tokenizer_dir,
    resolve_template,
)
from rewritelab.tokenizer import Tokenizer
from rewritelab.train import IGNORE, Batches, eval_subset, learning_rate
from rewritelab.train_config import seed_of

ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
GENERATE_SLACK = 8  # tokens past the gold answer a generated answer may use


# ------------------------------------------------------------------ loading


def load_base(base: str | Path, config: FinetuneConfig, device: torch.device):
    """(model, codec) of a base model: a local directory, or a Hugging Face id from the local
    cache (or the Hub with `allow_download`). Refused in one line when it cannot be loaded."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory = Path(base)
    local = directory.is_dir()
    hub = {"local_files_only": not config.allow_download}
    try:
        model_config = AutoConfig.from_pretrained(str(base), **hub)
        if local and is_char_tokenizer_dir(directory):
            codec = CharCodec(Tokenizer.load(directory))
        else:
            codec = HFCodec(AutoTokenizer.from_pretrained(str(base), **hub), str(base))
        if config.reinitialize:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_of(config.seed, "model_init"))
                model = AutoModelForCausalLM.from_config(model_config)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                str(base), **hub, **_load_options(config, device)
            )
    except (OSError, ValueError, KeyError) as error:
        where = "no such directory, and " if not local else ""
        hint = "" if config.allow_download else " (allow_download = true fetches a Hub id)"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise RewritelabError(f"cannot load base model {base}: {where}{first_line}{hint}") from None
    if not config.load_in_8bit:
        model = model.to(device)
    _check_vocabulary(model, codec, str(base))
    return model, codec


def _load_options(config: FinetuneConfig, device: torch.device) -> dict:
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


def attach_lora(model, config: FinetuneConfig):
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(config.seed, "model_init"))
            return get_peft_model(model, lora)
    except ValueError as error:
        raise RewritelabError(f"cannot attach LoRA to {targets}: {error}") from None


def load_finetuned(run_dir: str | Path, device: str = "auto", merged_precision: bool = False):
    """(model, codec, template) of a finished fine-tuning run, in eval mode.

    A LoRA run is its base plus the saved adapter; `merged_precision` loads the base without
    8-bit quantisation (needed to merge)."""
    from peft import PeftModel

    from rewritelab.model import pick_device

    run_dir = Path(run_dir)
    recorded = _recorded(run_dir)
    config = FinetuneConfig(**recorded["config"])
    if merged_precision:
        config = FinetuneConfig(**{**config.to_dict(), "load_in_8bit": False})
    target = pick_device(device)
    final = run_dir / (ADAPTER_DIR if config.method == "lora" else MODEL_DIR)
    if not final.is_dir():
        raise RewritelabError(f"{run_dir} is not a finished fine-tuning run (no {final.name}/)")
    if config.method == "full":
        model, codec = load_base(final, _plain(config), target)
    else:
        base, codec = load_base(recorded["base"], config, target)
        model = PeftModel.from_pretrained(base, final)
    return model.eval(), codec, recorded["template"]


def _recorded(run_dir: Path) -> dict:
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
        raise RewritelabError(f"{run_dir} was fully fine-tuned: its {MODEL_DIR}/ is the model")
    merged = model.merge_and_unload()
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(partial, safe_serialization=True)
    codec.save(partial)
    os.replace(partial, out_dir)
    return out_dir


# ------------------------------------------------------------------ evaluation


@torch.no_grad()
def generate_answers(model, split: EncodedSplit, codec: Codec, batch_size: int) -> list[list[int]]:
    """Per example, the greedy answer ids (KV cache, left-padded batches of similar prompt
    length), cut after the end token."""
    from transformers import GenerationConfig

    device = model.device
    answers: list[list[int]] = [[] for _ in range(len(split))]
    order = np.argsort(split.prompt_lengths, kind="stable")
    answer_lengths = split.lengths - split.prompt_lengths
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        width = int(split.prompt_lengths[indices].max())
        ids = np.full((len(indices), width), codec.pad_id, dtype=np.int64)  # (B, P) left-padded
        mask = np.zeros((len(indices), width), dtype=np.int64)
        for row, i in enumerate(indices.tolist()):
            length = int(split.prompt_lengths[i])
            ids[row, width - length :] = split.tokens[split.offsets[i] :][:length]
            mask[row, width - length :] = 1
        generation = GenerationConfig(
            max_new_tokens=int(answer_lengths[indices].max()) + GENERATE_SLACK,
            do_sample=False,
            num_beams=1,
            pad_token_id=codec.pad_id,
            eos_token_id=codec.eos_id,
        )
        out = model.generate(
            input_ids=to_device(ids, device),
            attention_mask=to_device(mask, device),
            generation_config=generation,
        )
        for i, row in zip(indices.tolist(), out[:, width:].tolist(), strict=True):
            answers[i] = row[: row.index(codec.eos_id) + 1] if codec.eos_id in row else row
    return answers


def text_verdicts(answers: list[list[int]], split: EncodedSplit, codec: Codec) -> np.ndarray:
    """Per example: did the model end its answer, and is the answer text the exact output?"""
    return np.array(
        [
            bool(answer)
            and answer[-1] == codec.eos_id
            and answer_text(codec, answer) == r["output"]
            for answer, r in zip(answers, split.records, strict=True)
        ],
        dtype=bool,
    )


def choose_path(path: str, codec: Codec, template: str, split: EncodedSplit) -> str:
    """`fast` when asked or allowed (canonical tokenisation of every answer), else generate."""
    if path == "auto":
        canonical = concatenation_is_canonical(codec, template, split.records)
        return "fast" if canonical else "generate"
    if path == "fast" and not concatenation_is_canonical(codec, template, split.records):
        raise RewritelabError(
            "the fast path needs a tokenizer that writes prompt + answer as prompt ids + answer "
            "ids; this one does not: use the generate path"
        )
    return path


def verdicts_of(
    model, split: EncodedSplit, codec: Codec, path: str, batch_size: int
) -> tuple[np.ndarray, list[list[int]] | None]:
    """Exact-match verdicts on `split` by the (resolved) evaluation path, and the answers."""
    if path == "fast":
        return fast_verdicts(model, split, codec, batch_size), None
    answers = generate_answers(model, split, codec, batch_size)
    return text_verdicts(answers, split, codec), answers


def evaluate_finetuned(
    run_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    path: str = "auto",
    predictions_out: str | Path | None = None,
    batch_size: int = 0,
    device: str = "auto",
) -> dict:
    """Accuracy of a finished fine-tuning run on one split, broken down as for from-scratch
    runs (`rewritelab.evaluate.breakdown`); written to `<run_dir>/eval-<split>-<path>.json`."""
    model, codec, template = load_finetuned(run_dir, device)
    manifest = check_dataset(data_dir)
    check_codec(codec, template, dataset_alphabet(manifest), str(run_dir))
    examples = encode_dataset_split(codec, template, data_dir, split)
    path = choose_path(path, codec, template, examples)
    batch_size = batch_size or _eval_batch_size(model.device)
    verdicts, answers = verdicts_of(model, examples, codec, path, batch_size)
    metrics = {
        "model": str(run_dir),
        "data": str(data_dir),
        "split": split,
        "path": path,
        "template": template,
        **breakdown(verdicts, examples.records),
    }
    out = Path(run_dir) / f"eval-{split}-{path}.json"
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if predictions_out is not None:
        write_predictions(predictions_out, examples, verdicts, answers, _AnswerDecoder(codec))
    return metrics


class _AnswerDecoder:
    """What `write_predictions` needs to write an answer: its text, as the verdict saw it."""

    def __init__(self, codec: Codec):
        self.codec = codec

    def decode(self, ids: list[int]) -> str:
        return answer_text(self.codec, ids)


def _eval_batch_size(device: torch.device) -> int:
    return 64 if device.type == "cuda" else 16


# ------------------------------------------------------------------ training


def finetune(
    base: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    config: FinetuneConfig,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Fine-tune `base` on the dataset in `data_dir`, writing the run to `out_dir`; return the
    final metrics. `resume=True` continues the run in `out_dir` from its latest checkpoint."""
    config.validate()
    run = RunDirectory(out_dir)
    manifest = check_dataset(data_dir)
    if resume:
        run.check_resumable(config, manifest)
        if str(_recorded(run.path).get("base")) != str(base):
            raise RewritelabError(f"cannot resume {run.path}: it fine-tunes another base model")
    else:
        run.refuse_existing()
    device = pick_device_for(config)
    model, codec = load_base(base, config, device)
    template = resolve_template(config.template, codec)
    check_codec(codec, template, dataset_alphabet(manifest), str(base))
    train_split = encode_dataset_split(codec, template, data_dir, "train")
    evals = {
        name: eval_subset(encode_dataset_split(codec, template, data_dir, split), config, name)
        for name, split in (("seen", "seen_test"), ("unseen", "test"))
    }
    _check_context(model, [train_split, *evals.values()], str(data_dir))
    checkpoint, start_step = _latest_checkpoint(run.path) if resume else (None, 0)
    if config.method == "lora":
        if checkpoint is None:
            model = attach_lora(model, config)
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
    elif checkpoint is not None:
        model, _ = load_base(checkpoint, _plain(config), device)
    batches = Batches(train_split, config, codec.pad_id, 8 if device.type == "cuda" else 1)
    if not resume:
        facts = {
            "base": str(base),
            "template": template,
            "tokenizer": codec.kind,
            "target_modules": _target_modules(model),
            "total_steps": config.max_steps,
            "steps_per_epoch": batches.per_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "train_examples": len(train_split),
        }
        run.create(config, manifest, device, facts)
    elif start_step >= config.max_steps and (run.path / _final_dir(config)).is_dir():
        return run.last_metrics()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    if checkpoint is not None:
        optimizer.load_state_dict(
            torch.load(checkpoint / OPTIMIZER, map_location=device, weights_only=True)
        )
    session = Session(config, model, codec, template, optimizer, batches, evals, run)
    return session.run(start_step, progress)


def pick_device_for(config: FinetuneConfig) -> torch.device:
    from rewritelab.model import pick_device

    return pick_device(config.device)


def _plain(config: FinetuneConfig) -> FinetuneConfig:
    return FinetuneConfig(**{**config.to_dict(), "reinitialize": False})


def _final_dir(config: FinetuneConfig) -> str:
    return ADAPTER_DIR if config.method == "lora" else MODEL_DIR


def _target_modules(model) -> list[str] | None:
    peft_config = getattr(model, "peft_config", None)
    return sorted(peft_config["default"].target_modules) if peft_config else None


def _check_context(model, splits: list[EncodedSplit], where: str) -> None:
    context = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    longest = max(int(split.lengths.max()) for split in splits)
    if context is not None and longest > context:
        raise RewritelabError(
            f"{where} has examples of {longest} tokens, longer than the base's context ({context})"
        )


def _latest_checkpoint(run_path: Path) -> tuple[Path | None, int]:
    latest = run_path / CHECKPOINTS / LATEST
    if not latest.is_file():
        return None, 0
    directory = run_path / CHECKPOINTS / latest.read_text(encoding="utf-8").strip()
    try:
        step = json.loads((directory / STATE).read_text(encoding="utf-8"))["step"]
    except (OSError, ValueError, KeyError) as error:
        raise RewritelabError(f"corrupt checkpoint {directory}: {error}") from None
    return directory, step


class Session:
    """The mutable state of one fine-tuning session: model, optimizer, logs, timers."""

    def __init__(self, config, model, codec, template, optimizer, batches, evals, run):
        self.config, self.model, self.codec, self.template = config, model, codec, template
        self.optimizer, self.batches, self.evals, self.run_dir = optimizer, batches, evals, run
        self.device = next(model.parameters()).device
        self.autocast = torch.autocast(
            self.device.type, torch.bfloat16, enabled=self.device.type == "cuda" and config.bf16
        )
        self.eval_paths = {
            name: choose_path(config.eval_path, codec, template, split)
            for name, split in evals.items()
        }

    def run(self, start_step: int, progress: bool) -> dict:
        config = self.config
        self.run_dir.open_logs(start_step)
        bar = tqdm(total=config.max_steps, initial=start_step, disable=not progress, unit="step")
        loss_sum, steps, window_start = 0.0, 0, time.perf_counter()
        last = self.run_dir.last_metrics() or {}
        self.model.train()
        for step in range(start_step, config.max_steps):
            torch.manual_seed(seed_of(config.seed, "dropout", step))
            lr = learning_rate(step, config, config.max_steps)
            loss_sum += self.step(step, lr)
            steps += 1
            bar.update()
            done = step + 1 == config.max_steps
            evaluate = done or (config.eval_every and (step + 1) % config.eval_every == 0)
            if evaluate:
                elapsed = time.perf_counter() - window_start
                last = self.evaluate(step + 1, loss_sum / steps, lr, steps / elapsed)
                loss_sum, steps, window_start = 0.0, 0, time.perf_counter()
                bar.set_postfix(loss=f"{last['train_loss']:.4f}")
            if evaluate or (step + 1) % config.checkpoint_every == 0:
                self.run_dir.save_checkpoint(step + 1, self.model, self.codec, self.optimizer)
        bar.close()
        final = _final_dir(config)
        partial = self.run_dir.staging(final)
        self.model.save_pretrained(partial, safe_serialization=True)
        self.codec.save(partial)
        self.run_dir.publish(final)
        self.run_dir.close_logs()
        return last

    def step(self, step: int, lr: float) -> float:
        """One optimiser step over `gradient_accumulation` micro-batches; the loss is the mean
        over every answer token of the whole batch."""
        ids, targets, _ = self.batches.arrays(step)
        answer_tokens = max(1, int((targets != IGNORE).sum()))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        micro = self.config.micro_batch_size
        for start in range(0, len(ids), micro):
            micro_targets = targets[start : start + micro]
            width = int(np.nonzero((micro_targets != IGNORE).any(axis=0))[0].max()) + 2
            micro_ids = to_device(ids[start : start + micro, :width], self.device)  # (b, T)
            micro_targets = to_device(micro_targets[:, : width - 1], self.device)  # (b, T - 1)
            with self.autocast:
                logits = self.model(input_ids=micro_ids).logits[:, :-1]  # (b, T - 1, V)
            loss = (
                F.cross_entropy(
                    logits.float().flatten(0, 1),
                    micro_targets.flatten(),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
                / answer_tokens
            )
            loss.backward()
            total += float(loss.detach())
        if self.config.grad_clip > 0:
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def evaluate(self, step: int, train_loss: float, lr: float, steps_per_s: float) -> dict:
        self.model.eval()
        batch_size = self.config.eval_batch_size or _eval_batch_size(self.device)
        with self.autocast:
            accuracies = {
                f"{name}_accuracy": float(
                    verdicts_of(self.model, split, self.codec, self.eval_paths[name], batch_size)[
                        0
                    ].mean()
                )
                for name, split in self.evals.items()
            }
        self.model.train()
        metrics = {
            "step": step,
            "epoch": step / self.batches.per_epoch,
            "train_loss": train_loss,
            "lr": lr,
            **accuracies,
            "steps_per_s": steps_per_s,
            "elapsed_s": self.run_dir.elapsed_s(),
        }
        self.run_dir.log(metrics)
        return metrics
