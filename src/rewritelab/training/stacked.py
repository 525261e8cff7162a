"""Stacked seeds: several seeds of one training config trained in one process, in one step.

Each seed keeps its own run directory, dataset, batches, evaluation, checkpoints and metrics
log, exactly as `train` writes them, so a stacked seed resumes stacked or alone and its model
opens like any other. What the seeds share is the step: their parameters are stacked along a
new first dimension and one `torch.func.vmap` of the GPT's loss computes every seed's loss and
gradient at once; AdamW (elementwise) then updates the stacked tensors, with gradients clipped
seed by seed. So each seed follows its own run to fp32 rounding.

Seeds join the stack at the step of their latest checkpoint and leave it when they master
their training examples (`stop_at_train_accuracy`) or reach the end; the stack is rebuilt
whenever its members change. The solo `Loop` of each seed does its evaluation, checkpointing
and logging; stacked tensors are copied back into each seed's model and optimizer first.
A seed's logged time and throughput are the stack's (its `elapsed_s` is the stack's wall
time, its `tokens_per_s` its own tokens over the stack's step time): a stack of S seeds costs
its wall time in core-time, not S times it.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call, vmap

from rewritelab.core.errors import RewritelabError
from rewritelab.core.progress import progress_bar
from rewritelab.model.batches import to_device
from rewritelab.model.tokenizer import IGNORE
from rewritelab.training.loop import Loop, Window, adamw, learning_rate, open_run, set_up
from rewritelab.training.runs import RunDirectory
from rewritelab.training.scratch import ScratchTrainee
from rewritelab.training.scratch_config import TrainConfig

# vmap runs the CPU attention kernel once per seed (it has no batching rule): the same kernel
# each seed's own run calls, so no rounding changes.
_NO_BATCHING_RULE = "There is a performance drop because we have not yet implemented"


@dataclass(frozen=True)
class SeedRun:
    """One seed of a stack: its seed, its dataset and its run directory."""

    seed: int
    data_dir: str | Path
    out_dir: str | Path


def train_stacked(
    config: TrainConfig, runs: list[SeedRun], resume: bool = False, progress: bool = True
) -> list[dict]:
    """Train `config` once per seed of `runs`, all seeds in one step (the config's own `seed`
    is replaced by each run's); return each run's final metrics, in order. Each run directory
    is created, refused or resumed as `train` does it."""
    _check_stack(config, runs)
    device, threads = set_up(config)
    if not resume:
        for run in runs:
            RunDirectory(run.out_dir).refuse_existing()
    configs = [replace(config, seed=run.seed) for run in runs]
    trainees = [ScratchTrainee(c, Path(run.data_dir), device)
                for c, run in zip(configs, runs, strict=True)]  # fmt: skip
    _check_same_schedule(trainees)
    with ExitStack() as locks:
        loops, starts = [], []
        for trainee, seed_config, run in zip(trainees, configs, runs, strict=True):
            run_dir = open_run(trainee, seed_config, run.out_dir, resume, device, threads)
            locks.enter_context(run_dir.locked())
            loops.append(Loop(trainee, seed_config, run_dir, trainee.total_steps))
            starts.append(loops[-1].starting_step(resume, threads))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NO_BATCHING_RULE)
            return StackedLoop(loops, config).run(starts, progress)


def _check_stack(config: TrainConfig, runs: list[SeedRun]) -> None:
    config.validate()
    if not runs:
        raise RewritelabError("a stack needs at least one seed")
    seeds = [run.seed for run in runs]
    if len(set(seeds)) < len(seeds):
        raise RewritelabError(f"the seeds of a stack must differ, got {seeds}")
    directories = [Path(run.out_dir).resolve() for run in runs]
    if len(set(directories)) < len(directories):
        raise RewritelabError("the seeds of a stack need one run directory each")
    if config.model.dropout:
        raise RewritelabError(
            f"stacked seeds need model.dropout = 0 (got {config.model.dropout}): under vmap the "
            "dropout noise would not be the one each seed draws alone"
        )


def _check_same_schedule(trainees: list[ScratchTrainee]) -> None:
    shapes = {(t.total_steps, t.config.eval_every or t.eval_every_default) for t in trainees}
    if len(shapes) > 1:
        raise RewritelabError(
            "the seeds of a stack must train for the same steps with the same evaluation "
            f"points; their datasets give (steps, steps between evaluations) {sorted(shapes)}"
        )


class StackedLoop:
    """The training steps of several seeds' `Loop`s, taken together."""

    def __init__(self, loops: list[Loop], config: TrainConfig):
        self.loops, self.config = loops, config
        self.total_steps = loops[0].total_steps
        self.device, self.precision = loops[0].device, loops[0].precision
        self.members: list[int] = []
        self.stack: Stack | None = None

    def run(self, starts: list[int | None], progress: bool = True) -> list[dict]:
        """Train every seed from its start (None: already ended) to its end; its metrics."""
        lasts = [loop.run_dir.last_metrics() or {} for loop in self.loops]
        live = {i: start for i, start in enumerate(starts) if start is not None}
        for i, start in live.items():
            self.loops[i].run_dir.open_logs(start, self.config.tracker)
            self.loops[i].trainee.model.train()
        first = min(live.values(), default=self.total_steps)
        windows: dict[int, Window] = {}  # opened when a seed joins: waiting is not training
        bar = progress_bar(progress, total=self.total_steps, initial=first,
                           desc=f"train {len(self.loops)} seeds")  # fmt: skip
        for step in range(first, self.total_steps):
            for i in [i for i in live if self.loops[i].mastered(lasts[i])]:
                lasts[i] = self.leave(i, lasts[i])
                del live[i]
            if not live:
                break  # every seed has mastered its training examples
            members = [i for i, at in live.items() if at == step]
            if not members:
                continue
            lr = learning_rate(step, self.config, self.total_steps)
            self.restack(members)
            for i, outcome in zip(members, self.step(step, lr), strict=True):
                windows.setdefault(i, Window(self.device)).add(outcome)
                live[i] = step + 1
            bar.update()
            self.after_step(step + 1, members, lr, lasts, windows)
        bar.close()
        self.restack([])
        for i in live:
            lasts[i] = self.loops[i].finish(lasts[i])
        return lasts

    def after_step(
        self, done: int, members: list[int], lr: float, lasts: list[dict], windows: dict
    ) -> None:
        """After `done` steps: evaluate and checkpoint the members (their models and
        optimizers first given the stack's tensors), or only checkpoint them, or check that
        their losses are finite, as each seed's own loop would at that step."""
        if self.loops[members[0]].evaluates_at(done):
            self.unstack()
            for i in members:
                window, tokens_before = windows[i].close(), lasts[i].get("train_tokens", 0)
                lasts[i] = self.loops[i].evaluate(done, window, lr, tokens_before)
            windows.update({i: Window(self.device) for i in members})
        elif self.config.checkpoint_every and done % self.config.checkpoint_every == 0:
            self.unstack()
            for i in members:
                self.loops[i].checkpoint(done)
        elif done % self.config.log_every == 0:
            for i in members:
                self.loops[i].check_finite(windows[i].mean_loss(), done)

    def leave(self, i: int, last: dict) -> dict:
        """Take seed `i` out of the stack and write its final model."""
        self.restack([m for m in self.members if m != i])
        return self.loops[i].finish(last)

    def restack(self, members: list[int]) -> None:
        """Stack the weights and optimizer states of `members` (the old stack's first copied
        back into its seeds' models and optimizers)."""
        if members == self.members:
            return
        self.unstack()
        self.members = members
        self.stack = Stack([self.loops[i] for i in members], self.config) if members else None

    def unstack(self) -> None:
        if self.stack is not None:
            self.stack.copy_back([self.loops[i] for i in self.members])

    def step(self, step: int, lr: float) -> list[tuple[torch.Tensor, int]]:
        """One optimiser step of every member; each one's mean loss (a device tensor) and real
        tokens."""
        batches = [self.loops[i].trainee.batch(step) for i in self.members]
        pad_id = self.loops[self.members[0]].trainee.tokenizer.pad_id
        ids, targets = (to_device(array, self.device) for array in _stacked_batch(batches, pad_id))
        scored = (targets != IGNORE).flatten(1).sum(1).clamp(min=1)
        with self.precision():
            losses = self.stack.losses(ids, targets) / scored
        losses.sum().backward()
        self.stack.clip_and_update(lr)
        return [(loss, tokens) for loss, (_, tokens) in zip(losses.detach(), batches, strict=True)]


def _stacked_batch(batches: list, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Every seed's batch (one micro-batch each) padded on the right to a common shape: ids
    (S, B, T) with `pad_id`, targets (S, B, T - 1) with IGNORE. Causal attention keeps the
    extra columns out of every earlier position, and IGNORE keeps them out of the loss."""
    pairs = []
    for micro_batches, _ in batches:
        if len(micro_batches) != 1:
            raise RewritelabError("stacked seeds take one micro-batch a step")
        pairs.append(micro_batches[0])
    rows = max(ids.shape[0] for ids, _ in pairs)
    width = max(ids.shape[1] for ids, _ in pairs)
    ids = np.full((len(pairs), rows, width), pad_id, dtype=np.int64)
    targets = np.full((len(pairs), rows, width - 1), IGNORE, dtype=np.int64)
    for s, (seed_ids, seed_targets) in enumerate(pairs):
        ids[s, : seed_ids.shape[0], : seed_ids.shape[1]] = seed_ids
        targets[s, : seed_targets.shape[0], : seed_targets.shape[1]] = seed_targets
    return ids, targets


class _LossOf(torch.nn.Module):
    """A trainee's summed loss as a module's forward, for `functional_call`."""

    def __init__(self, loop: Loop):
        super().__init__()
        self.model, self.loss = loop.trainee.model, loop.trainee.loss

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model, ids, targets)


class Stack:
    """The members' trainable parameters stacked (S, ...), their AdamW state stacked alike."""

    def __init__(self, loops: list[Loop], config: TrainConfig):
        model = loops[0].trainee.model
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        self.config = config
        self.parameters = {
            name: torch.stack(
                [loop.trainee.model.get_parameter(name).detach() for loop in loops]
            ).requires_grad_()
            for name in self.names
        }
        solo_dims = {name: model.get_parameter(name).dim() for name in self.names}
        self.optimizer = adamw(
            [self.parameters[n] for n in self.names if solo_dims[n] >= 2],
            [self.parameters[n] for n in self.names if solo_dims[n] < 2],
            config,
        )
        self._stack_optimizer_states(loops)
        module = _LossOf(loops[0])
        self.losses_of = vmap(
            lambda parameters, ids, targets: functional_call(module, parameters, (ids, targets))
        )

    def losses(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each member's summed loss on its own batch (S,)."""
        parameters = {f"model.{name}": tensor for name, tensor in self.parameters.items()}
        return self.losses_of(parameters, ids, targets)

    def clip_and_update(self, lr: float) -> None:
        """Clip each member's gradient to `grad_clip` by its own norm (as
        `clip_grad_norm_` does for one run), then take the AdamW step."""
        gradients = [self.parameters[name].grad for name in self.names]
        if self.config.grad_clip > 0:
            norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in gradients])
            total = torch.linalg.vector_norm(norms, dim=0)  # (S,)
            scale = (self.config.grad_clip / (total + 1e-6)).clamp(max=1.0)
            for gradient in gradients:
                gradient.mul_(scale.view(-1, *[1] * (gradient.dim() - 1)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _stack_optimizer_states(self, loops: list[Loop]) -> None:
        for name in self.names:
            states = [
                loop.optimizer.state[loop.trainee.model.get_parameter(name)] for loop in loops
            ]
            if not states[0]:
                continue  # no step taken yet
            steps = {float(state["step"]) for state in states}
            if len(steps) > 1:
                raise RewritelabError(f"cannot stack seeds at different steps {sorted(steps)}")
            self.optimizer.state[self.parameters[name]] = {
                key: value.clone() if value.dim() == 0 else torch.stack([s[key] for s in states])
                for key, value in states[0].items()
            }

    def copy_back(self, loops: list[Loop]) -> None:
        """Write each member's weights and optimizer state into its own model and AdamW."""
        lr = self.optimizer.param_groups[0]["lr"]
        for loop in loops:
            for group in loop.optimizer.param_groups:
                group["lr"] = lr
        with torch.no_grad():
            for name in self.names:
                stacked_state = self.optimizer.state.get(self.parameters[name], {})
                for s, loop in enumerate(loops):
                    parameter = loop.trainee.model.get_parameter(name)
                    parameter.copy_(self.parameters[name][s])
                    loop.optimizer.state[parameter] = {
                        key: value.clone() if value.dim() == 0 else value[s].clone()
                        for key, value in stacked_state.items()
                    }
