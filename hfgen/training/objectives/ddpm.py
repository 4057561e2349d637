"""DDPM (Ho et al. 2020, "Denoising Diffusion Probabilistic Models") in the one training loop.

The denoiser is diffusers' own `UNet2DModel`, the noise schedule diffusers' `DDPMScheduler`; the saved folder is a
stock `DDPMPipeline` (loadable with `DDPMPipeline.from_pretrained` and `DDIMPipeline.from_pretrained`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

from hfgen.errors import ConfigurationError
from hfgen.training.objectives.base import Objective, TrainingContext

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass
class UNetArguments:
    """The `UNet2DModel` flags shared by the diffusion-style families (DDPM, NCSN)."""

    model_config_name_or_path: str | None = field(
        default=None, metadata={"help": "A UNet2DModel config.json (or a folder holding one) instead of the flags."}
    )
    block_out_channels: list[int] | None = field(
        default=None,
        metadata={
            "help": "UNet channels per resolution level. Default by resolution: 32 64 64 (up to 32 pixels), "
            "32 64 64 128 (64 and up)."
        },
    )
    layers_per_block: int = field(default=1, metadata={"help": "ResNet layers per UNet block."})
    attention_levels: list[str] | None = field(
        default=None,
        metadata={
            "help": "Indices of the UNet levels that get self-attention, or 'none' (the mid block always has it). "
            "Default: the first level below the input with at most 16x16 pixels."
        },
    )
    norm_num_groups: int = field(default=8, metadata={"help": "GroupNorm groups in the UNet."})

    def __post_init__(self):
        if self.block_out_channels is not None and (
            not self.block_out_channels or any(c <= 0 or c % self.norm_num_groups for c in self.block_out_channels)
        ):
            raise ValueError(
                f"--block_out_channels {self.block_out_channels} must be positive multiples of "
                f"--norm_num_groups {self.norm_num_groups}"
            )
        if self.attention_levels is not None:
            levels = [str(level).lower() for level in self.attention_levels]
            if levels == ["none"] or not levels:
                self.attention_levels = []
            elif all(level.lstrip("-").isdigit() for level in levels):
                self.attention_levels = [int(level) for level in levels]
            else:
                raise ValueError(f"--attention_levels takes level indices or 'none', got {self.attention_levels}")
        if self.block_out_channels is not None and self.attention_levels is not None:
            check_attention_levels(self)
        if self.model_config_name_or_path is not None and not os.path.exists(self.model_config_name_or_path):
            raise ValueError(f"--model_config_name_or_path {self.model_config_name_or_path} does not exist")


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
        if self.ddpm_num_steps < 2:
            raise ValueError(f"--ddpm_num_steps must be at least 2, got {self.ddpm_num_steps}")
        if self.sample_num_inference_steps < 1:
            raise ValueError(f"--sample_num_inference_steps must be at least 1, got {self.sample_num_inference_steps}")
        # DDIM cannot take more steps than were trained: the grids use all of them (e.g. 20 with --ddpm_num_steps 20)
        self.sample_num_inference_steps = min(self.sample_num_inference_steps, self.ddpm_num_steps)
        super().__post_init__()


def check_attention_levels(args: UNetArguments) -> None:
    """Raise ValueError unless every ``--attention_levels`` entry indexes ``--block_out_channels``."""
    if any(not 0 <= i < len(args.block_out_channels) for i in args.attention_levels):
        raise ValueError(
            f"--attention_levels {args.attention_levels} must index --block_out_channels {args.block_out_channels}"
        )


def configure_unet(args: UNetArguments, resolution: int) -> None:
    """Fill ``--block_out_channels`` / ``--attention_levels`` left unset with the defaults for ``resolution``
    (`hfgen.models.resolution.default_unet_levels`) and check that the UNet can halve the resolution.

    Raises:
        ConfigurationError: for a resolution the UNet cannot handle (naming the valid ones) or attention levels
            that do not index the levels.
    """
    from hfgen.models.resolution import check_unet_resolution, default_unet_levels

    channels, attention = default_unet_levels(resolution)
    if args.block_out_channels is None:
        args.block_out_channels = channels
        if args.attention_levels is None:
            args.attention_levels = attention
    if args.attention_levels is None:  # the user's own levels: attention as in the defaults where it fits
        args.attention_levels = [i for i in attention if i < len(args.block_out_channels)]
    try:
        check_attention_levels(args)
        if args.model_config_name_or_path is None:
            check_unet_resolution(resolution, len(args.block_out_channels))
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


def unet_config_from_args(args: UNetArguments, resolution: int, num_channels: int) -> dict:
    """The `UNet2DModel` config for ``args`` (or the one read from ``--model_config_name_or_path``).

    ``sample_size``, ``in_channels`` and ``out_channels`` always follow the data.

    Raises:
        ConfigurationError: when the resolution cannot be halved once per UNet level.
    """
    from hfgen.models.resolution import check_unet_resolution

    configure_unet(args, resolution)
    if args.model_config_name_or_path is not None:
        path = args.model_config_name_or_path
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path) as handle:
            config = json.load(handle)
        config = {k: v for k, v in config.items() if not k.startswith("_")}
    else:
        levels = len(args.block_out_channels)
        down = ["AttnDownBlock2D" if i in args.attention_levels else "DownBlock2D" for i in range(levels)]
        up = [b.replace("Down", "Up") for b in reversed(down)]
        config = {
            "layers_per_block": args.layers_per_block,
            "block_out_channels": list(args.block_out_channels),
            "down_block_types": down,
            "up_block_types": up,
            "norm_num_groups": args.norm_num_groups,
        }
    try:
        check_unet_resolution(resolution, len(config.get("block_out_channels", [1, 1, 1, 1])))
    except ValueError as err:
        raise ConfigurationError(str(err)) from None
    config.update(sample_size=resolution, in_channels=num_channels, out_channels=num_channels)
    return config


class DDPMObjective(Objective):
    """Noise-prediction (or v / sample prediction) MSE on a uniformly drawn timestep, as in Ho et al. 2020."""

    name = "ddpm"
    arguments_class = DDPMArguments
    defaults = {"max_train_steps": 2000, "learning_rate": 1e-3}
    model_card_template = "ddpm.md"
    ema_model = "unet"
    tags = ("ddpm", "diffusion", "unconditional-image-generation")

    def configure(self, resolution, num_channels, model_args):
        configure_unet(model_args, resolution)

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        args = context.model_args
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=args.ddpm_num_steps,
            beta_schedule=args.ddpm_beta_schedule,
            prediction_type=args.prediction_type,
        )
        self.sample_num_inference_steps = args.sample_num_inference_steps
        config = unet_config_from_args(args, context.resolution, context.num_channels)
        return {"unet": UNet2DModel(**config)}

    def compute_loss(self, models, images, generator, phase="model"):
        scheduler = self.noise_scheduler
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (images.shape[0],), generator=generator)
        timesteps = timesteps.to(images.device)
        noisy = scheduler.add_noise(images, noise, timesteps)
        prediction = models["unet"](noisy, timesteps).sample
        if scheduler.config.prediction_type == "epsilon":
            target = noise
        elif scheduler.config.prediction_type == "sample":
            target = images
        else:
            target = scheduler.get_velocity(images, noise, timesteps)
        loss = F.mse_loss(prediction.float(), target.float())
        return loss, {}

    def build_pipeline(self, models):
        return DDPMPipeline(unet=models["unet"], scheduler=self.noise_scheduler)

    def sample_images(self, pipeline, num_images, generator):
        ddim = DDPMPipeline(unet=pipeline.unet, scheduler=DDIMScheduler.from_config(pipeline.scheduler.config))
        ddim.set_progress_bar_config(disable=True)
        return ddim(
            batch_size=num_images,
            generator=generator,
            num_inference_steps=self.sample_num_inference_steps,
            output_type="pt",
        ).images  # output_type="pt": (B, C, H, W) in [0, 1]

    def model_card_context(self, context: TrainingContext) -> dict:
        args = context.model_args
        return {
            "ddpm_num_steps": args.ddpm_num_steps,
            "ddpm_beta_schedule": args.ddpm_beta_schedule,
            "prediction_type": args.prediction_type,
            "ddim_num_inference_steps": min(50, args.ddpm_num_steps),
            "ddim_speedup": f"{args.ddpm_num_steps / min(50, args.ddpm_num_steps):g}",
        }
