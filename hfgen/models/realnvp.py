"""Real NVP (Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017).

Pipeline of one forward pass, images `(B, C, H, W)` in [-1, 1] -> latents `(B, C·H·W)`:

1. **Dequantisation**: pixel values v = (x + 1)·127.5 in {0, ..., 255} become y = (v + u) / 256 with u ~ U[0, 1)
   (``dequantize=False`` uses u = 1/2, the deterministic mid-point).
2. **Logit transform** (Sec. 4.1): h = logit(α + (1 - 2α) y), α = 0.05, with its log-determinant.
3. **Multi-scale flow**: per scale, 3 affine couplings with alternating checkerboard masks, a squeeze
   (C, H, W) -> (4C, H/2, W/2), 3 couplings with alternating channel-wise masks, then half the channels are factored
   out (they go straight to the latent); the last scale has 4 checkerboard couplings.

Affine coupling: y_b = x_b ⊙ exp(s(x_a)) + t(x_a), y_a = x_a, with s = scale · tanh(·) bounded, s and t from a small
ResNet; log|det| = Σ s over the transformed entries.

Densities: `log_prob` is log p(y) for the dequantised y ∈ [0, 1]^D, in nats per image; `bits_per_dim` is the
discrete-data figure papers report, (-log p(y) + D·log 256) / (D·ln 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from hfgen.models.conv import check_images

LOGIT_ALPHA = 0.05


class ResNetST(nn.Module):
    """The s/t network of a coupling: 3x3 conv, ``num_blocks`` residual blocks, 3x3 conv to ``2 * out_channels``.

    The last convolution starts at zero, so every coupling starts as the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, num_blocks: int):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
            )
            for _ in range(num_blocks)
        )
        self.out = nn.Conv2d(hidden_channels, 2 * out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        s, t = self.out(F.relu(h)).chunk(2, dim=1)
        return s, t


def checkerboard(height: int, width: int, parity: int, device=None) -> torch.Tensor:
    """A `(1, 1, H, W)` mask of ones where (row + column) % 2 == parity."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == parity).float()[None, None]


class AffineCoupling(nn.Module):
    """One affine coupling layer with a checkerboard (``mask="checkerboard"``) or channel-wise mask.

    ``parity`` chooses which half is kept (0 or 1). Shapes are unchanged: `(B, C, H, W)` -> `(B, C, H, W)` and a
    log-determinant `(B,)`.
    """

    def __init__(self, channels: int, mask: str, parity: int, hidden_channels: int, num_blocks: int):
        super().__init__()
        if mask not in ("checkerboard", "channel"):
            raise ValueError(f"mask must be 'checkerboard' or 'channel', got {mask!r}")
        if mask == "channel" and channels % 2:
            raise ValueError(f"a channel-wise coupling needs an even number of channels, got {channels}")
        self.mask, self.parity = mask, parity
        if mask == "checkerboard":
            self.net = ResNetST(channels + 1, channels, hidden_channels, num_blocks)
        else:
            self.net = ResNetST(channels // 2, channels // 2, hidden_channels, num_blocks)
        self.scale = nn.Parameter(torch.ones(1, channels if mask == "checkerboard" else channels // 2, 1, 1))

    def _st(self, kept: torch.Tensor, extra: torch.Tensor | None = None):
        s, t = self.net(kept if extra is None else torch.cat([kept, extra], 1))
        return self.scale * torch.tanh(s), t

    def forward(self, x: torch.Tensor, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mask == "checkerboard":
            b = checkerboard(x.shape[2], x.shape[3], self.parity, x.device).to(x.dtype)
            s, t = self._st(x * b, b.expand(x.shape[0], 1, -1, -1))
            s, t = s * (1 - b), t * (1 - b)
            if reverse:
                return x * b + (1 - b) * (x - t) * torch.exp(-s), -s.flatten(1).sum(1)
            return x * b + (1 - b) * (x * torch.exp(s) + t), s.flatten(1).sum(1)
        a, c = x.chunk(2, dim=1)
        if self.parity:
            a, c = c, a
        s, t = self._st(a)
        c = (c - t) * torch.exp(-s) if reverse else c * torch.exp(s) + t
        log_det = (-s if reverse else s).flatten(1).sum(1)
        out = torch.cat([c, a] if self.parity else [a, c], dim=1)
        return out, log_det


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """`(B, C, H, W)` -> `(B, 4C, H/2, W/2)` (space to depth; volume preserving, log|det| = 0)."""
    return F.pixel_unshuffle(x, 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `squeeze`."""
    return F.pixel_shuffle(x, 2)


@dataclass
class RealNVPOutput(BaseOutput):
    """Output of `RealNVPModel.forward`.

    Args:
        latents (`torch.Tensor` of shape `(batch_size, C·H·W)`): z, standard normal under the model.
        log_det (`torch.Tensor` of shape `(batch_size,)`): log|det ∂z/∂y| of the whole map from the dequantised
            y ∈ [0, 1]^D (logit transform included), nats.
    """

    latents: torch.Tensor
    log_det: torch.Tensor


class RealNVPModel(ModelMixin, ConfigMixin):
    """Real NVP with a multi-scale architecture (see the module docstring).

    Parameters:
        sample_size (`int`, defaults to 16): image height and width; divisible by ``2**num_scales``.
        in_channels (`int`, defaults to 1): image channels.
        num_scales (`int`, defaults to 2): scales with squeeze + factor-out before the final one.
        hidden_channels (`int`, defaults to 64): width of the s/t ResNets.
        num_blocks (`int`, defaults to 2): residual blocks per s/t ResNet.

    Raises:
        ValueError: for sizes that cannot be squeezed ``num_scales`` times.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 1,
        num_scales: int = 2,
        hidden_channels: int = 64,
        num_blocks: int = 2,
    ):
        super().__init__()
        if num_scales < 0 or sample_size % (2**num_scales) or min(sample_size, in_channels, hidden_channels) < 1:
            raise ValueError(
                f"sample_size {sample_size} must be divisible by 2^num_scales (num_scales={num_scales}) and sizes "
                "must be positive"
            )
        self.scales = nn.ModuleList()
        channels = in_channels
        for _ in range(num_scales):
            layers = nn.ModuleList(
                [AffineCoupling(channels, "checkerboard", i % 2, hidden_channels, num_blocks) for i in range(3)]
                + [AffineCoupling(4 * channels, "channel", i % 2, hidden_channels, num_blocks) for i in range(3)]
            )
            self.scales.append(layers)
            channels = 4 * channels // 2
        self.final = nn.ModuleList(
            [AffineCoupling(channels, "checkerboard", i % 2, hidden_channels, num_blocks) for i in range(4)]
        )

    @property
    def num_dims(self) -> int:
        """D = C·H·W."""
        return self.config.in_channels * self.config.sample_size**2

    # -------------------------------------------------------- preprocessing
    def dequantize(
        self, sample: torch.Tensor, generator: torch.Generator | None = None, dequantize: bool = True
    ) -> torch.Tensor:
        """Images in [-1, 1] -> y = (v + u) / 256 ∈ (0, 1), v = (x + 1)·127.5, u ~ U[0, 1) (or 1/2)."""
        values = (sample.to(self.dtype).clamp(-1, 1) + 1) * 127.5
        if dequantize:
            noise = torch.rand(sample.shape, generator=generator).to(values)
        else:
            noise = torch.full_like(values, 0.5)
        return (values + noise) / 256

    @staticmethod
    def _logit(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * y
        log_det = (math.log(1 - 2 * LOGIT_ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return torch.log(p) - torch.log1p(-p), log_det

    # ------------------------------------------------------------------ flow
    def flow_forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The coupling stack on logit-space tensors `(B, C, H, W)` -> `(latents (B, D), log_det (B,))`."""
        log_det = torch.zeros(h.shape[0], device=h.device, dtype=h.dtype)
        factored = []
        for layers in self.scales:
            for layer in layers[:3]:
                h, ld = layer(h)
                log_det = log_det + ld
            h = squeeze(h)
            for layer in layers[3:]:
                h, ld = layer(h)
                log_det = log_det + ld
            out, h = h.chunk(2, dim=1)
            factored.append(out.flatten(1))
        for layer in self.final:
            h, ld = layer(h)
            log_det = log_det + ld
        return torch.cat(factored + [h.flatten(1)], dim=1), log_det

    def flow_inverse(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of `flow_forward`: latents `(B, D)` -> logit-space tensors `(B, C, H, W)`."""
        batch = latents.shape[0]
        channels, size = self.config.in_channels, self.config.sample_size
        shapes = []
        for _ in self.scales:
            channels, size = 4 * channels, size // 2
            shapes.append((channels // 2, size))
            channels //= 2
        sizes = [c * s * s for c, s in shapes] + [channels * size * size]
        if latents.ndim != 2 or latents.shape[1] != sum(sizes):
            raise ValueError(f"expected latents of shape (batch_size, {sum(sizes)}), got {tuple(latents.shape)}")
        parts = list(latents.split(sizes, dim=1))
        h = parts[-1].reshape(batch, channels, size, size)
        for layer in reversed(self.final):
            h, _ = layer(h, reverse=True)
        for layers, (c, s), part in zip(reversed(self.scales), reversed(shapes), reversed(parts[:-1])):
            h = torch.cat([part.reshape(batch, c, s, s), h], dim=1)
            for layer in reversed(layers[3:]):
                h, _ = layer(h, reverse=True)
            h = unsqueeze(h)
            for layer in reversed(layers[:3]):
                h, _ = layer(h, reverse=True)
        return h

    def forward(
        self,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        dequantize: bool = True,
        return_dict: bool = True,
    ) -> RealNVPOutput | tuple:
        """Images `(B, C, H, W)` in [-1, 1] -> latents `(B, D)` and log|det| `(B,)` from the dequantised y.

        Raises:
            ImageShapeError: for images of the wrong shape or channels.
        """
        check_images(sample, self.config.in_channels, self.config.sample_size, type(self).__name__)
        h, log_det = self._logit(self.dequantize(sample, generator, dequantize))
        latents, flow_log_det = self.flow_forward(h)
        output = RealNVPOutput(latents=latents, log_det=log_det + flow_log_det)
        return output if return_dict else output.to_tuple()

    def inverse(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents `(B, D)` -> images `(B, C, H, W)` in [-1, 1] (the dequantisation mid-point, clamped)."""
        h = self.flow_inverse(latents)
        y = (torch.sigmoid(h) - LOGIT_ALPHA) / (1 - 2 * LOGIT_ALPHA)
        return ((y * 256 - 0.5) / 127.5 - 1).clamp(-1, 1)

    def log_prob(
        self, sample: torch.Tensor, generator: torch.Generator | None = None, dequantize: bool = True
    ) -> torch.Tensor:
        """log p(y) of the dequantised images, nats per image, `(B,)` (standard normal base density)."""
        return output_log_prob(self(sample, generator=generator, dequantize=dequantize))

    def bits_per_dim(
        self, sample: torch.Tensor, generator: torch.Generator | None = None, dequantize: bool = True
    ) -> torch.Tensor:
        """(-log p(y) + D·log 256) / (D·ln 2): bits per dimension of the 8-bit images, `(B,)`."""
        return nats_to_bits_per_dim(-self.log_prob(sample, generator, dequantize), self.num_dims)


def output_log_prob(output: RealNVPOutput) -> torch.Tensor:
    """log p(y) = log N(z; 0, I) + log|det|, nats per image `(B,)`, from a `RealNVPModel.forward` output."""
    return -0.5 * (output.latents.pow(2) + math.log(2 * math.pi)).sum(1) + output.log_det


def nats_to_bits_per_dim(nll_nats: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Negative log-density of the dequantised y ∈ [0, 1]^D (nats) -> bits per dimension of 8-bit data:
    (nll + D·log 256) / (D·ln 2). The D·log 256 term converts the density on [0, 1]^D to one on [0, 256)^D."""
    return (nll_nats + num_dims * math.log(256)) / (num_dims * math.log(2))
