"""The variational autoencoder (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014) and β-VAE (Higgins
et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework", ICLR 2017).

Units: every loss term is in **nats per image** (summed over pixels and latent dimensions, not averaged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution as _DiffusersDiagonalGaussian
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from hfgen.models.conv import ConvDecoder, ConvEncoder, check_class_labels, check_images

LIKELIHOODS = ("bernoulli", "gaussian")


class DiagonalGaussianDistribution(_DiffusersDiagonalGaussian):
    """diffusers' diagonal Gaussian posterior q(z|x) for latent *vectors* `(batch_size, latent_dim)`.

    diffusers' class sums its KL over dimensions 1-3 of image-shaped latents; this one sums over every non-batch
    dimension. Attributes ``mean``, ``logvar`` (clamped to [-30, 20]), ``std``, ``var`` have shape
    `(batch_size, latent_dim)`; ``sample(generator)`` draws ``mean + std * eps`` (the reparameterisation trick).

    Args:
        parameters (`torch.Tensor` of shape `(batch_size, 2 * latent_dim)`): ``[mean, logvar]`` concatenated.
    """

    def kl_per_dim(self) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) of each latent dimension, `(batch_size, latent_dim)`, nats."""
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar)

    def kl(self, other: DiagonalGaussianDistribution | None = None) -> torch.Tensor:
        """KL(q || other), default other = N(0, I), summed over latent dimensions: `(batch_size,)`, nats."""
        if other is None:
            return self.kl_per_dim().flatten(1).sum(1)
        terms = (self.mean - other.mean).pow(2) / other.var + self.var / other.var - 1.0 - self.logvar + other.logvar
        return 0.5 * terms.flatten(1).sum(1)

    def mode(self) -> torch.Tensor:
        """The posterior mean, `(batch_size, latent_dim)`."""
        return self.mean


@dataclass
class VAEOutput(BaseOutput):
    """Output of `VAEModel.forward`. Per-image terms are in nats per image.

    Args:
        sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): the reconstruction (mean of
            p(x|z)) in [-1, 1].
        latent_dist (`DiagonalGaussianDistribution`): q(z|x).
        latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): the z decoded (a posterior sample, or the mean).
        reconstruction_loss (`torch.Tensor` of shape `(batch_size,)`): -log p(x|z).
        kl (`torch.Tensor` of shape `(batch_size,)`): KL(q(z|x) || N(0, I)).
        negative_elbo (`torch.Tensor` of shape `(batch_size,)`): ``reconstruction_loss + kl``, an upper bound on
            -log p(x) (a one-sample estimate when z is sampled).
        loss (`torch.Tensor`, scalar): the training objective ``mean(reconstruction_loss + beta * kl)``; equals the
            mean negative ELBO when ``beta == 1``.
    """

    sample: torch.Tensor
    latent_dist: DiagonalGaussianDistribution
    latents: torch.Tensor
    reconstruction_loss: torch.Tensor
    kl: torch.Tensor
    negative_elbo: torch.Tensor
    loss: torch.Tensor


