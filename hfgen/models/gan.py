"""DCGAN generator and discriminator/critic (Radford et al., "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016), also used as the WGAN (Arjovsky et al. 2017) and
WGAN-GP (Gulrajani et al. 2017) critic.

Architecture guidelines of the paper: no pooling (strided convolutions in the discriminator, transposed convolutions
in the generator), batch norm in both (not on the generator output nor the discriminator input), ReLU in the
generator with a tanh output, LeakyReLU(0.2) in the discriminator, weights initialised from N(0, 0.02).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from hfgen.models.conv import check_class_labels, check_images
from hfgen.models.resolution import gan_layout


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv weights ~ N(0, 0.02); batch-norm scale ~ N(1, 0.02), shift 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


@dataclass
class DCGANGeneratorOutput(BaseOutput):
    """Args:
    sample (`torch.Tensor` of shape `(batch_size, out_channels, sample_size, sample_size)`): images in [-1, 1]."""

    sample: torch.Tensor


class DCGANGenerator(ModelMixin, ConfigMixin):
    """Latent vector -> image: a projection to b x b (4x4; 7x7 for 28), then transposed convolutions doubling the
    size and halving the channels, batch norm + ReLU between them and tanh at the end.

    Parameters:
        sample_size (`int`, defaults to 16): output height and width, b * 2^k with 4 <= b <= 7, k >= 1 (16, 28, 32,
            64, ...; see `hfgen.models.resolution.gan_layout`).
        out_channels (`int`, defaults to 1): image channels.
        latent_dim (`int`, defaults to 100): size of z (the paper's 100).
        base_channels (`int`, defaults to 64): channels of the last hidden layer (the paper's ``ngf``); the 4x4 layer
            has ``base_channels * 2^(k-1)`` (64x64: 512, 256, 128, 64 as in the paper's PyTorch port).
        num_classes (`int`, *optional*): C for a conditional generator (Mirza & Osindero 2014): a learned
            ``latent_dim``-sized embedding of the label is concatenated to z. None: unconditional.

    Raises:
        ValueError: for an unsupported ``sample_size``, non-positive sizes or ``num_classes < 2``.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        out_channels: int = 1,
        latent_dim: int = 100,
        base_channels: int = 64,
        num_classes: int | None = None,
    ):
        super().__init__()
        base, levels = gan_layout(sample_size)
        if min(out_channels, latent_dim, base_channels) < 1:
            raise ValueError("out_channels, latent_dim and base_channels must be positive")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 for a conditional generator, got {num_classes}")
        channels = [base_channels * 2 ** (levels - 1 - i) for i in range(levels)]
        inputs = latent_dim * (2 if num_classes else 1)
        layers = [nn.ConvTranspose2d(inputs, channels[0], base, 1, 0, bias=False), nn.BatchNorm2d(channels[0]),
                  nn.ReLU(True)]  # fmt: skip
        for current, following in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(current, following, 4, 2, 1, bias=False), nn.BatchNorm2d(following),
                       nn.ReLU(True)]  # fmt: skip
        layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)
        if num_classes:  # after dcgan_init_: the embedding keeps PyTorch's N(0, 1) init, the scale of z
            self.class_embedding = nn.Embedding(num_classes, latent_dim)

    def forward(
        self, latents: torch.Tensor, class_labels: torch.Tensor | None = None, return_dict: bool = True
    ) -> DCGANGeneratorOutput | tuple:
        """``latents`` `(batch_size, latent_dim)` (and, for a conditional generator, ``class_labels``
        `(batch_size,)` in [0, C)) -> images `(batch_size, out_channels, sample_size, sample_size)` in [-1, 1].

        Raises:
            ValueError: for latents of the wrong shape, or missing/unexpected/invalid class labels.
        """
        if latents.ndim != 2 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"expected latents of shape (batch_size, {self.config.latent_dim}), got {tuple(latents.shape)}"
            )
        embedded = _embed_labels(self, class_labels, len(latents))
        if embedded is not None:
            latents = torch.cat([latents, embedded.to(latents.dtype)], dim=1)
        sample = self.main(latents[:, :, None, None])
        return DCGANGeneratorOutput(sample=sample) if return_dict else (sample,)


