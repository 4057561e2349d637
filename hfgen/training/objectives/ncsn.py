"""NCSN (Song & Ermon 2019) in the one training loop: denoising score matching over a geometric sequence of noise
levels, with λ(σ) = σ² weighting and one random level per sample; NCSNv2's choices (Song & Ermon 2020) as flags.

The score network is diffusers' `UNet2DModel`, conditioned on the noise-level index as its timestep; sampling is
`hfgen.schedulers.AnnealedLangevinScheduler` in `hfgen.pipelines.AnnealedLangevinPipeline`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from diffusers import UNet2DModel

from hfgen.errors import ConfigurationError
from hfgen.schedulers.scheduling_annealed_langevin import INIT_DISTRIBUTIONS, AnnealedLangevinScheduler
from hfgen.training.objectives.base import Objective, TrainingContext, drop_labels
from hfgen.training.objectives.unet import UNetArguments, configure_unet, unet_config_from_args


@dataclass
class NCSNArguments(UNetArguments):
    """NCSN flags (noise levels, Langevin sampling defaults saved in ``scheduler_config.json``) and the UNet's."""

    num_noise_levels: int = field(default=10, metadata={"help": "L, the number of geometric noise levels."})
    sigma_max: str = field(
        default="auto",
        metadata={
            "help": "σ_1, the largest noise level (images in [-1, 1]), or 'auto': the largest pairwise Euclidean "
            "distance between training images (NCSNv2, technique 1)."
        },
    )
    sigma_min: float = field(default=0.01, metadata={"help": "σ_L, the smallest noise level."})
    steps_per_level: int = field(default=100, metadata={"help": "T, Langevin steps per noise level when sampling."})
    sample_steps_per_level: int = field(
        default=20,
        metadata={
            "help": "Langevin steps per level of the sample grids drawn during training (cheap previews; the saved "
            "sampler and `hfgen sample` keep --steps_per_level). At most --steps_per_level."
        },
    )
    epsilon: float = field(default=2e-5, metadata={"help": "ε, the Langevin step size at the last level."})
    scale_output_by_sigma: bool = field(
        default=True, metadata={"help": "NCSNv2: the score is the UNet output divided by σ (false: the output)."}
    )
    init_distribution: str = field(
        default="uniform", metadata={"help": f"Initial sample when sampling: {', '.join(INIT_DISTRIBUTIONS)}."}
    )

    def __post_init__(self):
        if self.sigma_max != "auto":
            try:
                value = float(self.sigma_max)
            except ValueError:
                raise ValueError(f"--sigma_max takes a number or 'auto', got {self.sigma_max!r}") from None
            if not value > self.sigma_min:
                raise ValueError(f"--sigma_max {value} must exceed --sigma_min {self.sigma_min}")
        if not self.sigma_min > 0:
            raise ValueError(f"--sigma_min must be positive, got {self.sigma_min}")
        if self.num_noise_levels < 1 or self.steps_per_level < 1 or not self.epsilon > 0:
            raise ValueError("--num_noise_levels and --steps_per_level must be >= 1 and --epsilon > 0")
        if self.sample_steps_per_level < 1:
            raise ValueError(f"--sample_steps_per_level must be at least 1, got {self.sample_steps_per_level}")
        self.sample_steps_per_level = min(self.sample_steps_per_level, self.steps_per_level)
        if self.init_distribution not in INIT_DISTRIBUTIONS:
            raise ValueError(f"--init_distribution must be one of {', '.join(INIT_DISTRIBUTIONS)}")
        super().__post_init__()


def largest_pairwise_distance(images: torch.Tensor, chunk_size: int = 1024) -> float:
    """The largest Euclidean distance between two images of ``images`` `(N, C, H, W)` (NCSNv2's σ_1), in the
    images' own units; computed in chunks so that N×N distances never sit in memory at once.

    Raises:
        ValueError: for fewer than two images.
    """
    if len(images) < 2:
        raise ValueError(f"need at least two images for a pairwise distance, got {len(images)}")
    flat = images.reshape(len(images), -1).double()
    return max(float(torch.cdist(chunk, flat).max()) for chunk in flat.split(chunk_size))


