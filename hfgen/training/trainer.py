"""THE training loop of hfgen: every model family trains here, through its objective (`training/objectives/`).

The loop owns what is common to all families, once: seeding, the `accelerate.Accelerator` (multi-process, mixed
precision), the in-memory data order, gradient accumulation, gradient clipping, the learning-rate schedule
(`diffusers.optimization.get_scheduler`), EMA (`diffusers.training_utils.EMAModel`), atomic
`accelerator.save_state` checkpoints with rotation and exact resumption, NaN/inf detection, tensorboard logging,
the tqdm bar, periodic sample grids, ``loss.png``, ``training_args.json``, the final ``save_pretrained``, the model
card and ``--push_to_hub``.

Exact resumption: the data order of epoch ``e`` and the noise of micro-batch ``i`` are drawn from generators seeded
by ``(seed, e)`` and ``(seed, i, process)``, so they do not depend on how many steps ran before; optimiser, LR
schedule and EMA state are restored from the checkpoint. On CPU a run resumed at step k therefore ends with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from hfgen.errors import (
    CheckpointError,
    ConfigurationError,
    DatasetError,
    HfgenError,
    TrainingDivergedError,
    UnknownArgumentError,
)
from hfgen.output_folder.layout import (  # noqa: F401  (list_checkpoints: re-exported for callers of the loop)
    CHECKPOINTS_DIR,
    LOSS_PLOT,
    SAMPLES_DIR,
    checkpoint_step,
    list_checkpoints,
    write_training_args,
)
from hfgen.training.arguments import (
    GENERIC_DEFAULTS,
    LAZY_LOADING_THRESHOLD_GB,
    DataArguments,
    TrainingArguments,
    arguments_to_dict,
)
from hfgen.training.checkpointing import Checkpoints, write_failure
from hfgen.training.objectives import Objective, get_objective
from hfgen.training.objectives.base import TrainingContext

logger = logging.getLogger(__name__)

TRAIN_IMAGES_SUBSET = 2000  # TrainingContext.train_images: a fixed random subset of at most this many images


def derived_seed(*keys: int | str) -> int:
    """A 63-bit seed derived from integers and strings with `numpy.random.SeedSequence` (stable everywhere)."""
    entropy = [k % (1 << 64) if isinstance(k, int) else int.from_bytes(str(k).encode(), "little") for k in keys]
    low, high = np.random.SeedSequence(entropy).generate_state(2, np.uint32).tolist()
    return ((high << 32) | low) & ((1 << 63) - 1)


# what `--eval_steps` keeps over training (class metrics only where the features classify, e.g. digits, mnist)
EVAL_HISTORY_KEYS = ("fid", "kid_mean", "precision", "recall", "coverage", "classes_covered", "class_entropy_bits")


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
        eval_history (`dict`): with ``--eval_steps``, metric name (``EVAL_HISTORY_KEYS``) -> list of ``(step, value)``
            for the whole run, resumed parts included.
    """

    output_dir: str
    global_step: int
    loss_history: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    step_seconds: list = field(default_factory=list)
    eval_history: dict = field(default_factory=dict)


def parse_train_kwargs(objective: Objective, kwargs: dict):
    """Split keyword arguments into ``(DataArguments, TrainingArguments, <family arguments>)``.

    Raises:
        UnknownArgumentError: for a keyword that no dataclass has (a `TypeError`). ConfigurationError: for a value
            the dataclasses refuse (a `ValueError`, with the command line's message).
    """
    classes = [DataArguments, TrainingArguments] + ([objective.arguments_class] if objective.arguments_class else [])
    buckets = [{} for _ in classes]
    for key, value in kwargs.items():
        for bucket, cls in zip(buckets, classes):
            if key in {f.name for f in dataclasses.fields(cls)}:
                bucket[key] = value
                break
        else:
            import difflib

            names = [f.name for cls in classes for f in dataclasses.fields(cls)]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; `hfgen train {objective.name} --help` lists them"
            raise UnknownArgumentError(f"unknown training argument {key!r} for model {objective.name!r}{hint}")
    try:
        instances = [cls(**bucket) for cls, bucket in zip(classes, buckets)]
    except HfgenError:
        raise
    except (ValueError, TypeError) as err:  # the same message as `hfgen train` prints
        raise ConfigurationError(str(err)) from None
    if objective.arguments_class is None:
        instances.append(None)
    return tuple(instances)


