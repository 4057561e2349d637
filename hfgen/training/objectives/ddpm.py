"""DDPM (Ho et al. 2020, "Denoising Diffusion Probabilistic Models") in the one training loop.

The denoiser is diffusers' own `UNet2DModel`, the noise schedule diffusers' `DDPMScheduler`; the saved folder is a
stock `DDPMPipeline` (loadable with `DDPMPipeline.from_pretrained` and `DDIMPipeline.from_pretrained`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from hfgen.pipelines.scheduling import TIMESTEP_SPACINGS
from hfgen.training.objectives.base import Objective, TrainingContext, drop_labels
from hfgen.training.objectives.unet import UNetArguments, configure_unet, unet_config_from_args

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass
class DDPMArguments(UNetArguments):
    """DDPM-specific flags (names as in diffusers' train_unconditional.py) and the UNet's."""

    ddpm_num_steps: int = field(default=1000, metadata={"help": "Number of diffusion steps T in training."})
    ddpm_beta_schedule: str = field(
        default="linear", metadata={"help": f"Noise schedule: {', '.join(BETA_SCHEDULES)}."}
    )
    prediction_type: str = field(
        default="epsilon", metadata={"help": f"What the UNet predicts: {', '.join(PREDICTION_TYPES)}."}
    )
    ddpm_timestep_spacing: str = field(
        default="leading",
        metadata={
            "help": f"How samplers with fewer steps than --ddpm_num_steps pick their timesteps (diffusers' "
            f"timestep_spacing, saved in the scheduler config): {', '.join(TIMESTEP_SPACINGS)}. 'trailing' starts "
            "at the last trained timestep, i.e. at pure noise (Lin et al. 2024, 'Common Diffusion Noise Schedules "
            "and Sample Steps are Flawed', fix 3); 'leading' (diffusers' default) starts before it (DDIM-50 of "
            "1,000 steps at t = 980)."
        },
    )
    ddpm_clip_sample: bool = field(
        default=True,
        metadata={
            "help": "Clip the predicted x0 to [-1, 1] at every sampling step (diffusers' clip_sample, saved in the "
            "scheduler config). DDIM clips x0 but keeps the unclipped noise estimate, so the two disagree; 'false' "
            "scored DDIM-50 FID 5.0 instead of 6.1 (both trailing) on the MNIST recipe's model (see the README)."
        },
    )
    snr_gamma: float | None = field(
        default=None,
        metadata={
            "help": "Min-SNR-gamma loss weighting (Hang et al. 2023): each timestep's MSE is weighted by "
            "min(SNR, gamma) / SNR (epsilon), / (SNR + 1) (v_prediction) or not divided (sample). The paper uses 5. "
            "Default: off (plain MSE)."
        },
    )
    sample_num_inference_steps: int = field(
        default=50,
        metadata={
            "help": "DDIM steps of the periodic sample grids (at most --ddpm_num_steps; larger values are cut)."
        },
    )

    def __post_init__(self):
        if self.ddpm_beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"--ddpm_beta_schedule {self.ddpm_beta_schedule!r} is unknown; choose {', '.join(BETA_SCHEDULES)}"
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"--prediction_type {self.prediction_type!r} is unknown; choose {', '.join(PREDICTION_TYPES)}"
            )
        if self.ddpm_timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(
                f"--ddpm_timestep_spacing {self.ddpm_timestep_spacing!r} is unknown; choose "
                f"{', '.join(TIMESTEP_SPACINGS)}"
            )
        if self.snr_gamma is not None and not self.snr_gamma > 0:  # also refuses nan
            raise ValueError(f"--snr_gamma must be a positive number (the paper uses 5), got {self.snr_gamma}")
        if self.ddpm_num_steps < 2:
            raise ValueError(f"--ddpm_num_steps must be at least 2, got {self.ddpm_num_steps}")
        if self.sample_num_inference_steps < 1:
            raise ValueError(f"--sample_num_inference_steps must be at least 1, got {self.sample_num_inference_steps}")
        # DDIM cannot take more steps than were trained: the grids use all of them (e.g. 20 with --ddpm_num_steps 20)
        self.sample_num_inference_steps = min(self.sample_num_inference_steps, self.ddpm_num_steps)
        super().__post_init__()


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"),
    as in diffusers' training scripts (``--snr_gamma``), for the scheduler's ``prediction_type``.

    With SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (`diffusers.training_utils.compute_snr`), the weight is
    min(SNR, gamma) / SNR for epsilon, min(SNR, gamma) / (SNR + 1) for v_prediction and min(SNR, gamma) for sample.
    Epsilon's weight is computed as min(1, gamma / SNR), so a timestep with SNR 0 (the last of the cosine schedule)
    gets weight 1 instead of 0 / 0.

    Args:
        timesteps: (B,) integer timesteps in [0, num_train_timesteps).
    Returns:
        (B,) float32 weights in [0, max(1, gamma)].
    """
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return torch.clamp(gamma / snr, max=1.0)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped


class DDPMObjective(Objective):
    """Noise-prediction (or v / sample prediction) MSE on a uniformly drawn timestep, as in Ho et al. 2020."""

    name = "ddpm"
    arguments_class = DDPMArguments
    defaults = {"max_train_steps": 2000, "learning_rate": 1e-3}
    model_card_template = "ddpm.md"
    ema_model = "unet"
    supports_class_conditional = True
    tags = ("ddpm", "diffusion", "unconditional-image-generation")

    def configure(self, resolution, num_channels, model_args):
        configure_unet(model_args, resolution)

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        args = context.model_args
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=args.ddpm_num_steps,
            beta_schedule=args.ddpm_beta_schedule,
            prediction_type=args.prediction_type,
            timestep_spacing=args.ddpm_timestep_spacing,
            clip_sample=args.ddpm_clip_sample,
        )
        self.sample_num_inference_steps = args.sample_num_inference_steps
        self.snr_gamma = args.snr_gamma
        self.context = context
        config = unet_config_from_args(args, context.resolution, context.num_channels, context.num_classes)
        return {"unet": UNet2DModel(**config)}

    def compute_loss(self, models, images, generator, phase="model", step=0, class_labels=None):
        scheduler = self.noise_scheduler
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (images.shape[0],), generator=generator)
        timesteps = timesteps.to(images.device)
        noisy = scheduler.add_noise(images, noise, timesteps)
        extra = {}
        if class_labels is not None:  # label dropout trains the "no label" class C for classifier-free guidance
            probability = self.context.training_args.conditioning_dropout_prob
            extra["class_labels"] = drop_labels(class_labels, self.context.num_classes, probability, generator)
        prediction = models["unet"](noisy, timesteps, **extra).sample
        if scheduler.config.prediction_type == "epsilon":
            target = noise
        elif scheduler.config.prediction_type == "sample":
            target = images
        else:
            target = scheduler.get_velocity(images, noise, timesteps)
        if self.snr_gamma is None:
            return F.mse_loss(prediction.float(), target.float()), {}
        per_image = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return (per_image * min_snr_weights(scheduler, timesteps, self.snr_gamma)).mean(), {}

    def build_pipeline(self, models):
        """The stock `DDPMPipeline`; a ``--class_conditional`` run: `ClassConditionalDiffusionPipeline` (labels and
        classifier-free guidance) with the class names."""
        if models["unet"].config.num_class_embeds:
            from hfgen.pipelines.pipeline_class_conditional import ClassConditionalDiffusionPipeline

            return ClassConditionalDiffusionPipeline(
                unet=models["unet"], scheduler=self.noise_scheduler, id2label=self.context.id2label
            )
        return DDPMPipeline(unet=models["unet"], scheduler=self.noise_scheduler)

    def sampling_options(self):
        """DDIM with ``--sample_num_inference_steps`` (clamped to the trained steps) for grids and FID."""
        return "ddim", self.sample_num_inference_steps, {}

    def model_card_context(self, context: TrainingContext) -> dict:
        args = context.model_args
        return {
            "ddpm_num_steps": args.ddpm_num_steps,
            "ddpm_beta_schedule": args.ddpm_beta_schedule,
            "prediction_type": args.prediction_type,
            "timestep_spacing": args.ddpm_timestep_spacing,
            "clip_sample": args.ddpm_clip_sample,
            "snr_gamma": args.snr_gamma,
            "ddim_num_inference_steps": min(50, args.ddpm_num_steps),
            "ddim_speedup": f"{args.ddpm_num_steps / min(50, args.ddpm_num_steps):g}",
        }