def denoising_score_matching_loss(score: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Per-sample DSM loss with λ(σ) = σ² (Song & Ermon 2019, Eq. 5-6), for x̃ = x + σ·z:

        ℓ = ½·σ²·‖s(x̃, σ) + (x̃ - x)/σ²‖² = ½·‖σ·s(x̃, σ) + z‖²   (summed over the pixels).

    Args:
        score (`torch.Tensor` of shape `(batch_size, ...)`): s(x̃, σ) at the perturbed samples.
        noise (`torch.Tensor` of the same shape): the standard normal z that made x̃.
        sigmas (`torch.Tensor` of shape `(batch_size,)`): σ of each sample.

    Returns:
        `torch.Tensor` of shape `(batch_size,)`: the loss of each sample (nats-free, per image).
    """
    sigmas = sigmas.to(score.dtype).reshape(-1, *([1] * (score.ndim - 1)))
    return 0.5 * (sigmas * score + noise).pow(2).flatten(1).sum(dim=1)


class NCSNObjective(Objective):
    """Denoising score matching over L noise levels (NCSN), sampled by annealed Langevin dynamics."""

    name = "ncsn"
    arguments_class = NCSNArguments
    defaults = {"max_train_steps": 3000, "learning_rate": 1e-3}
    model_card_template = "ncsn.md"
    ema_model = "unet"
    supports_class_conditional = True
    loss_label = "DSM loss, λ(σ) = σ² (per image)"
    tags = ("ncsn", "score-based", "langevin-dynamics", "unconditional-image-generation")

    def configure(self, resolution, num_channels, model_args):
        configure_unet(model_args, resolution)

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        args = context.model_args
        self.sample_steps_per_level = args.sample_steps_per_level
        if args.sigma_max == "auto":
            if context.train_images is None or len(context.train_images) < 2:
                raise ConfigurationError(
                    "--sigma_max auto needs at least two training images (their largest distance); pass a number"
                )
            self.sigma_max = largest_pairwise_distance(context.train_images)
        else:
            self.sigma_max = float(args.sigma_max)
        if not self.sigma_max > args.sigma_min:
            raise ConfigurationError(
                f"σ_max = {self.sigma_max:g} (from --sigma_max {args.sigma_max}) must exceed --sigma_min "
                f"{args.sigma_min:g}; the training images may all be identical"
            )
        self.noise_scheduler = AnnealedLangevinScheduler(
            num_noise_levels=args.num_noise_levels,
            sigma_max=self.sigma_max,
            sigma_min=args.sigma_min,
            steps_per_level=args.steps_per_level,
            epsilon=args.epsilon,
            scale_output_by_sigma=args.scale_output_by_sigma,
            init_distribution=args.init_distribution,
        )
        self.context = context
        config = unet_config_from_args(args, context.resolution, context.num_channels, context.num_classes)
        return {"unet": UNet2DModel(**config)}

    def compute_loss(self, models, images, generator, phase="model", step=0, class_labels=None):
        scheduler = self.noise_scheduler
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        timesteps = torch.randint(0, scheduler.num_noise_levels, (images.shape[0],), generator=generator)
        timesteps = timesteps.to(images.device)
        noisy = scheduler.add_noise(images, noise, timesteps)
        extra = {}
        if class_labels is not None:  # label dropout trains the "no label" class C for classifier-free guidance
            probability = self.context.training_args.conditioning_dropout_prob
            extra["class_labels"] = drop_labels(class_labels, self.context.num_classes, probability, generator)
        score = scheduler.model_output_to_score(models["unet"](noisy, timesteps, **extra).sample.float(), timesteps)
        sigmas = scheduler.sigma_for_timesteps(timesteps).to(images.device)
        return denoising_score_matching_loss(score, noise.float(), sigmas).mean(), {}

    def build_pipeline(self, models):
        from hfgen.pipelines.pipeline_langevin import AnnealedLangevinPipeline

        id2label = self.context.id2label if self.context is not None else None
        return AnnealedLangevinPipeline(unet=models["unet"], scheduler=self.noise_scheduler, id2label=id2label)

    def sampling_options(self):
        """Annealed Langevin with ``--sample_steps_per_level`` steps per noise level for grids and FID."""
        return None, None, {"steps_per_level": self.sample_steps_per_level}

    def write_figures(self, output_dir, history, eval_history):
        """``figures/langevin_convergence.png``: the same 8 samples at the end of each noise level."""
        from hfgen.pipelines.pipeline_langevin import AnnealedLangevinPipeline
        from hfgen.plotting import plot_langevin_convergence

        pipeline = AnnealedLangevinPipeline.from_pretrained(output_dir, use_safetensors=True)
        plot_langevin_convergence(pipeline, os.path.join(output_dir, "figures", "langevin_convergence.png"))

    def model_card_context(self, context: TrainingContext) -> dict:
        args = context.model_args
        levels = args.num_noise_levels
        return {
            "num_noise_levels": levels,
            "sigma_max": f"{self.sigma_max:.4g}",
            "sigma_max_source": "the largest pairwise distance between training images"
            if args.sigma_max == "auto"
            else "--sigma_max",
            "sigma_min": f"{args.sigma_min:g}",
            "steps_per_level": args.steps_per_level,
            "epsilon": f"{args.epsilon:g}",
            "scale_output_by_sigma": args.scale_output_by_sigma,
            "init_distribution": args.init_distribution,
            "nfe": levels * args.steps_per_level + 1,
        }
