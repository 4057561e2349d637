"""Tiny untrained pipelines of every family (8x8, one channel, like the digits), built in a second: for tests of
what is done with a saved folder (loading, portability, the demo), not of training."""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

from hfgen.models import AutoencoderModel, DCGANDiscriminator, DCGANGenerator, RealNVPModel, VAEModel
from hfgen.pipelines import (
    AnnealedLangevinPipeline,
    AutoencoderPipeline,
    ClassConditionalDiffusionPipeline,
    FlowPipeline,
    GANPipeline,
    VAEPipeline,
)
from hfgen.schedulers import AnnealedLangevinScheduler


def tiny_unet(**kwargs) -> UNet2DModel:
    """A two-level 8x8 one-channel `UNet2DModel` (``kwargs``: e.g. ``num_class_embeds``)."""
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        **kwargs,
    )


def tiny_pipelines() -> dict:
    """name -> pipeline: vae, cvae (3 classes a/b/c), gan, cgan, flow, ncsn, cddpm, ddpm, autoencoder (seeded)."""
    torch.manual_seed(0)
    names = {0: "a", 1: "b", 2: "c"}
    return {
        "vae": VAEPipeline(VAEModel(sample_size=8, latent_dim=2, block_out_channels=(8, 16))),
        "cvae": VAEPipeline(VAEModel(sample_size=8, latent_dim=2, block_out_channels=(8, 16), num_classes=3), names),
        "gan": GANPipeline(
            DCGANGenerator(sample_size=8, latent_dim=4, base_channels=8),
            DCGANDiscriminator(sample_size=8, base_channels=8),
        ),
        "cgan": GANPipeline(
            DCGANGenerator(sample_size=8, latent_dim=4, base_channels=8, num_classes=3),
            DCGANDiscriminator(sample_size=8, base_channels=8, num_classes=3),
            names,
        ),
        "flow": FlowPipeline(RealNVPModel(sample_size=8, hidden_channels=8, num_blocks=1)),
        "ncsn": AnnealedLangevinPipeline(
            tiny_unet(), AnnealedLangevinScheduler(num_noise_levels=3, steps_per_level=2)
        ),
        "cddpm": ClassConditionalDiffusionPipeline(
            tiny_unet(num_class_embeds=4), DDIMScheduler(num_train_timesteps=20)
        ),
        "ddpm": DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=20)),
        "autoencoder": AutoencoderPipeline(AutoencoderModel(sample_size=8, latent_dim=2, block_out_channels=(8, 16))),
    }
