"""`hfgen demo`'s GAN tab: samples by seed and interpolation between two seeds."""

from __future__ import annotations

import torch
from PIL import Image

from hfgen.demo.common import DemoInputError, DemoModel, grid, image_count, seeded_generator


class GANDemo(DemoModel):
    """DCGAN / WGAN / WGAN-GP: samples by seed and the interpolation between two seeds' latents."""

    kind = "gan"

    def sample(self, seed, num_images, class_name=None) -> Image.Image:
        """``num_images`` samples from seed ``seed`` (of class ``class_name`` for a conditional generator)."""
        count = image_count(num_images)
        with self._lock:
            images = self.pipeline(
                batch_size=count,
                generator=seeded_generator(seed),
                class_labels=self.class_label(class_name) if self.class_names else None,
                output_type="pt",
            ).images
        return grid(images)

    def interpolate(self, seed_a, seed_b, steps=8, class_name=None) -> Image.Image:
        """Images along the spherical path between the latents drawn from ``seed_a`` and ``seed_b``."""
        steps = image_count(steps, "steps")
        if steps < 2 or steps > 16:
            raise DemoInputError(f"steps must be between 2 and 16, got {steps}")
        dim = self.pipeline.latent_dim
        z_a = torch.randn(dim, generator=seeded_generator(seed_a))
        z_b = torch.randn(dim, generator=seeded_generator(seed_b))
        label = self.class_label(class_name) if self.class_names else None
        with self._lock:
            images = self.pipeline.interpolate(
                z_a,
                z_b,
                steps=steps,
                class_labels=0 if self.class_names and label is None else label,
                output_type="pt",
            ).images
        return grid(images, nrow=steps)
