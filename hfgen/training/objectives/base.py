"""The interface between a model family and the one training loop (`hfgen.training.trainer`).

An objective says only what is specific to its family: which argument dataclass it adds to the command line, its
defaults, how to build the trainable model(s), the loss of one batch, the pipeline to save, how to draw the
periodic sample grid and what goes into its model card. The loop owns everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class TrainingContext:
    """What an objective learns about the run before it builds its models.

    Attributes:
        data_args (`DataArguments`), training_args (`TrainingArguments`), model_args: the parsed arguments,
            with family defaults resolved.
        num_channels (`int`): channels of the training images (1 or 3).
        resolution (`int`): their height and width in pixels.
        num_train_images (`int`): size of the training set.
        dataset_label (`str`): a short name of the data source, for model cards.
        num_processes (`int`): processes training together.
        num_parameters (`int`): trainable parameters (set once the models are built).
        final_loss (`float`, *optional*): the last logged loss (set at the end of training).
        preview_images (`torch.Tensor`, *optional*): up to 32 fixed training images `(N, C, H, W)` in [-1, 1], for
            objectives whose periodic grid shows reconstructions.
        train_images (`torch.Tensor`, *optional*): a fixed random subset of at most 2,000 training images
            `(N, C, H, W)` in [-1, 1] (on the CPU, the whole set when smaller), for objectives whose settings depend on
            the data (NCSN's ``--sigma_max auto``).
        label_source (`str`, *optional*): where the training labels came from (``mnist_test_labels.npy``,
            ``list_attr_celeba.txt:Smiling``, ``label column``), None when the data has no labels.
        num_classes (`int`, *optional*): C, the number of classes of a ``--class_conditional`` run (the largest
            label + 1), None otherwise.
        id2label (`dict`, *optional*): class index -> name of a ``--class_conditional`` run (saved with the model).
    """

    data_args: Any
    training_args: Any
    model_args: Any
    num_channels: int
    resolution: int
    num_train_images: int
    dataset_label: str
    num_processes: int = 1
    num_parameters: int = 0
    final_loss: float | None = None
    preview_images: torch.Tensor | None = None
    train_images: torch.Tensor | None = None
    label_source: str | None = None
    num_classes: int | None = None
    id2label: dict[int, str] | None = None


@dataclass(frozen=True)
class Update:
    """One optimiser update inside a training step (see `Objective.updates`).

    Attributes:
        name (`str`): the phase passed to `Objective.compute_loss` (``"model"``; GANs: ``"critic"``, ``"generator"``).
        optimizer (`int`): index of the optimiser (in `Objective.create_optimizers`' list) that this update steps.
    """

    name: str = "model"
    optimizer: int = 0


class Objective:
    """Base class of every family's objective. Subclasses override the methods that raise `NotImplementedError`.

    Class attributes:
        name (`str`): the model name on the command line (``hfgen train NAME``).
        arguments_class (`type`): a dataclass of family-specific flags, parsed with the loop's own.
        defaults (`dict`): values for loop/data fields left at ``None`` (e.g. ``resolution``, ``learning_rate``).
        model_card_template (`str`): file name of the Jinja template in ``model_cards/``.
        ema_model (`str`): the key of the model in `build_models` that `--use_ema` averages.
        can_sample (`bool`): whether the pipeline generates new images (False for the autoencoder: no periodic
            FID, ``--eval_steps`` is refused).
        loss_label (`str`): the y-axis label (with units) of ``loss.png``.
        supports_class_conditional (`bool`): whether ``--class_conditional`` applies (VAE, GANs, DDPM, NCSN); the
            loop then passes each batch's ``class_labels`` to `compute_loss` and ``context.num_classes`` is set.

    State: an objective is created fresh for each run (`get_objective`). Everything it needs from the run arrives as
    arguments: `resolve_defaults` and `configure` see the parsed arguments, `build_models(context)`, `updates(context)`
    and `create_optimizers(models, context)` the `TrainingContext`, `compute_loss(..., step)` the optimiser step. The
    only attributes kept between calls are `defaults` (set by `resolve_defaults`) and `context` (set by
    `build_models`, read by `compute_loss`, `sample_images` and `model_card_context` of the same run); a subclass
    that keeps anything else documents it here.
    """

    name: str = ""
    arguments_class: type | None = None
    defaults: dict[str, Any] = {}
    model_card_template: str = ""
    ema_model: str = ""
    can_sample: bool = True
    supports_class_conditional: bool = False
    loss_label: str = "loss"
    pipeline_tag: str = "unconditional-image-generation"
    context: TrainingContext | None = None
    tags: tuple[str, ...] = ()

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        """Return the trainable models by name (the loop prepares, checkpoints and saves them). Subclasses store
        ``context`` as ``self.context`` when later calls need the run's arguments."""
        raise NotImplementedError

    def create_optimizers(self, models: dict[str, torch.nn.Module], context: TrainingContext) -> list:
        """One AdamW over all trainable parameters, with the loop's ``--adam_*`` flags. Override for GANs."""
        args = context.training_args
        params = [p for model in models.values() for p in model.parameters() if p.requires_grad]
        return [
            torch.optim.AdamW(
                params,
                lr=args.learning_rate,
                betas=(args.adam_beta1, args.adam_beta2),
                weight_decay=args.adam_weight_decay,
                eps=args.adam_epsilon,
            )
        ]

    def updates(self, context: TrainingContext) -> list[Update]:
        """The optimiser updates of one training step, in order; the same list every step.

        Default: one update of optimiser 0. GANs return ``n_critic`` critic updates then one generator update. Each
        update draws its own batch (and gradient-accumulation micro-batches), computes `compute_loss` with its
        ``phase``, clips the gradients of its optimiser's parameters, checks for NaN/inf, steps that optimiser, zeroes
        every gradient and calls `after_update`. LR schedules and EMA step once per training step.
        """
        return [Update()]

    def compute_loss(
        self,
        models: dict[str, torch.nn.Module],
        images: torch.Tensor,
        generator: torch.Generator,
        phase: str = "model",
        step: int = 0,
        class_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss of one batch and extra scalars to log.

        Args:
            models: the prepared (possibly DDP-wrapped) models from `build_models`.
            images (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): in [-1, 1].
            generator (`torch.Generator`): the only source of randomness to use (makes resuming exact).
            phase (`str`): the `Update.name` being computed.
            step (`int`): optimiser steps done before this one (for schedules inside the loss, e.g. instance noise).
            class_labels (`torch.Tensor` of shape `(batch_size,)`, *optional*): the images' classes in
                [0, ``context.num_classes``); the loop passes it only in a ``--class_conditional`` run, so an
                objective without conditioning may leave it out of its signature.
        """
        raise NotImplementedError

    def after_update(self, models: dict[str, torch.nn.Module], phase: str) -> None:
        """Called after each optimiser step (e.g. WGAN weight clipping). Default: nothing."""

    def resolve_defaults(self, data_args, training_args, model_args) -> None:
        """Fill loop/data fields left at ``None`` with `defaults` (override for defaults that depend on flags)."""
        for key, value in self.defaults.items():
            for args in (data_args, training_args):
                if hasattr(args, key) and getattr(args, key) is None:
                    setattr(args, key, value)

    def configure(self, resolution: int, num_channels: int, model_args) -> None:
        """Fill the family flags whose defaults depend on the image size (left at None by the user) and check that
        the networks can handle ``resolution`` x ``resolution`` images with ``num_channels`` channels; called before
        any image is decoded. Default: nothing.

        Raises:
            ConfigurationError: for a resolution the networks cannot handle, naming the valid ones.
        """

    def held_out_metrics(self, pipeline, generator: torch.Generator) -> dict[str, float]:
        """Scalars measured on held-out data each time the loop draws a sample grid (main process), recorded in the
        loss history and logged. Default: none."""
        return {}

    def write_figures(self, output_dir: str, history: dict, eval_history: dict) -> None:
        """Extra figures at the end of training (``history``: series name -> ``[(step, value)]``). Default: none."""

    def build_pipeline(self, models: dict[str, torch.nn.Module]):
        """A `DiffusionPipeline` holding the (unwrapped, EMA when used) models, ready for ``save_pretrained``."""
        raise NotImplementedError

    def sampling_options(self) -> tuple[str | None, int | None, dict]:
        """How the periodic grids and FID during training sample: ``(scheduler_name, num_inference_steps,
        pipeline_kwargs)`` for `hfgen.pipelines.sampling.sample_images`. Default: the pipeline's own sampler
        (``(None, None, {})``); DDPM names a cheap DDIM, NCSN fewer Langevin steps per level."""
        return None, None, {}

    def sample_images(
        self, pipeline, num_images: int, generator: torch.Generator, class_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Draw ``num_images`` samples for the periodic grid and FID: `(num_images, C, H, W)` floats in [0, 1].

        Goes through `hfgen.pipelines.sampling.sample_images` (the one sampling path, shared with `hfgen sample` and
        `hfgen evaluate`) with `sampling_options`. Families that cannot sample (the autoencoder) override it.
        ``class_labels`` `(num_images,)` asks a conditional model for those classes (None: every class in turn).
        """
        from hfgen.pipelines.sampling import sample_images

        scheduler_name, steps, pipeline_kwargs = self.sampling_options()
        return sample_images(
            pipeline,
            num_images,
            scheduler_name=scheduler_name,
            num_inference_steps=steps,
            batch_size=num_images,
            generator=generator,
            pipeline_kwargs=pipeline_kwargs,
            show_progress=False,
            class_labels=class_labels,
        ).images

    def model_card_context(self, context: TrainingContext) -> dict[str, Any]:
        """Extra variables for the model card template."""
        return {}


def drop_labels(
    class_labels: torch.Tensor, null_label: int, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Label dropout for classifier-free guidance (Ho & Salimans 2022, Algorithm 1): each label is replaced by
    ``null_label`` ("no label", the class index C) with ``probability``, drawn from ``generator``.

    Args:
        class_labels (`torch.Tensor` of shape `(B,)`): class indices in [0, C).
        null_label (`int`): C.
        probability (`float`): in [0, 1).

    Returns:
        `torch.Tensor` of shape `(B,)` on ``class_labels``' device.
    """
    if probability <= 0:
        return class_labels
    dropped = torch.rand(class_labels.shape[0], generator=generator) < probability
    return torch.where(dropped.to(class_labels.device), torch.full_like(class_labels, null_label), class_labels)
