"""`GANPipeline`: sample a trained DCGAN / WGAN / WGAN-GP generator (one network evaluation per image)."""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from hfgen.models.gan import DCGANDiscriminator, DCGANGenerator
from hfgen.pipelines.utils import postprocess_images, slerp


class GANPipeline(DiffusionPipeline):
    """Generate images with a GAN generator: z ~ N(0, I), image = G(z).

    The critic/discriminator is saved next to the generator for reuse (e.g. to continue training or to score
    images); sampling does not need it and it may be absent.

    Parameters:
        generator (`DCGANGenerator`): the trained generator (EMA weights when trained with ``--use_ema``).
        critic (`DCGANDiscriminator`, *optional*): the discriminator (DCGAN) or critic (WGAN, WGAN-GP).
    """

    model_cpu_offload_seq = "generator"
    _optional_components = ["critic"]

    def __init__(self, generator: DCGANGenerator, critic: DCGANDiscriminator | None = None):
        super().__init__()
        self.register_modules(generator=generator, critic=critic)

    @property
    def latent_dim(self) -> int:
        return self.generator.config.latent_dim

    def _latents(self, latents, batch_size: int | None = None) -> torch.Tensor:
        latents = torch.as_tensor(latents, device=self._execution_device, dtype=self.generator.dtype)
        if latents.ndim == 1:
            latents = latents[None]
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (batch_size, {self.latent_dim}), got {tuple(latents.shape)}")
        if batch_size is not None and len(latents) != batch_size:
            raise ValueError(f"got {len(latents)} latents for batch_size {batch_size}; pass as many as images wanted")
        return latents

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Generate ``batch_size`` images.

        Args:
            batch_size (`int`): images to generate.
            generator (`torch.Generator`, *optional*): the random generator of z (makes sampling deterministic).
            latents (`torch.Tensor` of shape `(batch_size, latent_dim)`, *optional*): z to use instead of drawing it.
            output_type (`str`): ``"pil"``, ``"np"`` (`(B, H, W, C)` in [0, 1]) or ``"pt"`` (`(B, C, H, W)` in [0, 1]).

        Returns:
            `ImagePipelineOutput` (or a tuple when ``return_dict=False``).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if latents is None:
            shape = (batch_size, self.latent_dim)
            latents = randn_tensor(
                shape, generator=generator, device=self._execution_device, dtype=self.generator.dtype
            )
        else:
            latents = self._latents(latents, batch_size)
        images = self.generator(latents).sample
        images = postprocess_images(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def interpolate(
        self,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        steps: int = 8,
        method: str = "slerp",
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Images along the path from latent ``z_a`` to ``z_b`` (both `(latent_dim,)`), endpoints included.

        Args:
            steps (`int`, >= 2): images in the row.
            method (`str`): ``"slerp"`` (spherical; stays where a Gaussian puts its mass, White 2016) or ``"linear"``.
        """
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the two endpoints), got {steps}")
        if method not in ("slerp", "linear"):
            raise ValueError(f"method {method!r} is unknown; choose slerp or linear")
        z_a, z_b = self._latents(z_a)[0], self._latents(z_b)[0]
        t = torch.linspace(0, 1, steps, dtype=z_a.dtype, device=z_a.device)
        path = slerp(z_a, z_b, t) if method == "slerp" else (1 - t[:, None]) * z_a + t[:, None] * z_b
        return self(batch_size=steps, latents=path, output_type=output_type, return_dict=return_dict)
