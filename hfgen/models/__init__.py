"""Model families, one file each (diffusers `ModelMixin` + `ConfigMixin`). DDPM uses diffusers' own `UNet2DModel`."""

from hfgen.models.autoencoder import AutoencoderModel, AutoencoderOutput
from hfgen.models.gan import DCGANDiscriminator, DCGANGenerator
from hfgen.models.realnvp import RealNVPModel
from hfgen.models.vae import DiagonalGaussianDistribution, VAEModel, VAEOutput

__all__ = [
    "AutoencoderModel",
    "AutoencoderOutput",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DiagonalGaussianDistribution",
    "RealNVPModel",
    "VAEModel",
    "VAEOutput",
]