class DCGANDiscriminator(ModelMixin, ConfigMixin):
    """Image -> one score per image: strided convolutions halving the size and doubling the channels, LeakyReLU(0.2),
    optional batch norm (never on the input layer), and a final 4x4 convolution to one logit. No sigmoid: the BCE
    loss applies it, and a WGAN critic outputs an unbounded score.

    Parameters:
        sample_size (`int`, defaults to 16): input height and width, b * 2^k as for the generator (the last
            convolution is b x b).
        in_channels (`int`, defaults to 1): image channels.
        base_channels (`int`, defaults to 64): channels of the first layer (the paper's ``ndf``).
        use_batch_norm (`bool`, defaults to True): batch norm after every hidden convolution but the first. Must be
            False for the WGAN-GP critic: the gradient penalty is per sample and batch norm couples the samples
            (Gulrajani et al. 2017, Sec. 4).
        num_classes (`int`, *optional*): C for a projection critic (Miyato & Koyama 2018, "cGANs with Projection
            Discriminator"): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, phi(x) the last feature map summed over
            space. A per-sample score, so WGAN-GP's penalty stays per sample. None: unconditional.

    Raises:
        ValueError: for an unsupported ``sample_size``, non-positive sizes or ``num_classes < 2``.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 1,
        base_channels: int = 64,
        use_batch_norm: bool = True,
        num_classes: int | None = None,
    ):
        super().__init__()
        base, levels = gan_layout(sample_size)
        if min(in_channels, base_channels) < 1:
            raise ValueError("in_channels and base_channels must be positive")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 for a projection critic, got {num_classes}")
        channels = [base_channels * 2**i for i in range(levels)]
        layers = [nn.Conv2d(in_channels, channels[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for current, following in zip(channels, channels[1:]):
            layers.append(nn.Conv2d(current, following, 4, 2, 1, bias=not use_batch_norm))
            if use_batch_norm:
                layers.append(nn.BatchNorm2d(following))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(channels[-1], 1, base, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)
        if num_classes:
            self.class_embedding = nn.Embedding(num_classes, channels[-1])
            nn.init.normal_(self.class_embedding.weight, 0.0, 0.02)

    def forward(self, sample: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images `(batch_size, in_channels, sample_size, sample_size)` in [-1, 1] (and, for a projection critic,
        ``class_labels`` `(batch_size,)` in [0, C)) -> scores `(batch_size,)` (logits for BCE, critic values for
        WGAN).

        Raises:
            ImageShapeError: for images of the wrong shape or channels.
            ValueError: for missing, unexpected or invalid class labels.
        """
        check_images(sample, self.config.in_channels, self.config.sample_size, type(self).__name__)
        embedded = _embed_labels(self, class_labels, len(sample))
        if embedded is None:
            return self.main(sample).flatten()
        features = self.main[:-1](sample)
        scores = self.main[-1](features).flatten()
        return scores + (embedded.to(features.dtype) * features.sum(dim=(2, 3))).sum(dim=1)


def _embed_labels(model: nn.Module, class_labels: torch.Tensor | None, batch_size: int) -> torch.Tensor | None:
    """``model.class_embedding(class_labels)`` for a conditional model, None for an unconditional one.

    Raises:
        ValueError: labels missing for a conditional model, given to an unconditional one, of the wrong length or
            outside [0, C).
    """
    num_classes = model.config.num_classes
    device = model.class_embedding.weight.device if num_classes else None
    class_labels = check_class_labels(class_labels, num_classes, batch_size, type(model).__name__, device)
    return None if class_labels is None else model.class_embedding(class_labels)
