"""`FlowPipeline`: sample a trained `RealNVPModel`, score images with their exact likelihood, reconstruct them."""

from __future__ import annotations

import math

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.torch_utils import randn_tensor

from hfgen.pipelines.utils import PortablePipelineMixin, postprocess_images, preprocess_images


class FlowPipeline(PortablePipelineMixin, DiffusionPipeline):
    """Generate images with a normalizing flow: z ~ N(0, temperature² I), image = flow⁻¹(z).

    Parameters:
        flow (`RealNVPModel`): the trained flow.
    """

    model_cpu_offload_seq = "flow"

    def __init__(self, flow: ModelMixin):
        super().__init__()
        self.register_modules(flow=flow)

    def _images(self, images) -> torch.Tensor:
        config = self.flow.config
        return preprocess_images(
            images, config.sample_size, config.in_channels, self._execution_device, self.flow.dtype
        )

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        temperature: float = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Sample ``batch_size`` images; ``temperature`` < 1 shrinks the base Gaussian (cleaner, less diverse).

        Returns:
            `ImagePipelineOutput`: PIL images, a `(B, H, W, C)` array (``"np"``) or a `(B, C, H, W)` tensor
            (``"pt"``), values in [0, 1].
        """
        if batch_size < 1 or not math.isfinite(temperature) or temperature < 0:
            raise ValueError(
                f"batch_size must be >= 1 and a finite temperature >= 0, got {batch_size} and {temperature}"
            )
        shape = (batch_size, self.flow.num_dims)
        latents = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.flow.dtype)
        images = postprocess_images(self.flow.inverse(latents * temperature), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def log_prob(self, images, generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
        """log p of each (dequantised) image, nats per image, `(B,)`; images in [-1, 1] or PIL."""
        images = self._images(images)
        return torch.cat([self.flow.log_prob(chunk, generator=generator) for chunk in images.split(batch_size)])

    @torch.no_grad()
    def bits_per_dim(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bits per dimension of each 8-bit image, `(B,)` (see `hfgen.models.realnvp.nats_to_bits_per_dim`)."""
        from hfgen.models.realnvp import nats_to_bits_per_dim

        return nats_to_bits_per_dim(-self.log_prob(images, generator), self.flow.num_dims)

    @torch.no_grad()
    def reconstruct(self, images, output_type: str = "pil", return_dict: bool = True):
        """Forward then inverse (no dequantisation noise): the images back, up to float error."""
        latents = self.flow(self._images(images), dequantize=False).latents
        images = postprocess_images(self.flow.inverse(latents), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def likelihood_metrics(self, images, generator: torch.Generator | None = None) -> dict:
        """Held-out figures for `hfgen evaluate`: ``nll_nats`` (mean -log p, nats per image), ``bits_per_dim``."""
        from hfgen.models.realnvp import nats_to_bits_per_dim

        nll = -self.log_prob(images, generator)
        mean = float(nll.mean())
        return {
            "nll_nats": mean,
            "bits_per_dim": float(nats_to_bits_per_dim(torch.tensor(mean), self.flow.num_dims)),
            "num_likelihood_images": int(len(nll)),
        }
