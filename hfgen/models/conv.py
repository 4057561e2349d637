"""Convolutional encoder and decoder shared by `AutoencoderModel` and `VAEModel`.

Each resolution level halves (encoder) or doubles (decoder) the image with a 4x4 strided (transposed) convolution
followed by a 3x3 convolution, SiLU activations throughout; a linear layer maps between the flattened feature map
and the latent vector. Plain `nn.Module`s: the diffusers models in `autoencoder.py` and `vae.py` own the config.
"""

from __future__ import annotations

import torch
from torch import nn


def check_sizes(sample_size: int, in_channels: int, block_out_channels, latent_dim: int) -> int:
    """Validate an encoder/decoder configuration; return the side of the smallest feature map.

    Raises:
        ValueError: when ``sample_size`` cannot be halved once per level, or a size is not positive.
    """
    levels = len(block_out_channels)
    if latent_dim < 1 or in_channels < 1 or levels < 1 or any(c < 1 for c in block_out_channels):
        raise ValueError(
            f"latent_dim ({latent_dim}), in_channels ({in_channels}) and block_out_channels ({block_out_channels}) "
            "must be positive"
        )
    from hfgen.models.resolution import check_conv_resolution

    check_conv_resolution(sample_size, levels)
    return sample_size // 2**levels


class ConvEncoder(nn.Module):
    """`(B, in_channels, sample_size, sample_size)` images -> `(B, out_features)` vectors."""

    def __init__(self, sample_size: int, in_channels: int, block_out_channels, out_features: int):
        super().__init__()
        side = check_sizes(sample_size, in_channels, block_out_channels, out_features)
        layers, previous = [], in_channels
        for channels in block_out_channels:
            layers += [
                nn.Conv2d(previous, channels, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.SiLU(),
            ]
            previous = channels
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(previous * side * side, out_features)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(sample).flatten(1))


class ConvDecoder(nn.Module):
    """`(B, latent_dim)` vectors -> `(B, out_channels, sample_size, sample_size)` raw outputs (no final activation)."""

    def __init__(self, sample_size: int, out_channels: int, block_out_channels, latent_dim: int):
        super().__init__()
        self.side = check_sizes(sample_size, out_channels, block_out_channels, latent_dim)
        channels = list(reversed(block_out_channels))
        self.first_channels = channels[0]
        self.linear = nn.Sequential(nn.Linear(latent_dim, channels[0] * self.side**2), nn.SiLU())
        layers = []
        for current, following in zip(channels, channels[1:] + [channels[-1]]):
            layers += [
                nn.ConvTranspose2d(current, following, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv2d(following, following, 3, padding=1),
                nn.SiLU(),
            ]
        layers.append(nn.Conv2d(channels[-1], out_channels, 3, padding=1))
        self.features = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        hidden = self.linear(latents).view(-1, self.first_channels, self.side, self.side)
        return self.features(hidden)


def check_class_labels(
    class_labels, num_classes: int | None, batch_size: int, who: str, device=None
) -> torch.Tensor | None:
    """The class labels of a batch as a long tensor `(batch_size,)` on ``device`` for a model with ``num_classes``
    classes (the VAE's and the GANs' ``num_classes`` config), None for an unconditional model (``num_classes`` None).

    Raises:
        ValueError: labels missing for a conditional model, given to an unconditional one, of the wrong length or
            outside [0, num_classes).
    """
    if not num_classes:
        if class_labels is not None:
            raise ValueError(f"this {who} is unconditional; drop class_labels (train with --class_conditional)")
        return None
    if class_labels is None:
        raise ValueError(f"this {who} is class-conditional; pass class_labels (ints in [0, {num_classes}))")
    class_labels = torch.as_tensor(class_labels, device=device).long().flatten()
    if len(class_labels) != batch_size:
        raise ValueError(f"got {len(class_labels)} class labels for {batch_size} inputs")
    if len(class_labels) and (class_labels.min() < 0 or class_labels.max() >= num_classes):
        raise ValueError(f"class labels must be in [0, {num_classes}), got {class_labels.tolist()}")
    return class_labels


def check_images(sample: torch.Tensor, in_channels: int, sample_size: int, who: str) -> None:
    """Raise `hfgen.errors.ImageShapeError` unless ``sample`` is `(B, in_channels, sample_size, sample_size)`."""
    from hfgen.errors import ImageShapeError

    expected = (in_channels, sample_size, sample_size)
    if not isinstance(sample, torch.Tensor) or sample.ndim != 4 or tuple(sample.shape[1:]) != expected:
        got = tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
        raise ImageShapeError(
            f"{who} expects images of shape (batch_size, {in_channels}, {sample_size}, {sample_size}) in [-1, 1], "
            f"got {got}; resize/convert the images to {sample_size}x{sample_size} with {in_channels} channel(s)"
        )