def _resolve_defaults(objective: Objective, data_args: DataArguments, training_args: TrainingArguments, model_args):
    """Family defaults first (`Objective.resolve_defaults`), then the loop's `GENERIC_DEFAULTS`."""
    objective.resolve_defaults(data_args, training_args, model_args)
    for key, value in GENERIC_DEFAULTS.items():
        if getattr(training_args, key) is None:
            setattr(training_args, key, value)


def _dataset_label(data_args: DataArguments) -> str:
    if data_args.train_data_dir:
        return os.path.splitext(os.path.basename(os.path.normpath(data_args.train_data_dir)))[0]
    name = data_args.dataset_name or "digits"
    return os.path.basename(os.path.normpath(name)) if os.path.exists(name) else name


def _scalars(config: dict) -> dict:
    return {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))}


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
    _resolve_defaults(objective, data_args, training_args, model_args)
    if training_args.class_conditional and not objective.supports_class_conditional:
        why = "it cannot sample" if not objective.can_sample else "it has no class-conditional variant in hfgen"
        raise ConfigurationError(
            f"hfgen train {objective.name}: --class_conditional is not supported ({why}); drop --class_conditional "
            "or train vae, dcgan, wgan, wgan-gp, ddpm or ncsn"
        )
    if training_args.output_dir is None:
        training_args.output_dir = os.path.join("outputs", f"{objective.name}-{_dataset_label(data_args)}")
    return _Trainer(objective, data_args, training_args, model_args).run()


