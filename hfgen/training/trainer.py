"""THE training loop of hfgen: every model family trains here, through its objective (`training/objectives/`).

The loop owns what is common to all families, once: seeding, the `accelerate.Accelerator` (multi-process, mixed
precision), gradient accumulation, gradient clipping, the learning-rate schedule
(`diffusers.optimization.get_scheduler`), EMA (`diffusers.training_utils.EMAModel`), NaN/inf detection, tensorboard
logging and the tqdm bar. It hands the rest to plain objects it creates with explicit arguments: the data and its
seeded order (`batches.py: TrainingData`), atomic `accelerator.save_state` checkpoints with rotation and exact
resumption (`checkpointing.py: Checkpoints`), the histories, periodic sample grids and FID (`monitoring.py: Monitor`),
and ``training_args.json``, the final ``save_pretrained``, ``loss.png``, the model card and ``--push_to_hub``
(`finishing.py`).

Exact resumption: the data order of epoch ``e`` and the noise of micro-batch ``i`` are drawn from generators seeded
by ``(seed, e)`` and ``(seed, i, process)``, so they do not depend on how many steps ran before; optimiser, LR
schedule and EMA state are restored from the checkpoint. On CPU a run resumed at step k therefore ends with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch

from hfgen.errors import ConfigurationError, HfgenError, TrainingDivergedError
from hfgen.output_folder.layout import checkpoint_step, list_checkpoints
from hfgen.training.arguments import (
    DataArguments,
    TrainingArguments,
    dataset_label,
    parse_train_kwargs,
    resolve_defaults,
)
from hfgen.training.batches import open_training_data
from hfgen.training.checkpointing import Checkpoints
from hfgen.training.finishing import finish_run, write_run_config
from hfgen.training.monitoring import (
    Monitor,
    TrainingHistory,
    draw_figure,
    make_scorer,
)
from hfgen.training.objectives import Objective, get_objective
from hfgen.training.objectives.base import TrainingContext

TRAIN_IMAGES_SUBSET = 2000  # TrainingContext.train_images: a fixed random subset of at most this many images


def attention_backend(device, mixed_precision: str):
    """The scaled-dot-product-attention kernels a training step may use on ``device`` at ``mixed_precision``.

    In bf16 autocast on a CPU, PyTorch's fused (flash) attention kernel is slow, most of all its backward: on this
    project's 2-core CPU (avx512_bf16, no AMX) a step of the digits DDPM (attention at 8x8, batch 64) takes 350 ms
    with it, 253 ms with the plain "math" kernel and 301 ms in fp32; one of the MNIST recipe's UNet (attention in
    the middle block) 272 ms against 218 ms (medians of 3 fresh processes, ``python
    scripts/benchmarks/attention_backend.py``). There the math kernel is chosen (`torch.nn.attention.sdpa_kernel`);
    everywhere else (fp32, fp16, GPUs) PyTorch's own choice is kept. The result is the same attention up to bf16
    rounding.

    Args:
        device (`torch.device`): the accelerator's device.
        mixed_precision (`str`): ``--mixed_precision`` (``"no"``, ``"fp16"`` or ``"bf16"``).

    Returns:
        A context manager to wrap the forward pass in (the backward uses the kernel chosen in the forward).
    """
    if torch.device(device).type == "cpu" and mixed_precision == "bf16":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


@dataclass
class TrainingResult:
    """What `train` returns.

    Attributes:
        output_dir (`str`): the trained folder.
        global_step (`int`): optimiser steps done.
        loss_history (`dict`): series name -> list of ``(step, value)``.
        train_seconds (`float`): wall-clock seconds of this run's loop.
        step_seconds (`list[float]`): wall-clock seconds of each optimiser step of this run (data, forward, backward,
            update, EMA), without sample grids, evaluations and checkpoints.
        eval_history (`dict`): with ``--eval_steps``, metric name (`monitoring.EVAL_HISTORY_KEYS`) -> list of
            ``(step, value)`` for the whole run, resumed parts included.
    """

    output_dir: str
    global_step: int
    loss_history: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    step_seconds: list = field(default_factory=list)
    eval_history: dict = field(default_factory=dict)


def train(
    model: str | Objective,
    data_args: DataArguments | None = None,
    training_args: TrainingArguments | None = None,
    model_args=None,
    **kwargs,
) -> TrainingResult:
    """Train a model family with the one loop and save it in the hfgen output-folder contract.

    Either pass the three argument dataclasses or plain keyword arguments (any flag of `hfgen train`), e.g.
    ``train("ddpm", output_dir="out", max_train_steps=20)``.

    Args:
        model (`str` or `Objective`): a model name (``"ddpm"``, ...) or an objective instance.
        data_args (`DataArguments`), training_args (`TrainingArguments`), model_args: parsed arguments.

    Returns:
        `TrainingResult` with the output folder, steps done and loss history.

    Raises:
        UnknownNameError: unknown model name. DatasetError: unusable data. CheckpointError: a corrupt or missing
        checkpoint, or an output folder holding checkpoints of an earlier run. TrainingDivergedError: NaN/inf loss.
    """
    objective = get_objective(model) if isinstance(model, str) else model
    if data_args is None and training_args is None and model_args is None:
        data_args, training_args, model_args = parse_train_kwargs(objective, kwargs)
    elif kwargs:
        raise TypeError("pass either argument dataclasses or keyword arguments, not both")
    data_args = data_args or DataArguments()
    training_args = training_args or TrainingArguments()
    if model_args is None and objective.arguments_class is not None:
        model_args = objective.arguments_class()
    resolve_defaults(objective, data_args, training_args, model_args)
    if training_args.class_conditional and not objective.supports_class_conditional:
        why = "it cannot sample" if not objective.can_sample else "it has no class-conditional variant in hfgen"
        raise ConfigurationError(
            f"hfgen train {objective.name}: --class_conditional is not supported ({why}); drop --class_conditional "
            "or train vae, dcgan, wgan, wgan-gp, ddpm or ncsn"
        )
    if training_args.output_dir is None:
        training_args.output_dir = os.path.join("outputs", f"{objective.name}-{dataset_label(data_args)}")
    return _Trainer(objective, data_args, training_args, model_args).run()


class _Trainer:
    """One run of the loop (`train` makes it from resolved arguments; `run` trains).

    The parts it creates and passes along: ``accelerator``, ``checkpoints`` (`Checkpoints`), ``data``
    (`TrainingData`), ``context`` (`TrainingContext`), ``history`` (`TrainingHistory`), ``ema`` (`EMAModel` or None)
    and ``monitor`` (`Monitor`).
    """

    def __init__(self, objective: Objective, data_args: DataArguments, training_args: TrainingArguments, model_args):
        self.objective = objective
        self.data_args = data_args
        self.args = training_args
        self.model_args = model_args
        self.output_dir = os.path.abspath(training_args.output_dir)
        self.history = TrainingHistory()
        self.data = None
        self.scorer = None

    # ------------------------------------------------------------------ set-up
    def _make_accelerator(self):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import ProjectConfiguration

        # accelerate keeps one AcceleratorState (and PartialState) per process and refuses a second run's other
        # --mixed_precision; as transformers' TrainingArguments does, forget both. PartialState is rebuilt from the
        # launch environment and keeps an existing process group (it only creates one when there is none).
        AcceleratorState._reset_state(reset_partial_state=True)

        project_config = ProjectConfiguration(
            project_dir=self.output_dir, logging_dir=os.path.join(self.output_dir, "logs")
        )
        try:
            return Accelerator(
                mixed_precision=self.args.mixed_precision,
                log_with=None if self.args.report_to == "none" else self.args.report_to,
                project_config=project_config,
            )
        except (ValueError, RuntimeError) as err:
            raise HfgenError(
                f"cannot set up accelerate with --mixed_precision {self.args.mixed_precision}: {err}"
            ) from None

    # ------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, step: int):
        """`Checkpoints.save` with this run's histories (the loop's state besides the accelerator's)."""
        self.checkpoints.save(step, self.history.state())

    def _resume(self) -> int:
        """`Checkpoints.load` of ``--resume_from_checkpoint``; restores the histories; returns the step (0: none)."""
        step, state = self.checkpoints.load(self.args.resume_from_checkpoint)
        if state:
            self.history.restore(state)
        return step

    def _loss_key(self, update) -> str:
        """The history/log name of an update's loss: ``loss`` for one-update objectives, else ``<phase>_loss``."""
        return "loss" if len(self.updates) == 1 else f"{update.name}_loss"

    def _diverged(self, global_step: int, what: str, optimizers) -> None:
        """Stop on a NaN/inf loss or gradient: quarantine checkpoints written after it and raise."""
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        good = self.checkpoints.quarantine(first_bad_step=global_step)
        where = (
            f"the last good checkpoint {good} is intact (resume with --resume_from_checkpoint latest and a "
            "lower --learning_rate)"
            if good
            else "no good checkpoint was written yet"
        )
        self.accelerator.end_training()
        raise TrainingDivergedError(
            f"training diverged at step {global_step + 1}: {what}; {where}; try a lower --learning_rate "
            f"(now {self.args.learning_rate:g})"
        )

    # -------------------------------------------------------------------- loop
    def run(self) -> TrainingResult:
        """Train (see `train`); DataLoader workers of ``--lazy_loading`` are stopped however the run ends."""
        from hfgen.training.lock import OutputFolderLock

        main_rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"  # one lock per run, not per rank
        lock = OutputFolderLock(self.output_dir) if main_rank else None
        if lock is not None:
            lock.acquire()  # before anything is written: a second run on this folder stops here
        try:
            return self._run()
        finally:
            if self.data is not None:
                self.data.close()
            if lock is not None:
                lock.release()

    def _run(self) -> TrainingResult:
        """The loop: set up, build, resume, then one `_train_step` and one `_after_step` per optimiser step."""
        from tqdm.auto import tqdm

        args, accelerator = self.args, self._setup()
        models, optimizers, schedulers = self._build_models()
        write_run_config(self.objective, self.context, accelerator, self.output_dir)
        initial_lrs = [[group["initial_lr"] for group in opt.param_groups] for opt in optimizers]
        global_step = self._resume()
        if global_step:
            self.checkpoints.apply_learning_rates(optimizers, schedulers, initial_lrs)
        self.updates = self.objective.updates(self.context)
        accelerator.print(
            f"Training {self.objective.name} on {self.data.num_images} images ({self.context.num_channels}x"
            f"{self.context.resolution}x{self.context.resolution}) for {args.max_train_steps} steps, batch "
            f"{args.train_batch_size} x {accelerator.num_processes} process(es) x "
            f"{args.gradient_accumulation_steps} accumulation"
        )
        progress = tqdm(
            total=args.max_train_steps,
            initial=global_step,
            desc=f"Training {self.objective.name}",
            disable=not accelerator.is_local_main_process,
            file=sys.stderr,
        )
        start = time.perf_counter()
        for model in models.values():
            model.train()
        step_seconds = []
        with progress:  # closed (its line ended) however the loop ends: an error message starts a fresh line
            while global_step < args.max_train_steps:
                step_start = time.perf_counter()
                losses, logs_sum, grad_norms = self._train_step(global_step, models, optimizers, progress)
                for scheduler in schedulers:
                    scheduler.step()
                if self.ema is not None:
                    self.ema.step(models[self.objective.ema_model].parameters())
                global_step += 1
                step_seconds.append(time.perf_counter() - step_start)
                self._after_step(global_step, losses, logs_sum, grad_norms, schedulers, progress)
        seconds = time.perf_counter() - start
        if global_step > 0 and global_step not in map(checkpoint_step, list_checkpoints(self.output_dir)):
            self._save_checkpoint(global_step)  # the final state is always resumable
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            finish_run(
                global_step,
                seconds,
                monitor=self.monitor,
                context=self.context,
                loss_key=self._loss_key(self.updates[-1]),  # the last update's loss (GANs: the generator's)
                last_checkpoint=self.checkpoints.last,
            )
            accelerator.print(f"Saved the trained pipeline to {self.output_dir} ({seconds:.0f} s of training).")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        history = self.history
        return TrainingResult(self.output_dir, global_step, history.losses, seconds, step_seconds, history.evals)

    def _setup(self):
        """The accelerator, the output-folder check, checkpoints, the data and the `TrainingContext`; returns the
        accelerator."""
        args = self.args
        self.accelerator = accelerator = self._make_accelerator()
        self.checkpoints = Checkpoints(accelerator, self.output_dir, args.seed, args.checkpoints_total_limit)
        self.checkpoints.check_earlier_run(args.resume_from_checkpoint, args.overwrite_output_dir)
        self.data = data = open_training_data(self.data_args, args, self.objective, self.model_args, accelerator)
        order = torch.randperm(data.num_images, generator=torch.Generator().manual_seed(args.seed))
        self.context = TrainingContext(
            data_args=self.data_args,
            training_args=args,
            model_args=self.model_args,
            num_channels=self.data_args.num_channels,
            resolution=self.data_args.resolution,
            num_train_images=data.num_images,
            dataset_label=dataset_label(self.data_args),
            num_processes=accelerator.num_processes,
            train_images=data.images_at(order[:TRAIN_IMAGES_SUBSET].sort().values),
            preview_images=data.images_at(order[:32]),
            label_source=data.label_source,
            num_classes=data.num_classes,
            id2label=data.id2label,
        )
        if args.eval_steps and not self.objective.can_sample:
            raise ConfigurationError(
                f"{self.objective.name} cannot generate new images, so --eval_steps (FID during training) does not "
                "apply; drop --eval_steps"
            )
        if args.eval_steps and accelerator.is_main_process:
            # before training: a bad --eval_num_images must not cost a run
            self.scorer = make_scorer(args, self.data_args)
        return accelerator

    def _build_models(self) -> tuple[dict, list, list]:
        """The objective's models (after the memory estimate), optimisers, LR schedules and EMA, prepared by the
        accelerator; returns ``(models, optimizers, schedulers)``."""
        from accelerate.utils import set_seed
        from diffusers.optimization import get_scheduler

        args, accelerator, context = self.args, self.accelerator, self.context
        set_seed(args.seed)
        models = self.objective.build_models(context)
        context.num_parameters = sum(p.numel() for m in models.values() for p in m.parameters())
        from hfgen.training.memory import check_step_memory

        check_step_memory(self.objective, models, context)
        optimizers = self.objective.create_optimizers(models, context)
        schedulers = [
            get_scheduler(
                args.lr_scheduler,
                optimizer=optimizer,
                num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                num_training_steps=args.max_train_steps * accelerator.num_processes,
            )
            for optimizer in optimizers
        ]
        self.ema = self._make_ema(models)
        names = list(models)
        prepared = accelerator.prepare(*models.values(), *optimizers, *schedulers)
        models = dict(zip(names, prepared[: len(names)]))
        optimizers = list(prepared[len(names) : len(names) + len(optimizers)])
        schedulers = list(prepared[len(names) + len(optimizers) :])
        unwrapped = {name: accelerator.unwrap_model(m) for name, m in models.items()}
        if self.ema is not None:
            self.ema.to(accelerator.device)
            ema_key = self.objective.ema_model
            self.checkpoints.register_ema_hooks(self.ema, ema_key, type(unwrapped[ema_key]))
        self.monitor = Monitor(
            self.objective,
            args,
            self.data_args,
            accelerator,
            self.output_dir,
            models=unwrapped,
            ema=self.ema,
            history=self.history,
            num_classes=self.data.num_classes,
            scorer=self.scorer,
        )
        return models, optimizers, schedulers

    def _make_ema(self, models: dict):
        """With ``--use_ema``, the `diffusers.training_utils.EMAModel` (``--ema_*``) of the objective's ``ema_model``
        in ``models``; else None."""
        if not self.args.use_ema:
            return None
        from diffusers.training_utils import EMAModel

        args, model = self.args, models[self.objective.ema_model]
        return EMAModel(
            model.parameters(),
            decay=args.ema_max_decay,
            use_ema_warmup=True,
            inv_gamma=args.ema_inv_gamma,
            power=args.ema_power,
            model_cls=type(model),
            model_config=model.config,
        )

    def _train_step(self, global_step: int, models: dict, optimizers: list, progress) -> tuple[dict, dict, dict]:
        """Every update of one optimiser step (each with its micro-batches); stops on a NaN/inf loss or gradient.
        Returns ``(losses, logs_sum, grad_norms)``: per-update losses, accumulated extra scalars, gradient norms."""
        args, accelerator, updates, data = self.args, self.accelerator, self.updates, self.data
        accumulation = args.gradient_accumulation_steps
        losses: dict[str, list[float]] = {}
        logs_sum: dict[str, list[float]] = {}
        grad_norms: dict[str, float] = {}
        for position, update in enumerate(updates):
            update_loss = torch.zeros((), device=accelerator.device)
            for micro in range(accumulation):
                index = (global_step * len(updates) + position) * accumulation + micro
                images = data.batch(index)
                generator = data.noise_generator(index)
                if self.data_args.random_flip:
                    from hfgen.data.images.transforms import random_hflip

                    images = random_hflip(images, generator)
                with contextlib.ExitStack() as stack:
                    if micro < accumulation - 1:
                        for m in models.values():
                            stack.enter_context(accelerator.no_sync(m))
                    with accelerator.autocast(), attention_backend(accelerator.device, accelerator.mixed_precision):
                        labels = data.labels_at(index)  # only a conditional run passes class_labels
                        extra = {} if labels is None else {"class_labels": labels}
                        loss, logs = self.objective.compute_loss(
                            models, images, generator, phase=update.name, step=global_step, **extra
                        )
                    accelerator.backward(loss / accumulation)
                update_loss += loss.detach().float() / accumulation
                for key, value in logs.items():
                    logs_sum.setdefault(key, []).append(float(value) / accumulation)
            value = accelerator.gather(update_loss.reshape(1)).mean().item()
            optimizer = optimizers[update.optimizer]
            grad_norm = None
            if math.isfinite(value) and args.max_grad_norm:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                grad_norm = accelerator.clip_grad_norm_(params, args.max_grad_norm)
                grad_norm = float(grad_norm) if grad_norm is not None else None
            if not math.isfinite(value) or (grad_norm is not None and not math.isfinite(grad_norm)):
                label = "" if len(updates) == 1 else f"{update.name} "
                what = f"{label}loss {value}" if not math.isfinite(value) else f"{label}gradient norm {grad_norm}"
                progress.close()
                self._diverged(global_step, what, optimizers)
            optimizer.step()
            for each in optimizers:
                each.zero_grad(set_to_none=True)
            self.objective.after_update(models, update.name)
            losses.setdefault(self._loss_key(update), []).append(value)
            if grad_norm is not None:
                grad_norms[update.name] = grad_norm
        return losses, logs_sum, grad_norms

    def _after_step(self, global_step: int, losses, logs_sum, grad_norms, schedulers, progress) -> None:
        """History, progress bar, tracker logging, sample grid, FID and checkpoint after step ``global_step``."""
        args, accelerator, updates = self.args, self.accelerator, self.updates
        accumulation = args.gradient_accumulation_steps
        step_losses = {key: sum(v) / len(v) for key, v in losses.items()}
        accumulated = {key: sum(v) * accumulation / len(v) for key, v in logs_sum.items()}
        for key, value in {**step_losses, **accumulated}.items():
            self.history.losses.setdefault(key, []).append((global_step, value))
        lr = schedulers[0].get_last_lr()[0] if schedulers else args.learning_rate
        postfix = {name: f"{value:.4f}" for name, value in step_losses.items()} | {"lr": f"{lr:.2e}"}
        progress.set_postfix(postfix, refresh=False)
        progress.update(1)
        if global_step % args.logging_steps == 0 and args.report_to != "none":
            scalars = {**step_losses, "lr": lr, **accumulated}
            for name, norm in grad_norms.items():
                scalars["grad_norm" if len(updates) == 1 else f"grad_norm_{name}"] = norm
            if self.ema is not None:
                scalars["ema_decay"] = self.ema.cur_decay_value
            accelerator.log(scalars, step=global_step)
        if accelerator.is_main_process and (
            global_step % args.save_images_steps == 0 or global_step == args.max_train_steps
        ):
            grid = f"the sample grid at step {global_step}"
            draw_figure(lambda s=global_step: self.monitor.save_sample_grid(s), grid)
        if args.eval_steps and global_step % args.eval_steps == 0:
            if accelerator.is_main_process:
                self.monitor.evaluate(global_step)
            accelerator.wait_for_everyone()
        if global_step % args.checkpointing_steps == 0:  # last: the checkpoint records this step's evaluation
            self._save_checkpoint(global_step)