class VAEModel(ModelMixin, ConfigMixin):
    """A convolutional VAE / β-VAE with a N(0, I) prior and a diagonal Gaussian posterior.

    Likelihoods p(x|z):
        - ``"bernoulli"``: each pixel's intensity in [0, 1] (``(x + 1) / 2``) is the target of a binary
          cross-entropy with the decoder's logits (Kingma & Welling's MNIST model). For non-binary pixels this is the
          usual surrogate, not a normalised density.
        - ``"gaussian"``: N(x; decoder mean, ``observation_std``^2 I) on images in [-1, 1]; -log p(x|z) is the
          squared error / (2 σ^2) plus the normalising constant, so the negative ELBO bounds a true density.

    Parameters:
        sample_size (`int`, defaults to 16): image height and width; divisible by ``2**len(block_out_channels)``.
        in_channels (`int`, defaults to 1): image channels.
        latent_dim (`int`, defaults to 2): dimensions of z.
        block_out_channels (`tuple[int]`, defaults to `(32, 64)`): channels per resolution level.
        likelihood (`str`, defaults to `"bernoulli"`): ``"bernoulli"`` or ``"gaussian"``.
        beta (`float`, defaults to 1.0): weight of the KL term (β > 1: β-VAE, more disentangled, blurrier).
        observation_std (`float`, defaults to 0.1): σ of the Gaussian likelihood, in [-1, 1] pixel units.
        num_classes (`int`, *optional*): C for a conditional VAE (Sohn et al. 2015, "Learning Structured Output
            Representation using Deep Conditional Generative Models"): the one-hot label enters the encoder as C
            constant input channels, q(z|x, y), and the decoder next to z, p(x|z, y); the prior stays N(0, I).
            Every method then takes ``class_labels`` `(B,)` with values in [0, C). None: unconditional.

    Raises:
        ValueError: unknown likelihood, ``beta < 0``, ``observation_std <= 0``, sizes that do not fit, or
            ``num_classes < 2``.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 1,
        latent_dim: int = 2,
        block_out_channels: tuple[int, ...] = (32, 64),
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        observation_std: float = 0.1,
        num_classes: int | None = None,
    ):
        super().__init__()
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 for a conditional VAE, got {num_classes}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {likelihood!r} is unknown; choose {', '.join(LIKELIHOODS)}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if observation_std <= 0:
            raise ValueError(f"observation_std must be > 0, got {observation_std}")
        extra = num_classes or 0
        self.encoder = ConvEncoder(sample_size, in_channels + extra, block_out_channels, 2 * latent_dim)
        self.decoder = ConvDecoder(sample_size, in_channels, block_out_channels, latent_dim + extra)

    def _one_hot(self, class_labels: torch.Tensor | None, batch_size: int) -> torch.Tensor | None:
        """One-hot labels `(B, C)` for a conditional VAE, None for an unconditional one.

        Raises:
            ValueError: missing labels for a conditional VAE, labels for an unconditional one, or labels outside
                [0, C) or of the wrong length.
        """
        num_classes = self.config.num_classes
        class_labels = check_class_labels(class_labels, num_classes, batch_size, "VAE", self.device)
        return None if class_labels is None else F.one_hot(class_labels, num_classes).to(self.dtype)

    def encode(self, sample: torch.Tensor, class_labels: torch.Tensor | None = None) -> DiagonalGaussianDistribution:
        """q(z|x) (conditional: q(z|x, y)) of images `(B, C, H, W)` in [-1, 1].

        Raises:
            ImageShapeError: for images of the wrong shape or channels.
            ValueError: for missing or invalid ``class_labels`` (see `_one_hot`).
        """
        check_images(sample, self.config.in_channels, self.config.sample_size, type(self).__name__)
        one_hot = self._one_hot(class_labels, sample.shape[0])
        if one_hot is not None:
            planes = one_hot.to(sample.dtype)[:, :, None, None].expand(-1, -1, *sample.shape[2:])
            sample = torch.cat([sample, planes], dim=1)
        return DiagonalGaussianDistribution(self.encoder(sample))

    def _decoder_output(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        one_hot = self._one_hot(class_labels, latents.shape[0])
        if one_hot is not None:
            latents = torch.cat([latents, one_hot.to(latents.dtype)], dim=1)
        return self.decoder(latents)

    def _to_image(self, raw: torch.Tensor) -> torch.Tensor:
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(raw) * 2 - 1
        return raw.clamp(-1, 1)

    def decode(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of p(x|z) (conditional: p(x|z, y)) for latents `(B, latent_dim)`: images `(B, C, H, W)` in
        [-1, 1]."""
        return self._to_image(self._decoder_output(latents, class_labels))

    def reconstruction_nll(self, raw: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats per image, `(B,)`, from the decoder's raw output and images in [-1, 1]."""
        raw, sample = raw.float(), sample.float()
        if self.config.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(raw, (sample + 1) / 2, reduction="none")
        else:
            sigma = self.config.observation_std
            nll = 0.5 * ((sample - raw) / sigma).pow(2) + math.log(sigma) + 0.5 * math.log(2 * math.pi)
        return nll.flatten(1).sum(1)

    def forward(
        self,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        sample_posterior: bool = True,
        return_dict: bool = True,
        class_labels: torch.Tensor | None = None,
    ) -> VAEOutput | tuple:
        """Encode, draw z ~ q(z|x) (or take its mean), decode and compute the loss terms (see `VAEOutput`).

        Args:
            sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): images in [-1, 1].
            generator (`torch.Generator`, *optional*): the noise of the reparameterisation.
            sample_posterior (`bool`): draw z (training) or use the posterior mean.
            class_labels (`torch.Tensor` of shape `(batch_size,)`, *optional*): the classes, for a conditional VAE.
        """
        posterior = self.encode(sample, class_labels)
        latents = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        raw = self._decoder_output(latents, class_labels)
        reconstruction_loss = self.reconstruction_nll(raw, sample)
        kl = posterior.kl().float()
        output = VAEOutput(
            sample=self._to_image(raw),
            latent_dist=posterior,
            latents=latents,
            reconstruction_loss=reconstruction_loss,
            kl=kl,
            negative_elbo=reconstruction_loss + kl,
            loss=(reconstruction_loss + self.config.beta * kl).mean(),
        )
        return output if return_dict else output.to_tuple()
