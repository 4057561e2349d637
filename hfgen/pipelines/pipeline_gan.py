"""`GANPipeline`: sample a trained DCGAN / WGAN / WGAN-GP generator (one network evaluation per image)."""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.torch_utils import randn_tensor

from hfgen.pipelines.conditioning import labels_batch_size, normalize_id2label, resolve_class_labels
from hfgen.pipelines.utils import PortablePipelineMixin, postprocess_images, slerp


class GANPipeline(PortablePipelineMixin, DiffusionPipeline):
    """Generate images with a GAN generator: z ~ N(0, I), image = G(z).

    The critic/discriminator is saved next to the generator for reuse (e.g. to continue training or to score
    images); sampling does not need it and it may be absent.

    Parameters:
        generator (`DCGANGenerator`): the trained generator (EMA weights when trained with ``--use_ema``).
        critic (`DCGANDiscriminator`, *optional*): the discriminator (DCGAN) or critic (WGAN, WGAN-GP).
        id2label (`dict`, *optional*): class names of a conditional generator (``num_classes`` in its config).
    """

    model_cpu_offload_seq = "generator"
    _optional_components = ["critic"]

    def __init__(self, generator: ModelMixin, critic: ModelMixin | None = None, id2label: dict | None = None):
        super().__init__()
        self.register_modules(generator=generator, critic=critic)
        if self.num_classes:
            self.register_to_config(id2label=normalize_id2label(id2label, self.num_classes))

    @property
    def num_classes(self) -> int | None:
        """C of a conditional generator, None for an unconditional one."""
        return self.generator.config.get("num_classes")

    @property
    def id2label(self) -> dict[int, str] | None:
        """Class index -> name of a class-conditional model, None otherwise."""
        if not self.num_classes:
            return None
        return normalize_id2label(getattr(self.config, "id2label", None), self.num_classes)

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
        class_labels: int | str | list | torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Generate ``batch_size`` images (of the classes ``class_labels`` for a conditional generator).

        Args:
            batch_size (`int`): images to generate.
            generator (`torch.Generator`, *optional*): the random generator of z (makes sampling deterministic).
            latents (`torch.Tensor` of shape `(batch_size, latent_dim)`, *optional*): z to use instead of drawing it.
            class_labels: for a conditional generator, class indices or names, one for all images or one per image;
                None: every class in turn. Refused by an unconditional generator.
            output_type (`str`): ``"pil"``, ``"np"`` (`(B, H, W, C)` in [0, 1]) or ``"pt"`` (`(B, C, H, W)` in [0, 1]).

        Returns:
            `ImagePipelineOutput` (or a tuple when ``return_dict=False``).

        Raises:
            ValueError: for ``batch_size < 1``, latents of the wrong shape, or class labels that are not the model's.
        """
        if latents is None:
            batch_size = labels_batch_size(class_labels, batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if latents is None:
            shape = (batch_size, self.latent_dim)
            latents = randn_tensor(
                shape, generator=generator, device=self._execution_device, dtype=self.generator.dtype
            )
        else:
            latents = self._latents(latents, batch_size)
        extra = {}
        if self.num_classes:
            labels = resolve_class_labels(class_labels, len(latents), self.num_classes, self.config.id2label)
            extra["class_labels"] = labels.to(self._execution_device)
        elif class_labels is not None:
            raise ValueError("class_labels needs a class-conditional model (trained with --class_conditional)")
        images = self.generator(latents, **extra).sample
        images = postprocess_images(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def interpolate(
        self,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        steps: int = 8,
        method: str = "slerp",
        class_labels: int | str | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Images along the path from latent ``z_a`` to ``z_b`` (both `(latent_dim,)`), endpoints included.

        Args:
            steps (`int`, >= 2): images in the row.
            method (`str`): ``"slerp"`` (spherical; stays where a Gaussian puts its mass, White 2016) or ``"linear"``.
            class_labels: the class of the whole row, for a conditional generator.
        """
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the two endpoints), got {steps}")
        if method not in ("slerp", "linear"):
            raise ValueError(f"method {method!r} is unknown; choose slerp or linear")
        z_a, z_b = self._latents(z_a)[0], self._latents(z_b)[0]
        t = torch.linspace(0, 1, steps, dtype=z_a.dtype, device=z_a.device)
        path = slerp(z_a, z_b, t) if method == "slerp" else (1 - t[:, None]) * z_a + t[:, None] * z_b
        return self(
            batch_size=steps, latents=path, class_labels=class_labels, output_type=output_type, return_dict=return_dict
        )
