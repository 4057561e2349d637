"""The deterministic autoencoder in the one training loop: mean squared reconstruction error."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hfgen.training.objectives.base import Objective, TrainingContext


@dataclass
class AutoencoderArguments:
    """Autoencoder flags."""

    latent_dim: int = field(default=2, metadata={"help": "Size of the code (2 gives a latent map without PCA)."})
    block_out_channels: list[int] | None = field(
        default=None,
        metadata={
            "help": "Channels per resolution level (each halves the image). Default by resolution: 32 64 (16, 28), "
            "32 64 128 (32), 32 64 128 256 (64)."
        },
    )

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"--latent_dim must be at least 1, got {self.latent_dim}")
        if self.block_out_channels is not None and (
            not self.block_out_channels or any(c < 1 for c in self.block_out_channels)
        ):
            raise ValueError(f"--block_out_channels must be positive, got {self.block_out_channels}")


def configure_conv(args: AutoencoderArguments, resolution: int) -> None:
    """Fill ``--block_out_channels`` left unset with the default for ``resolution``
    (`hfgen.models.resolution.default_conv_levels`) and check that the encoder can halve the resolution.

    Raises:
        ConfigurationError: for a resolution the encoder cannot handle, naming the valid ones.
    """
    from hfgen.errors import ConfigurationError
    from hfgen.models.resolution import check_conv_resolution, default_conv_levels

    if args.block_out_channels is None:
        args.block_out_channels = default_conv_levels(resolution)
    try:
        check_conv_resolution(resolution, len(args.block_out_channels))
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


def build_conv_model(model_cls, context: TrainingContext, **extra):
    """``model_cls`` (`AutoencoderModel` or `VAEModel`) for ``context``'s data and flags (shared with the VAE).

    Raises:
        ConfigurationError: a resolution the encoder cannot halve once per level.
    """
    from hfgen.errors import ConfigurationError

    args = context.model_args
    configure_conv(args, context.resolution)
    try:
        return model_cls(
            sample_size=context.resolution,
            in_channels=context.num_channels,
            latent_dim=args.latent_dim,
            block_out_channels=tuple(args.block_out_channels),
            **extra,
        )
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


def reconstruction_pairs(pipeline, images: torch.Tensor, num_images: int) -> torch.Tensor:
    """Originals and reconstructions interleaved (original, reconstruction, ...): `(num_images, C, H, W)` in [0, 1]."""
    originals = images[: max(1, num_images // 2)]
    reconstructions = pipeline.reconstruct(originals, output_type="pt").images
    pairs = torch.stack([(originals.cpu() + 1) / 2, reconstructions.cpu()], dim=1).flatten(0, 1)
    return pairs[:num_images]


class AutoencoderObjective(Objective):
    """Mean squared error between images and their reconstructions (per pixel, in [-1, 1] units)."""

    name = "autoencoder"
    arguments_class = AutoencoderArguments
    defaults = {"max_train_steps": 3000, "learning_rate": 1e-3}
    model_card_template = "autoencoder.md"
    ema_model = "autoencoder"
    loss_label = "mean squared error per pixel"

    def configure(self, resolution, num_channels, model_args):
        configure_conv(model_args, resolution)

    can_sample = False
    pipeline_tag = "image-to-image"
    tags = ("autoencoder", "representation-learning")

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        from hfgen.models.autoencoder import AutoencoderModel

        self.preview_images = context.preview_images
        return {"autoencoder": build_conv_model(AutoencoderModel, context)}

    def compute_loss(self, models, images, generator, phase="model", step=0, class_labels=None):
        output = models["autoencoder"](images)
        return output.loss, {}

    def build_pipeline(self, models):
        from hfgen.pipelines.pipeline_autoencoder import AutoencoderPipeline

        return AutoencoderPipeline(autoencoder=models["autoencoder"])

    def sample_images(self, pipeline, num_images, generator, class_labels=None):
        """Reconstructions of fixed training images (an autoencoder cannot sample): originals and reconstructions
        interleaved."""
        return reconstruction_pairs(pipeline, self.preview_images, num_images)

    def model_card_context(self, context: TrainingContext) -> dict:
        return {"latent_dim": context.model_args.latent_dim}
