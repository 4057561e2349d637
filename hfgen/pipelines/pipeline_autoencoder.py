"""`AutoencoderPipeline`: reconstructions, latent codes, interpolation, traversals and attribute vectors of a trained
`AutoencoderModel`. `VAEPipeline` (pipeline_vae.py) inherits every method and adds sampling from the prior."""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.models.modeling_utils import ModelMixin

from hfgen.errors import UnsupportedOperationError
from hfgen.pipelines.utils import PortablePipelineMixin, postprocess_images, preprocess_images, slerp

INTERPOLATIONS = ("slerp", "linear")


class AutoencoderPipeline(PortablePipelineMixin, DiffusionPipeline):
    """Explore a trained autoencoder: reconstruct, encode, decode, interpolate ("morph"), traverse latent
    dimensions and add attribute vectors. An autoencoder has no prior, so calling the pipeline to sample raises
    `UnsupportedOperationError` (train a VAE to sample).

    Every method takes images as a `(B, C, H, W)` tensor in [-1, 1] or as PIL image(s), and returns an
    `ImagePipelineOutput` whose ``images`` follow ``output_type`` (``"pil"``, ``"np"`` `(B, H, W, C)` in [0, 1], or
    ``"pt"`` `(B, C, H, W)` in [0, 1]).

    Parameters:
        autoencoder (`AutoencoderModel`): the trained model.
    """

    model_cpu_offload_seq = "autoencoder"
    _model_attribute = "autoencoder"

    def __init__(self, autoencoder: ModelMixin):
        super().__init__()
        self.register_modules(autoencoder=autoencoder)

    @property
    def model(self):
        """The wrapped autoencoder or VAE."""
        return getattr(self, self._model_attribute)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    def __call__(self, *args, **kwargs):
        raise UnsupportedOperationError(
            "an autoencoder has no prior distribution to sample from; use reconstruct(), interpolate(), traverse() "
            "or the latent maps of `hfgen explore`, or train a VAE (`hfgen train vae`) to generate new images"
        )

    # ----------------------------------------------------------------- basics
    def _images(self, images) -> torch.Tensor:
        config = self.model.config
        return preprocess_images(
            images, config.sample_size, config.in_channels, self._execution_device, self.model.dtype
        )

    def _output(self, images: torch.Tensor, output_type: str, return_dict: bool):
        images = postprocess_images(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @property
    def num_classes(self) -> int | None:
        """C of a conditional VAE (``num_classes`` in its config), None otherwise."""
        return getattr(self.model.config, "num_classes", None)

    @property
    def id2label(self) -> dict[int, str] | None:
        """Class index -> name of a class-conditional model, None otherwise."""
        if not self.num_classes:
            return None
        from hfgen.pipelines.conditioning import normalize_id2label

        return normalize_id2label(getattr(self.config, "id2label", None), self.num_classes)

    def _labels(self, class_labels, batch_size: int) -> dict:
        """``{"class_labels": (B,) tensor}`` for a conditional VAE, ``{}`` otherwise (see
        `hfgen.pipelines.conditioning.resolve_class_labels`; names come from ``id2label``)."""
        if not self.num_classes:
            if class_labels is not None:
                raise ValueError("class_labels needs a class-conditional model (trained with --class_conditional)")
            return {}
        if class_labels is None:
            raise ValueError(f"this model is class-conditional; pass class_labels (one of {self.num_classes} classes)")
        from hfgen.pipelines.conditioning import resolve_class_labels

        labels = resolve_class_labels(class_labels, batch_size, self.num_classes, self.id2label)
        return {"class_labels": labels.to(self._execution_device)}

    @torch.no_grad()
    def encode(self, images, batch_size: int = 256, class_labels=None) -> torch.Tensor:
        """Latent codes `(B, latent_dim)` of ``images`` (the posterior mean for a VAE; a conditional VAE also takes
        the images' ``class_labels``)."""
        images = self._images(images)
        labels = self._labels(class_labels, len(images)).get("class_labels")
        codes = []
        for start, chunk in zip(range(0, len(images), batch_size), images.split(batch_size)):
            extra = {} if labels is None else {"class_labels": labels[start : start + len(chunk)]}
            encoded = self.model.encode(chunk, **extra)
            codes.append(encoded if isinstance(encoded, torch.Tensor) else encoded.mode())  # VAE: posterior mean
        return torch.cat(codes)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, output_type: str = "pil", return_dict: bool = True, class_labels=None):
        """Images of latent codes `(B, latent_dim)` (or `(latent_dim,)`); a conditional VAE also takes
        ``class_labels`` (one for all, or one per code)."""
        latents = torch.as_tensor(latents, dtype=self.model.dtype, device=self._execution_device)
        if latents.ndim == 1:
            latents = latents[None]
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (batch_size, {self.latent_dim}), got {tuple(latents.shape)}")
        return self._output(
            self.model.decode(latents, **self._labels(class_labels, len(latents))), output_type, return_dict
        )

    @torch.no_grad()
    def reconstruct(self, images, output_type: str = "pil", return_dict: bool = True, class_labels=None):
        """Encode then decode ``images`` (with the posterior mean for a VAE): one reconstruction per image."""
        codes = self.encode(images, class_labels=class_labels)
        return self.decode(codes, output_type=output_type, return_dict=return_dict, class_labels=class_labels)

    # -------------------------------------------------------- latent geometry
    @torch.no_grad()
    def interpolate(
        self,
        image_a,
        image_b,
        steps: int = 8,
        method: str = "slerp",
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Morph ``image_a`` into ``image_b``: decode ``steps`` points between their codes.

        Args:
            image_a, image_b: one image each.
            steps (`int`, >= 2): images in the row, endpoints included (they are the endpoints' reconstructions).
            method (`str`): ``"slerp"`` (spherical, keeps the norm typical of a Gaussian prior) or ``"linear"``.
        """
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (the two endpoints), got {steps}")
        if method not in INTERPOLATIONS:
            raise ValueError(f"method {method!r} is unknown; choose {', '.join(INTERPOLATIONS)}")
        z_a, z_b = self.encode(image_a)[0], self.encode(image_b)[0]
        t = torch.linspace(0, 1, steps, dtype=z_a.dtype, device=z_a.device)
        latents = slerp(z_a, z_b, t) if method == "slerp" else (1 - t[:, None]) * z_a + t[:, None] * z_b
        return self.decode(latents, output_type=output_type, return_dict=return_dict)

    @torch.no_grad()
    def traverse(self, image, dims=None, values=None, output_type: str = "pil", return_dict: bool = True):
        """Latent traversal (Higgins et al. 2017): set one dimension of ``image``'s code to each of ``values``.

        Args:
            image: one image.
            dims (`list[int]`, *optional*): dimensions to traverse; default the first ``min(latent_dim, 10)``.
            values (`list[float]` or `torch.Tensor`, *optional*): the values, in prior standard deviations for a VAE;
                default ``linspace(-3, 3, 7)``.

        Returns:
            ``len(dims) * len(values)`` images, row-major: one row per dimension.
        """
        dims = list(range(min(self.latent_dim, 10))) if dims is None else [int(d) for d in dims]
        if not dims or any(not 0 <= d < self.latent_dim for d in dims):
            raise ValueError(f"dims {dims} must be indices in [0, {self.latent_dim})")
        values = torch.linspace(-3, 3, 7) if values is None else torch.as_tensor(values, dtype=torch.float32)
        z = self.encode(image)[0]
        latents = z.repeat(len(dims) * len(values), 1)
        for row, dim in enumerate(dims):
            latents[row * len(values) : (row + 1) * len(values), dim] = values.to(latents)
        return self.decode(latents, output_type=output_type, return_dict=return_dict)

    @torch.no_grad()
    def attribute_vector(self, images_with, images_without) -> torch.Tensor:
        """Mean code of ``images_with`` minus mean code of ``images_without`` (White 2016's "smile vector"):
        `(latent_dim,)`."""
        return self.encode(images_with).mean(0) - self.encode(images_without).mean(0)

    @torch.no_grad()
    def apply_attribute(
        self,
        image,
        vector: torch.Tensor,
        alphas=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Decode ``z + alpha * vector`` for each alpha, z the code of ``image``: ``len(alphas)`` images."""
        z = self.encode(image)[0]
        vector = torch.as_tensor(vector, dtype=z.dtype, device=z.device)
        if vector.shape != z.shape:
            raise ValueError(f"expected an attribute vector of shape ({self.latent_dim},), got {tuple(vector.shape)}")
        alphas = torch.as_tensor(alphas, dtype=z.dtype, device=z.device)
        return self.decode(z + alphas[:, None] * vector, output_type=output_type, return_dict=return_dict)
