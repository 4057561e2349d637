"""`VAEPipeline`: sample a trained `VAEModel` from its prior, plus every latent-space method of
`AutoencoderPipeline` and the held-out negative ELBO."""

from __future__ import annotations

import math

import torch
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.torch_utils import randn_tensor

from hfgen.pipelines.conditioning import labels_batch_size, normalize_id2label, resolve_class_labels
from hfgen.pipelines.pipeline_autoencoder import AutoencoderPipeline


class VAEPipeline(AutoencoderPipeline):
    """Generate images with a VAE: z ~ N(0, temperature^2 I), decoded to the mean of p(x|z).

    Also: ``reconstruct``, ``encode`` (posterior means), ``decode``, ``interpolate``, ``traverse``,
    ``attribute_vector``, ``apply_attribute`` (see `AutoencoderPipeline`) and ``negative_elbo``.

    Parameters:
        vae (`VAEModel`): the trained model.
    """

    model_cpu_offload_seq = "vae"
    _model_attribute = "vae"

    def __init__(self, vae: ModelMixin, id2label: dict | None = None):
        super(AutoencoderPipeline, self).__init__()
        self.register_modules(vae=vae)
        if vae.config.get("num_classes"):
            self.register_to_config(id2label=normalize_id2label(id2label, vae.config.num_classes))

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        temperature: float = 1.0,
        latents: torch.Tensor | None = None,
        class_labels: int | str | list | torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Sample ``batch_size`` images from the prior (of the classes ``class_labels`` for a conditional VAE).

        Args:
            batch_size (`int`): images to generate.
            generator (`torch.Generator`, *optional*): makes sampling deterministic.
            temperature (`float`): scales the prior's standard deviation (< 1: more typical, less diverse images).
            latents (`torch.Tensor` of shape `(batch_size, latent_dim)`, *optional*): codes to decode instead of
                drawing them.
            class_labels: for a conditional VAE, class indices or names, one for all images or one per image; None:
                every class in turn. Refused by an unconditional VAE.
            output_type (`str`): ``"pil"``, ``"np"`` or ``"pt"``.

        Returns:
            `ImagePipelineOutput` (or a tuple when ``return_dict=False``).
        """
        batch_size = labels_batch_size(class_labels, batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
        if latents is None:
            shape = (batch_size, self.latent_dim)
            latents = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.vae.dtype)
            latents = latents * temperature
        if self.num_classes and class_labels is None:
            class_labels = resolve_class_labels(None, len(latents), self.num_classes)
        return self.decode(latents, output_type=output_type, return_dict=return_dict, class_labels=class_labels)

    @torch.no_grad()
    def negative_elbo(
        self,
        images,
        generator: torch.Generator | None = None,
        num_samples: int = 1,
        batch_size: int = 256,
        class_labels=None,
    ) -> torch.Tensor:
        """-ELBO of each image in nats, `(B,)`: an upper bound on -log p(x) (conditional VAE: on -log p(x|y), with
        the images' ``class_labels``), averaged over ``num_samples`` draws."""
        images = self._images(images)
        labels = self._labels(class_labels, len(images)).get("class_labels")
        totals = []
        for start, chunk in zip(range(0, len(images), batch_size), images.split(batch_size)):
            extra = {} if labels is None else {"class_labels": labels[start : start + len(chunk)]}
            runs = [self.vae(chunk, generator=generator, **extra).negative_elbo for _ in range(num_samples)]
            totals.append(torch.stack(runs).mean(0))
        return torch.cat(totals)

    def likelihood_metrics(self, images, generator: torch.Generator | None = None, class_labels=None) -> dict:
        """Held-out likelihood figures for `hfgen evaluate` (a conditional VAE needs the images' ``class_labels``
        and bounds -log p(x|y)).

        Returns:
            ``negative_elbo_nats`` (mean -ELBO per image, nats), ``bits_per_dim`` (the same per pixel and channel in
            bits; for the Gaussian likelihood on the 8-bit pixel scale, i.e. + log2(127.5) per dimension, so it is
            comparable with published bits/dim), ``likelihood`` and ``num_likelihood_images``.
        """
        nelbo = self.negative_elbo(images, generator=generator, num_samples=4, class_labels=class_labels)
        config = self.vae.config
        dims = config.in_channels * config.sample_size**2
        nats = float(nelbo.mean())
        scale = math.log(127.5) if config.likelihood == "gaussian" else 0.0
        return {
            "negative_elbo_nats": nats,
            "bits_per_dim": (nats / dims + scale) / math.log(2),
            "likelihood": config.likelihood,
            "num_likelihood_images": int(len(nelbo)),
        }
