"""`hfgen demo`'s VAE / autoencoder tab: latent sliders, morphing, the attribute vector."""

from __future__ import annotations

import math

import torch
from PIL import Image

from hfgen.demo.common import DemoInputError, DemoModel, grid, image_count, seeded_generator, uploaded_image


class LatentDemo(DemoModel):
    """A VAE or an autoencoder: sliders over the most used latent dimensions, a morph between two images, and the
    attribute vector when the held-out data has labels."""

    kind = "latent"
    num_sliders = 6

    def __init__(self, folder: str, pipeline):
        super().__init__(folder, pipeline)
        self.is_vae = callable(getattr(pipeline, "negative_elbo", None))
        self.images, self.labels = (None, None) if pipeline.num_classes else self._held_out(max_images=500)
        latent_dim = pipeline.latent_dim
        count = min(self.num_sliders, latent_dim)
        if self.images is not None:
            from hfgen.jobs.explore import traversal_dimensions

            self.dims, self.scores = traversal_dimensions(pipeline, self.images, count=count)
            codes = pipeline.encode(self.images)
            self.center, self.spread = codes.mean(0), codes.std(0).clamp_min(1e-3)
        else:  # no data here (or a conditional VAE): the first dimensions, the prior's scale
            self.dims, self.scores = list(range(count)), [float("nan")] * count
            self.center, self.spread = torch.zeros(latent_dim), torch.ones(latent_dim)
        if self.is_vae:  # the prior N(0, I) is the reference of a VAE's codes
            self.center, self.spread = torch.zeros(latent_dim), torch.ones(latent_dim)

    @property
    def slider_labels(self) -> list[str]:
        """One label per slider: the dimension and its mean KL (VAE, nats) or code variance (autoencoder)."""
        what = "KL" if self.is_vae else "variance"
        return [
            f"z[{dim}]" + ("" if math.isnan(score) else f" ({what} {score:.2f})")
            for dim, score in zip(self.dims, self.scores)
        ]

    def decode_sliders(self, *values, class_name=None) -> Image.Image:
        """Decode the code whose `dims` take ``values`` (in prior standard deviations; the others at the centre).

        Args:
            *values (`float`): one per slider, in [-3, 3] (standard deviations from the centre).
            class_name (`str`, *optional*): the class of a conditional VAE (default: the first class).
        """
        if len(values) != len(self.dims):
            raise DemoInputError(f"expected {len(self.dims)} slider values, got {len(values)}")
        code = self.center.clone()
        for dim, value in zip(self.dims, values):
            code[dim] = self.center[dim] + float(value) * self.spread[dim]
        labels = None
        if self.class_names:
            labels = self.class_label(class_name)
            labels = 0 if labels is None else labels
        with self._lock:
            images = self.pipeline.decode(code[None], output_type="pt", class_labels=labels).images
        return grid(images, nrow=1)

    def _image_or_sample(self, upload, seed) -> torch.Tensor:
        cfg = self.pipeline.model.config
        if upload is not None:
            return uploaded_image(upload, cfg.sample_size, cfg.in_channels)
        if self.images is not None:  # a held-out image chosen by the seed
            index = int(torch.randint(len(self.images), (1,), generator=seeded_generator(seed)))
            return self.images[index : index + 1]
        if not self.is_vae:
            raise DemoInputError("this autoencoder has no prior and its data is not here: upload both images")
        codes = torch.randn(1, self.pipeline.latent_dim, generator=seeded_generator(seed))
        return self.pipeline.decode(codes, output_type="pt").images * 2 - 1

    def morph(self, upload_a, upload_b, seed_a, seed_b, steps=8) -> Image.Image:
        """Decode ``steps`` codes between two images (uploads, or held-out images chosen by the seeds).

        Raises:
            DemoInputError: an upload that is not a readable image, or ``steps`` outside 2..16.
        """
        if self.class_names:
            raise DemoInputError("a class-conditional VAE's codes mean nothing without their labels: use the sliders")
        steps = image_count(steps, "steps")
        if steps < 2 or steps > 16:
            raise DemoInputError(f"steps must be between 2 and 16, got {steps}")
        a, b = self._image_or_sample(upload_a, seed_a), self._image_or_sample(upload_b, seed_b)
        with self._lock:
            images = self.pipeline.interpolate(a, b, steps=steps, output_type="pt").images
        return grid(images, nrow=steps)

    @property
    def attribute_names(self) -> list[str] | None:
        """The labels of the held-out data (the attribute vector's ends), None when it has none."""
        if self.labels is None:
            return None
        return [str(int(v)) for v in torch.unique(self.labels)]

    def attribute(self, source, target, alphas=(-1.0, 0.0, 1.0, 2.0)) -> Image.Image:
        """Held-out images of label ``source`` plus alpha times the attribute vector (mean code of ``target`` minus
        mean code of ``source``, White 2016), one row per image, one column per alpha.

        Raises:
            DemoInputError: no labelled data here, or a label it does not have.
        """
        names = self.attribute_names
        if not names:
            raise DemoInputError("the attribute vector needs labelled held-out data, which is not here")
        if str(source) not in names or str(target) not in names or str(source) == str(target):
            raise DemoInputError(f"choose two different labels of {', '.join(names)}")
        with_images = self.images[self.labels == int(target)]
        without_images = self.images[self.labels == int(source)]
        with self._lock:
            vector = self.pipeline.attribute_vector(with_images, without_images)
            base = self.pipeline.encode(without_images[:4])
            codes = torch.cat([base + alpha * vector for alpha in alphas], 1).reshape(-1, base.shape[1])
            images = self.pipeline.decode(codes, output_type="pt").images
        return grid(images, nrow=len(alphas))
