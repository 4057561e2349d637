"""A deterministic convolutional autoencoder (the starting point of every course; see e.g. Hinton & Salakhutdinov,
"Reducing the Dimensionality of Data with Neural Networks", Science 2006)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from hfgen.models.conv import ConvDecoder, ConvEncoder, check_images


@dataclass
class AutoencoderOutput(BaseOutput):
    """Output of `AutoencoderModel.forward`.

    Args:
        sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): the reconstruction, in [-1, 1]
            (clamped; the loss sees the unclamped decoder output, see `AutoencoderModel`).
        latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): the codes.
        reconstruction_loss (`torch.Tensor` of shape `(batch_size,)`): mean squared error per pixel of each image.
        loss (`torch.Tensor`, scalar): the batch mean of ``reconstruction_loss`` (what training minimises).
    """

    sample: torch.Tensor
    latents: torch.Tensor
    reconstruction_loss: torch.Tensor
    loss: torch.Tensor


OUTPUT_ACTIVATIONS = ("clamp", "tanh")


class AutoencoderModel(ModelMixin, ConfigMixin):
    """A convolutional autoencoder: image -> ``latent_dim`` code -> image, trained with mean squared error.

    Parameters:
        sample_size (`int`, defaults to 16): image height and width in pixels, divisible by
            ``2**len(block_out_channels)``.
        in_channels (`int`, defaults to 1): image channels (1 greyscale, 3 RGB).
        latent_dim (`int`, defaults to 2): size of the code (2 draws a latent map without projection).
        block_out_channels (`tuple[int]`, defaults to `(32, 64)`): channels per resolution level; each level halves
            the image.
        output_activation (`str`, defaults to `"clamp"`): how decoder outputs become pixels in [-1, 1]. ``"clamp"``:
            the loss is the squared error of the raw (linear) output and decoding clamps it; ``"tanh"``: the squared
            error of ``tanh(output)``. On MNIST (mostly black pixels) ``"tanh"`` collapses a 2-D-code autoencoder:
            the first updates push the pre-activations to about -800, where tanh's gradient is zero, and every
            reconstruction stays black (``scripts/reproduce.py --only mnist-autoencoder`` showed it); ``"clamp"``
            keeps the gradient alive.

    Raises:
        ValueError: for sizes that do not fit (see `hfgen.models.conv.check_sizes`).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 1,
        latent_dim: int = 2,
        block_out_channels: tuple[int, ...] = (32, 64),
        output_activation: str = "clamp",
    ):
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation {output_activation!r} is unknown; choose {', '.join(OUTPUT_ACTIVATIONS)}"
            )
        self.encoder = ConvEncoder(sample_size, in_channels, block_out_channels, latent_dim)
        self.decoder = ConvDecoder(sample_size, in_channels, block_out_channels, latent_dim)

    def encode(self, sample: torch.Tensor) -> torch.Tensor:
        """Images `(B, C, H, W)` in [-1, 1] -> codes `(B, latent_dim)`.

        Raises:
            ImageShapeError: for images of the wrong shape or channels.
        """
        check_images(sample, self.config.in_channels, self.config.sample_size, type(self).__name__)
        return self.encoder(sample)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Codes `(B, latent_dim)` -> images `(B, C, H, W)` in [-1, 1] (see ``output_activation``)."""
        return self._to_pixels(self.decoder(latents))

    def _to_pixels(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.tanh(raw) if self.config.output_activation == "tanh" else raw.clamp(-1, 1)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> AutoencoderOutput | tuple:
        """Encode and decode ``sample`` (`(B, C, H, W)` in [-1, 1]); see `AutoencoderOutput`."""
        latents = self.encode(sample)
        raw = self.decoder(latents)
        trained = torch.tanh(raw) if self.config.output_activation == "tanh" else raw
        per_image = F.mse_loss(trained.float(), sample.float(), reduction="none").flatten(1).mean(1)
        output = AutoencoderOutput(
            sample=self._to_pixels(raw), latents=latents, reconstruction_loss=per_image, loss=per_image.mean()
        )
        return output if return_dict else output.to_tuple()
