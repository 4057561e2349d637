"""What the training loop (`hfgen.training.trainer`) watches on the way: the loss and evaluation histories, periodic
sample grids, FID during training (``--eval_steps``, best pipeline kept with ``--save_best``), and figures that may
fail without ending a run.

Sampling here is seeded by ``derived_seed(seed, "samples")`` (grids) and ``derived_seed(seed, "eval")`` (FID), so a
grid or a score at step k is the same in a resumed run as in an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field

import torch

from hfgen.errors import ConfigurationError
from hfgen.output_folder.layout import SAMPLES_DIR
from hfgen.training.batches import derived_seed

logger = logging.getLogger(__name__)

# what `--eval_steps` keeps over training (class metrics only where the features classify, e.g. digits, mnist)
EVAL_HISTORY_KEYS = ("fid", "kid_mean", "precision", "recall", "coverage", "classes_covered", "class_entropy_bits")


@dataclass
class TrainingHistory:
    """The loop's own state besides the accelerator's, saved in every checkpoint's ``trainer_state.json``.

    Attributes:
        losses (`dict`): series name (``loss``, ``critic_loss``, extra scalars, held-out metrics) -> list of
            ``(step, value)``.
        evals (`dict`): with ``--eval_steps``, metric name (``EVAL_HISTORY_KEYS``) -> list of ``(step, value)``.
        best_fid (`float`): the lowest FID so far (``inf`` before the first evaluation).
    """

    losses: dict = field(default_factory=dict)
    evals: dict = field(default_factory=dict)
    best_fid: float = math.inf

    def state(self) -> dict:
        """The JSON-able state written into a checkpoint (``best_fid`` None before the first evaluation)."""
        return {
            "loss_history": self.losses,
            "eval_history": self.evals,
            "best_fid": self.best_fid if math.isfinite(self.best_fid) else None,
        }

    def restore(self, state: dict) -> None:
        """Take the histories of a checkpoint's `state` (lists of pairs become tuples), in place."""
        self.losses = {k: [tuple(p) for p in v] for k, v in state.get("loss_history", {}).items()} or self.losses
        self.evals = {k: [tuple(p) for p in v] for k, v in state.get("eval_history", {}).items()}
        if state.get("best_fid") is not None:
            self.best_fid = float(state["best_fid"])


def draw_figure(draw, what: str) -> None:
    """Run ``draw()``; a figure that fails is a warning, never the end of a run whose model is trained."""
    try:
        draw()
    except Exception as err:  # noqa: BLE001 - figures are extras; the weights and checkpoints are the work
        message = f"could not draw {what} ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
        logger.warning(message)
        print(f"hfgen: warning: {message}; training and saving go on", file=sys.stderr)


def make_scorer(training_args, data_args):
    """The `MetricScorer` of ``--eval_steps``: the training data's reference and features (``auto``) or the ones
    named by ``--eval_reference`` / ``--eval_features`` (``data_args`` with resolution and channels resolved).

    Raises:
        ConfigurationError: ``--eval_num_images`` is too few for FID in the features' dimension.
    """
    from hfgen.metrics.image_quality import DATA_KEYS, MetricScorer, minimum_samples, resolve_features

    args, data = training_args, data_args
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