class _Trainer:
    def __init__(self, objective: Objective, data_args: DataArguments, training_args: TrainingArguments, model_args):
        self.objective = objective
        self.data_args = data_args
        self.args = training_args
        self.model_args = model_args
        self.output_dir = os.path.abspath(training_args.output_dir)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.eval_history: dict[str, list[tuple[int, float]]] = {}
        self.best_fid = math.inf
        self.scorer = None

    # ------------------------------------------------------------------ set-up
    def _make_accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

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

    def _check_output_dir(self):
        existing = list_checkpoints(self.output_dir)
        if existing and self.args.resume_from_checkpoint is None:
            if not self.args.overwrite_output_dir:
                raise CheckpointError(
                    f"{self.output_dir} holds checkpoints of an earlier run ({os.path.basename(existing[-1])}); "
                    "pass --resume_from_checkpoint latest to continue it or --overwrite_output_dir to start over"
                )
            if self.accelerator.is_main_process:
                shutil.rmtree(os.path.join(self.output_dir, CHECKPOINTS_DIR))

    def _load_data(self):
        """Open the training images, fix resolution and channels, let the objective check them, then hold the
        images in memory as uint8 ``(N, C, H, W)`` or (``--lazy_loading``) decode them per batch with a DataLoader."""
        from hfgen.data.images.decoding import ImageDecoder, decode_images, readable_images
        from hfgen.data.images.formats import DIGITS_RESOLUTION
        from hfgen.data.images.source import open_image_source, resolve_held_out_size

        data = self.data_args
        with self.accelerator.main_process_first():
            source = open_image_source(
                dataset_name=data.dataset_name,
                train_data_dir=data.train_data_dir,
                split="train",
                dataset_config_name=data.dataset_config_name,
                cache_dir=data.cache_dir,
                image_column=data.image_column,
                held_out_size=data.held_out_size,
                attribute_file=data.attribute_file,
                attribute=data.attribute,
            )
            data.held_out_size = resolve_held_out_size(data.dataset_name, data.train_data_dir, data.held_out_size)
            if data.max_train_samples is not None and data.max_train_samples < len(source):
                source = source.select(range(data.max_train_samples))
            channels, height, width = source.native_size()
            if data.resolution is None:
                data.resolution = DIGITS_RESOLUTION if source.name == "digits" else min(height, width)
            if data.num_channels is None:
                data.num_channels = channels
            self.objective.configure(data.resolution, data.num_channels, self.model_args)
            decoder = ImageDecoder(source, data.resolution, data.num_channels, data.center_crop)
            pixels = len(source) * data.num_channels * data.resolution**2
            self.lazy = (
                data.lazy_loading if data.lazy_loading is not None else pixels > LAZY_LOADING_THRESHOLD_GB * 1e9
            )
            data.lazy_loading = bool(self.lazy)  # recorded resolved in training_args.json
            if self.lazy:  # unreadable files are skipped now (a header check), as the in-memory store skips them
                source = readable_images(source)
                decoder = ImageDecoder(source, data.resolution, data.num_channels, data.center_crop)
                self.images, labels = None, source.labels
            else:
                self.images, labels = decode_images(decoder, show_progress=self.accelerator.is_main_process)
        self.decoder = decoder
        self.num_images = len(source) if self.images is None else len(self.images)
        self.labels = labels
        self.label_source = source.label_source if labels is not None else None
        self.num_classes, self.id2label = self._classes(source)
        global_batch = self.args.train_batch_size * self.accelerator.num_processes
        if self.num_images < global_batch:
            raise DatasetError(
                f"the data set has {self.num_images} images, fewer than one batch of {global_batch} "
                f"(--train_batch_size {self.args.train_batch_size} x {self.accelerator.num_processes} processes); "
                "lower --train_batch_size or add images"
            )
        self.batches_per_epoch = self.num_images // global_batch
        self._permutations: dict[int, torch.Tensor] = {}
        self._loader_iterator = None
        self._loader_next = None

    def _classes(self, source) -> tuple[int | None, dict[int, str] | None]:
        """``(num_classes, id2label)`` of a ``--class_conditional`` run (read from the labels), ``(None, None)``
        otherwise.

        Raises:
            DatasetError: the data has no labels, negative labels, or a single class.
        """
        if not self.args.class_conditional:
            return None, None
        if self.labels is None:
            raise DatasetError(
                f"--class_conditional trains on the data's labels, and {source.name} has none; use a data set with a "
                "label column (the digits, an image folder with class sub-folders, a .npy with <name>_labels.npy) or "
                "--attribute_file with --attribute, or drop --class_conditional"
            )
        if len(self.labels) and int(self.labels.min()) < 0:
            raise DatasetError(f"--class_conditional needs class labels 0, 1, ...; {source.name} has negative labels")
        num_classes = int(self.labels.max()) + 1
        if num_classes < 2:
            raise DatasetError(f"--class_conditional needs at least 2 classes; {source.name} has labels 0 only")
        names = source.label_names if source.label_names and len(source.label_names) >= num_classes else None
        id2label = {i: (names[i] if names else str(i)) for i in range(num_classes)}
        return num_classes, id2label

    def _labels_at(self, micro_index: int) -> torch.Tensor | None:
        """The class labels `(B,)` of micro-batch ``micro_index`` (the same indices as `_batch`), or None when the run
        is not class-conditional."""
        if self.num_classes is None:
            return None
        indices = self._batch_indices(micro_index)
        return torch.as_tensor(self.labels[indices.numpy()], dtype=torch.long).to(self.accelerator.device)

    def _images_at(self, indices) -> torch.Tensor:
        """Training images ``indices`` as float32 ``(B, C, H, W)`` in [-1, 1] (decoded now when lazy)."""
        from hfgen.data.images.transforms import uint8_to_float

        if self.images is not None:
            return uint8_to_float(self.images[torch.as_tensor(indices)])
        return uint8_to_float(self.decoder.decode_batch(list(indices)))

    def _batch_indices(self, micro_index: int) -> torch.Tensor:
        """The image indices of micro-batch ``micro_index`` for this process: a slice of epoch ``e``'s permutation,
        drawn from a generator seeded by ``(seed, e)``, so the order never depends on how training got here."""
        epoch, position = divmod(micro_index, self.batches_per_epoch)
        if epoch not in self._permutations:
            self._permutations = {
                epoch: torch.randperm(
                    self.num_images,
                    generator=torch.Generator().manual_seed(derived_seed(self.args.seed, "epoch", epoch)),
                )
            }
        size = self.args.train_batch_size
        start = position * size * self.accelerator.num_processes + self.accelerator.process_index * size
        return self._permutations[epoch][start : start + size]

    def _batch(self, micro_index: int) -> torch.Tensor:
        if self.images is not None:
            return self._images_at(self._batch_indices(micro_index)).to(self.accelerator.device)
        from hfgen.data.images.transforms import uint8_to_float

        if self._loader_next != micro_index:  # first batch, or a jump (resume): restart the loader there
            self._close_loader()
            self._loader_iterator = iter(self._make_loader(micro_index))
        self._loader_next = micro_index + 1
        try:
            batch = next(self._loader_iterator)
        except DatasetError as err:  # re-raised from a worker with its traceback in the message: keep one line
            lines = [line for line in str(err).splitlines() if line.strip()]
            last = lines[-1].split("DatasetError: ", 1)[-1] if lines else str(err)
            raise DatasetError(last) from None
        return uint8_to_float(batch).to(self.accelerator.device)

    def _close_loader(self):
        """Stop the DataLoader's worker processes (lazy loading) and forget the iterator."""
        iterator, self._loader_iterator, self._loader_next = self._loader_iterator, None, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()

    def _make_loader(self, first_micro_index: int):
        """A `torch.utils.data.DataLoader` decoding the micro-batches ``first_micro_index, +1, ...`` in the seeded
        order of `_batch_indices` with ``--dataloader_num_workers`` workers."""
        from torch.utils.data import DataLoader

        trainer = self

        class _SeededBatches(torch.utils.data.Sampler):
            def __iter__(self):
                index = first_micro_index
                while True:
                    yield trainer._batch_indices(index).tolist()
                    index += 1

        workers = self.data_args.dataloader_num_workers
        return DataLoader(
            self.decoder,
            batch_sampler=_SeededBatches(),
            num_workers=workers,
            prefetch_factor=4 if workers else None,
        )

    def _noise_generator(self, micro_index: int) -> torch.Generator:
        seed = derived_seed(self.args.seed, "noise", micro_index, self.accelerator.process_index)
        return torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, step: int):
        """`Checkpoints.save` with this run's histories (the loop's state besides the accelerator's)."""
        self.checkpoints.save(
            step,
            {
                "loss_history": self.history,
                "eval_history": self.eval_history,
                "best_fid": self.best_fid if math.isfinite(self.best_fid) else None,
            },
        )

    def _resume(self) -> int:
        """`Checkpoints.load` of ``--resume_from_checkpoint``; restores the histories; returns the step (0: none)."""
        step, state = self.checkpoints.load(self.args.resume_from_checkpoint)
        if not state:
            return step
        self.history = {k: [tuple(p) for p in v] for k, v in state.get("loss_history", {}).items()} or self.history
        self.eval_history = {k: [tuple(p) for p in v] for k, v in state.get("eval_history", {}).items()}
        if state.get("best_fid") is not None:
            self.best_fid = float(state["best_fid"])
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

    # ----------------------------------------------------------------- outputs
    @contextlib.contextmanager
    def _ema_weights(self):
        """Temporarily swap the EMA weights into the EMA'd model (no-op without --use_ema)."""
        if self.ema is None:
            yield
            return
        params = list(self.unwrapped[self.objective.ema_model].parameters())
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield
        finally:
            self.ema.restore(params)

    def _save_sample_grid(self, step: int):
        from hfgen.plotting import save_image_grid

        for model in self.unwrapped.values():
            model.eval()
        with self._ema_weights(), torch.no_grad():
            pipeline = self.objective.build_pipeline(self.unwrapped)
            generator = torch.Generator().manual_seed(derived_seed(self.args.seed, "samples"))
            count, labels = self.args.num_sample_images, None
            if self.num_classes:  # one row per class: ceil(N / C) images of class 0, then of class 1, ...
                per_class = -(-count // self.num_classes)
                labels = torch.arange(self.num_classes).repeat_interleave(per_class)
                count = len(labels)
            images = self.objective.sample_images(pipeline, count, generator, class_labels=labels)
            held_out = self.objective.held_out_metrics(pipeline, torch.Generator().manual_seed(self.args.seed))
        for model in self.unwrapped.values():
            model.train()
        for key, value in held_out.items():  # e.g. held-out bits/dim of a flow, next to the training loss
            self.history.setdefault(key, []).append((step, value))
        if held_out and self.args.report_to != "none":
            self.accelerator.log(held_out, step=step)
        path = os.path.join(self.output_dir, SAMPLES_DIR, f"step-{step:06d}.png")
        save_image_grid(images, path, nrow=len(images) // self.num_classes if self.num_classes else None)
        self.last_grid = path
        if self.args.report_to != "none":
            from hfgen.training.trackers import log_images

            log_images(self.accelerator, {"samples": path}, step)

    def _make_scorer(self):
        """The `MetricScorer` of ``--eval_steps``: the training data's reference and features (``auto``) or the
        ones named by ``--eval_reference`` / ``--eval_features``.

        Raises:
            ConfigurationError: ``--eval_num_images`` is too few for FID in the features' dimension.
        """
        from hfgen.metrics.image_quality import DATA_KEYS, MetricScorer, minimum_samples, resolve_features

        args, data = self.args, self.data_args
        spec = {key: getattr(data, key) for key in DATA_KEYS}
        reference = spec if args.eval_reference == "auto" else args.eval_reference
        features = resolve_features(args.eval_features, spec, data.num_channels, data.resolution)
        scorer = MetricScorer(reference, features, data.resolution, data.num_channels, seed=args.seed)
        dims = int(scorer.reference_features.shape[1])
        if args.eval_num_images < minimum_samples("fid", dims):
            raise ConfigurationError(
                f"--eval_num_images {args.eval_num_images} is too few for FID with {dims}-dimensional "
                f"{scorer.features_name} features; use --eval_num_images {minimum_samples('fid', dims)} or more"
            )
        return scorer

    def _evaluate(self, step: int):
        """FID/KID of ``--eval_num_images`` samples (the objective's periodic sampler), logged; best kept."""

        args = self.args
        for model in self.unwrapped.values():
            model.eval()
        with self._ema_weights(), torch.no_grad():
            pipeline = self.objective.build_pipeline(self.unwrapped)
            generator = torch.Generator().manual_seed(derived_seed(args.seed, "eval"))
            images = self.objective.sample_images(pipeline, args.eval_num_images, generator)
            if self.scorer is None:
                self.scorer = self._make_scorer()
            metrics = self.scorer.score(images)
            improved = metrics["fid"] < self.best_fid
            if args.save_best and improved:
                best_dir = os.path.join(self.output_dir, "best")
                pipeline.save_pretrained(best_dir, safe_serialization=True)
                with open(os.path.join(best_dir, "best_metrics.json"), "w") as handle:
                    json.dump({"step": step, **metrics}, handle, indent=2, sort_keys=True)
        for model in self.unwrapped.values():
            model.train()
        self.best_fid = min(self.best_fid, metrics["fid"])
        for key in EVAL_HISTORY_KEYS:
            if metrics.get(key) is not None:
                self.eval_history.setdefault(key, []).append((step, float(metrics[key])))
        if args.report_to != "none":
            self.accelerator.log(
                {
                    "eval/fid": metrics["fid"],
                    "eval/kid_mean": metrics["kid_mean"],
                    "eval/coverage": metrics["coverage"],
                    "eval/fid_real_data_floor": metrics["real_data_floor"]["fid"],
                },
                step=step,
            )
        self.accelerator.print(
            f"step {step}: FID {metrics['fid']:.3f} (floor {metrics['real_data_floor']['fid']:.3f}), "
            f"KID {metrics['kid_mean']:.3f}" + (" - new best, saved to best/" if args.save_best and improved else "")
        )

    def _figure(self, draw, what: str) -> None:
        """Run ``draw()``; a figure that fails is a warning, never the end of a run whose model is trained."""
        try:
            draw()
        except Exception as err:  # noqa: BLE001 - figures are extras; the weights and checkpoints are the work
            message = f"could not draw {what} ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
            logger.warning(message)
            print(f"hfgen: warning: {message}; training and saving go on", file=sys.stderr)

    def _finish(self, step: int, seconds: float):
        from hfgen.output_folder.hub import push_to_hub
        from hfgen.output_folder.model_card import write_model_card
        from hfgen.plotting import plot_loss_curves

        for model in self.unwrapped.values():
            model.eval()
        with self._ema_weights():  # the trained pipeline first: no figure below can lose it
            pipeline = self.objective.build_pipeline(self.unwrapped)
            try:
                pipeline.save_pretrained(self.output_dir, safe_serialization=True)
            except (OSError, RuntimeError) as err:
                failure = write_failure(err, self.output_dir, self.checkpoints.last)
                if failure is None:
                    raise
                raise failure from None
        if self.last_grid is None or not self.last_grid.endswith(f"step-{step:06d}.png"):
            self._figure(lambda: self._save_sample_grid(step), f"the final sample grid (step {step})")
        final = self.history.get(self._loss_key(self.updates[-1]))  # the last update's loss (GANs: the generator's)
        self.context.final_loss = final[-1][1] if final else None
        self._figure(
            lambda: plot_loss_curves(
                self.history,
                os.path.join(self.output_dir, LOSS_PLOT),
                title=f"{self.objective.name} loss",
                ylabel=self.objective.loss_label,
            ),
            LOSS_PLOT,
        )
        self._figure(lambda: self.objective.write_figures(self.output_dir, self.history, self.eval_history), "figures")
        if self.eval_history.get("fid"):
            self._figure(
                lambda: plot_loss_curves(
                    {"FID": self.eval_history["fid"]},
                    os.path.join(self.output_dir, "fid.png"),
                    title=f"FID during training ({self.scorer.features_name} features)",
                    ylabel="FID",
                ),
                "fid.png",
            )
        if self.args.report_to != "none":  # the curves as images, next to the grids logged on the way
            from hfgen.training.trackers import log_images

            curves = {"loss_curve": os.path.join(self.output_dir, LOSS_PLOT)}
            curves["eval/fid_curve"] = (
                os.path.join(self.output_dir, "fid.png") if self.eval_history.get("fid") else None
            )
            log_images(self.accelerator, curves, step)
        grid = os.path.relpath(self.last_grid, self.output_dir) if self.last_grid else None
        data_args = self.data_args
        datasets = None  # data set names; the card writer keeps Hub ids in `datasets:` and tags the rest
        if data_args.train_data_dir is None:
            datasets = [data_args.dataset_name or "digits"]
        write_model_card(
            self.output_dir,
            self.objective.model_card_template,
            self._model_card_variables(step, seconds, grid),
            tags=(*self.objective.tags, "class-conditional") if self.num_classes else self.objective.tags,
            pipeline_tag=self.objective.pipeline_tag,
            datasets=datasets,
        )
        if self.args.push_to_hub:
            push_to_hub(
                self.output_dir, self.args.hub_model_id, token=self.args.hub_token, private=self.args.hub_private_repo
            )

    def _model_card_variables(self, step: int, seconds: float, sample_grid: str | None) -> dict:
        """The model card template's variables for this run: every argument (secrets dropped by the card writer),
        the family's own (`Objective.model_card_context`) and facts about the run."""
        import dataclasses
        import platform

        from hfgen.data.images.source import resolve_held_out_size
        from hfgen.output_folder.model_card import hub_id_placeholder, library_versions, training_command

        context, args, data_args = self.context, self.args, self.data_args
        repo_id = args.hub_model_id or hub_id_placeholder(self.output_dir)  # never a local path (issue 19)
        images_seen = step * args.train_batch_size * args.gradient_accumulation_steps * context.num_processes
        if data_args.train_data_dir is None and data_args.dataset_name in (None, "digits"):
            held_out_size = 360  # the digits' fixed test split
        else:
            held_out_size = resolve_held_out_size(
                data_args.dataset_name, data_args.train_data_dir, data_args.held_out_size
            )
        variables = dataclasses.asdict(args)
        if context.model_args is not None:
            variables.update(dataclasses.asdict(context.model_args))
        variables.update(self.objective.model_card_context(context))
        variables.update(
            model_name=os.path.basename(os.path.normpath(repo_id)),
            repo_id=repo_id,
            dataset_label=context.dataset_label,
            num_train_images=context.num_train_images,
            num_channels=context.num_channels,
            resolution=context.resolution,
            num_parameters_m=f"{context.num_parameters / 1e6:.2f}",
            sample_grid=sample_grid,
            global_step=step,
            epochs=f"{images_seen / max(1, context.num_train_images):.0f}",
            train_minutes=f"{seconds / 60:.1f}",
            hardware=f"{os.cpu_count()} CPU core(s) ({platform.machine()})",
            final_loss=f"{context.final_loss:.4f}" if context.final_loss is not None else "n/a",
            training_command=training_command(self.objective.name, data_args, args, context.model_args),
            versions=library_versions(),
            num_processes=context.num_processes,
            label_source=context.label_source,
            held_out_size=held_out_size,
            class_conditional=bool(context.num_classes),
            conditional_section=None,
        )
        if context.num_classes:
            from hfgen.output_folder.model_card import conditional_section

            family = "gan" if self.objective.ema_model == "generator" else self.objective.name
            variables["conditional_section"] = conditional_section(
                family, repo_id, context.id2label, context.label_source, args.conditioning_dropout_prob
            )
        return variables

    # -------------------------------------------------------------------- loop
    def run(self) -> TrainingResult:
        """Train (see `train`); DataLoader workers of ``--lazy_loading`` are stopped however the run ends."""
        from hfgen.training.lock import OutputFolderLock

        self._loader_iterator = self._loader_next = None
        main_rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"  # one lock per run, not per rank
        lock = OutputFolderLock(self.output_dir) if main_rank else None
        if lock is not None:
            lock.acquire()  # before anything is written: a second run on this folder stops here
        try:
            return self._run()
        finally:
            self._close_loader()
            if lock is not None:
                lock.release()

    def _run(self) -> TrainingResult:
        """The loop: set up, build, resume, then one `_train_step` and one `_after_step` per optimiser step."""
        from tqdm.auto import tqdm

        args, accelerator = self.args, self._setup()
        models, optimizers, schedulers = self._build_models()
        self._write_run_config()
        initial_lrs = [[group["initial_lr"] for group in opt.param_groups] for opt in optimizers]
        global_step = self._resume()
        if global_step:
            self.checkpoints.apply_learning_rates(optimizers, schedulers, initial_lrs)
        self.updates = self.objective.updates(self.context)
        accelerator.print(
            f"Training {self.objective.name} on {self.num_images} images ({self.context.num_channels}x"
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
            self._finish(global_step, seconds)
            accelerator.print(f"Saved the trained pipeline to {self.output_dir} ({seconds:.0f} s of training).")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainingResult(self.output_dir, global_step, self.history, seconds, step_seconds, self.eval_history)

    def _setup(self):
        """The accelerator, the output-folder check, checkpoints, the data and the `TrainingContext`; returns the
        accelerator."""
        args = self.args
        self.accelerator = accelerator = self._make_accelerator()
        self._check_output_dir()
        self.checkpoints = Checkpoints(accelerator, self.output_dir, args.seed, args.checkpoints_total_limit)
        self.last_grid = None
        self._load_data()
        order = torch.randperm(self.num_images, generator=torch.Generator().manual_seed(args.seed))
        self.context = TrainingContext(
            data_args=self.data_args,
            training_args=args,
            model_args=self.model_args,
            num_channels=self.data_args.num_channels,
            resolution=self.data_args.resolution,
            num_train_images=self.num_images,
            dataset_label=_dataset_label(self.data_args),
            num_processes=accelerator.num_processes,
            train_images=self._images_at(order[:TRAIN_IMAGES_SUBSET].sort().values),
            preview_images=self._images_at(order[:32]),
            label_source=self.label_source,
            num_classes=self.num_classes,
            id2label=self.id2label,
        )
        if args.eval_steps and not self.objective.can_sample:
            raise ConfigurationError(
                f"{self.objective.name} cannot generate new images, so --eval_steps (FID during training) does not "
                "apply; drop --eval_steps"
            )
        if args.eval_steps and accelerator.is_main_process:
            self.scorer = self._make_scorer()  # before training: a bad --eval_num_images must not cost a run
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
        self.ema = None
        if args.use_ema:
            from diffusers.training_utils import EMAModel

            ema_model = models[self.objective.ema_model]
            self.ema = EMAModel(
                ema_model.parameters(),
                decay=args.ema_max_decay,
                use_ema_warmup=True,
                inv_gamma=args.ema_inv_gamma,
                power=args.ema_power,
                model_cls=type(ema_model),
                model_config=ema_model.config,
            )
        names = list(models)
        prepared = accelerator.prepare(*models.values(), *optimizers, *schedulers)
        models = dict(zip(names, prepared[: len(names)]))
        optimizers = list(prepared[len(names) : len(names) + len(optimizers)])
        schedulers = list(prepared[len(names) + len(optimizers) :])
        self.unwrapped = {name: accelerator.unwrap_model(m) for name, m in models.items()}
        if self.ema is not None:
            self.ema.to(accelerator.device)
            ema_key = self.objective.ema_model
            self.checkpoints.register_ema_hooks(self.ema, ema_key, type(self.unwrapped[ema_key]))

        return models, optimizers, schedulers

    def _write_run_config(self) -> None:
        """``training_args.json`` (secrets dropped, plus facts about the run) and the trackers' config."""
        args, accelerator = self.args, self.accelerator
        if accelerator.is_main_process:
            os.makedirs(self.output_dir, exist_ok=True)
            config = {"model": self.objective.name, **arguments_to_dict(self.data_args, args)}
            if self.model_args is not None:
                config.update(arguments_to_dict(self.model_args))
            config["num_processes"] = accelerator.num_processes
            # facts about the run, not flags: how many images were trained on and where the labels came from
            config["num_train_images"] = self.num_images
            config["labels"] = self.label_source  # None when the data has no labels
            if self.num_classes:
                config["num_classes"] = self.num_classes
            write_training_args(self.output_dir, config)
            if args.report_to != "none":
                from hfgen.training.trackers import tracker_init_kwargs

                accelerator.init_trackers(
                    f"hfgen-{self.objective.name}",
                    config=_scalars(config),
                    init_kwargs=tracker_init_kwargs(args.report_to, os.path.join(self.output_dir, "logs")),
                )

    def _train_step(self, global_step: int, models: dict, optimizers: list, progress) -> tuple[dict, dict, dict]:
        """Every update of one optimiser step (each with its micro-batches); stops on a NaN/inf loss or gradient.
        Returns ``(losses, logs_sum, grad_norms)``: per-update losses, accumulated extra scalars, gradient norms."""
        args, accelerator, updates = self.args, self.accelerator, self.updates
        accumulation = args.gradient_accumulation_steps
        losses: dict[str, list[float]] = {}
        logs_sum: dict[str, list[float]] = {}
        grad_norms: dict[str, float] = {}
        for position, update in enumerate(updates):
            update_loss = torch.zeros((), device=accelerator.device)
            for micro in range(accumulation):
                index = (global_step * len(updates) + position) * accumulation + micro
                images = self._batch(index)
                generator = self._noise_generator(index)
                if self.data_args.random_flip:
                    from hfgen.data.images.transforms import random_hflip

                    images = random_hflip(images, generator)
                with contextlib.ExitStack() as stack:
                    if micro < accumulation - 1:
                        for m in models.values():
                            stack.enter_context(accelerator.no_sync(m))
                    with accelerator.autocast():
                        labels = self._labels_at(index)  # only a conditional run passes class_labels
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
            self.history.setdefault(key, []).append((global_step, value))
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
            self._figure(lambda s=global_step: self._save_sample_grid(s), f"the sample grid at step {global_step}")
        if args.eval_steps and global_step % args.eval_steps == 0:
            if accelerator.is_main_process:
                self._evaluate(global_step)
            accelerator.wait_for_everyone()
        if global_step % args.checkpointing_steps == 0:  # last: the checkpoint records this step's evaluation
            self._save_checkpoint(global_step)