class Monitor:
    """Sample grids and evaluations of the models being trained (main process only), recorded in ``history``.

    Args:
        objective (`Objective`): the family's objective (builds the pipeline, samples).
        training_args (`TrainingArguments`), data_args (`DataArguments`): the run's resolved arguments.
        accelerator (`accelerate.Accelerator`): for tracker logging and printing.
        output_dir (`str`): the run's output folder (grids go to ``samples/step-NNNNNN.png``).
        models (`dict`): name -> unwrapped model, as the objective's `build_pipeline` takes them.
        ema (`diffusers.training_utils.EMAModel`, *optional*): the EMA of ``models[objective.ema_model]``.
        history (`TrainingHistory`): where held-out metrics, evaluations and the best FID are recorded.
        num_classes (`int`, *optional*): C of a ``--class_conditional`` run (grids show one row per class).
        scorer (`MetricScorer`, *optional*): made ahead by `make_scorer`; else made at the first evaluation.

    Attributes:
        last_grid (`str`): the path of the last sample grid written, None before the first.
    """

    def __init__(
        self,
        objective,
        training_args,
        data_args,
        accelerator,
        output_dir: str,
        *,
        models: dict,
        ema,
        history: TrainingHistory,
        num_classes: int | None = None,
        scorer=None,
    ):
        self.objective, self.args, self.data_args = objective, training_args, data_args
        self.accelerator, self.output_dir = accelerator, output_dir
        self.models, self.ema, self.history = models, ema, history
        self.num_classes, self.scorer = num_classes, scorer
        self.last_grid = None

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily swap the EMA weights into the EMA'd model (no-op without --use_ema)."""
        if self.ema is None:
            yield
            return
        params = list(self.models[self.objective.ema_model].parameters())
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield
        finally:
            self.ema.restore(params)

    def save_sample_grid(self, step: int) -> None:
        """Sample ``--num_sample_images`` images (EMA weights) into ``samples/step-NNNNNN.png``, record the
        objective's held-out metrics, and log both to the trackers."""
        from hfgen.plotting import save_image_grid

        for model in self.models.values():
            model.eval()
        with self.ema_weights(), torch.no_grad():
            pipeline = self.objective.build_pipeline(self.models)
            generator = torch.Generator().manual_seed(derived_seed(self.args.seed, "samples"))
            count, labels = self.args.num_sample_images, None
            if self.num_classes:  # one row per class: ceil(N / C) images of class 0, then of class 1, ...
                per_class = -(-count // self.num_classes)
                labels = torch.arange(self.num_classes).repeat_interleave(per_class)
                count = len(labels)
            images = self.objective.sample_images(pipeline, count, generator, class_labels=labels)
            held_out = self.objective.held_out_metrics(pipeline, torch.Generator().manual_seed(self.args.seed))
        for model in self.models.values():
            model.train()
        for key, value in held_out.items():  # e.g. held-out bits/dim of a flow, next to the training loss
            self.history.losses.setdefault(key, []).append((step, value))
        if held_out and self.args.report_to != "none":
            self.accelerator.log(held_out, step=step)
        path = os.path.join(self.output_dir, SAMPLES_DIR, f"step-{step:06d}.png")
        save_image_grid(images, path, nrow=len(images) // self.num_classes if self.num_classes else None)
        self.last_grid = path
        if self.args.report_to != "none":
            from hfgen.training.trackers import log_images

            log_images(self.accelerator, {"samples": path}, step)

    def evaluate(self, step: int) -> None:
        """FID/KID of ``--eval_num_images`` samples (the objective's periodic sampler), logged; best kept."""
        args = self.args
        for model in self.models.values():
            model.eval()
        with self.ema_weights(), torch.no_grad():
            pipeline = self.objective.build_pipeline(self.models)
            generator = torch.Generator().manual_seed(derived_seed(args.seed, "eval"))
            images = self.objective.sample_images(pipeline, args.eval_num_images, generator)
            if self.scorer is None:
                self.scorer = make_scorer(args, self.data_args)
            metrics = self.scorer.score(images)
            improved = metrics["fid"] < self.history.best_fid
            if args.save_best and improved:
                best_dir = os.path.join(self.output_dir, "best")
                pipeline.save_pretrained(best_dir, safe_serialization=True)
                with open(os.path.join(best_dir, "best_metrics.json"), "w") as handle:
                    json.dump({"step": step, **metrics}, handle, indent=2, sort_keys=True)
        for model in self.models.values():
            model.train()
        self.history.best_fid = min(self.history.best_fid, metrics["fid"])
        for key in EVAL_HISTORY_KEYS:
            if metrics.get(key) is not None:
                self.history.evals.setdefault(key, []).append((step, float(metrics[key])))
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
