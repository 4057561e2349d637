"""Helpers shared by hfgen's pipelines: turning user images into model input and model output into user images."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from hfgen.errors import ImageShapeError

OUTPUT_TYPES = ("pil", "np", "pt")


class PortablePipelineMixin:
    """Put first in the bases of every hfgen pipeline: ``save_pretrained`` also writes the pipeline's and the
    components' source into the folder (`hfgen.pipelines.portable.write_portable_code`), so that stock
    ``diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` loads it without hfgen."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a saved folder (or Hub repo) of this pipeline class with hfgen's own classes (`hfgen.load_pipeline`),
        never the source written into the folder; components passed by name replace the saved ones. Without hfgen
        (a portable copy), diffusers' ``from_pretrained``.

        Raises:
            hfgen.errors.CheckpointError: the folder is missing or corrupt, or holds another pipeline class.
        """
        try:
            from hfgen.errors import CheckpointError
            from hfgen.pipelines.loading import load_pipeline
        except ImportError:  # a portable copy loaded without hfgen
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        kwargs.pop("trust_remote_code", None)  # hfgen never runs the folder's source
        pipeline = load_pipeline(str(pretrained_model_name_or_path), **kwargs)
        if not isinstance(pipeline, cls):
            raise CheckpointError(
                f"{pretrained_model_name_or_path} holds a {type(pipeline).__name__}, not a {cls.__name__}; load it "
                "with hfgen.load_pipeline or that class"
            )
        return pipeline

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers' ``save_pretrained`` (same arguments), then the portable source; returns None.

        Raises:
            OSError: when the folder cannot be written.
        """
        super().save_pretrained(save_directory, *args, **kwargs)
        try:
            from hfgen.pipelines.portable import write_portable_code
        except ImportError:  # a portable copy loaded without hfgen: diffusers wrote the weights and the index
            return
        write_portable_code(str(save_directory), self)


def postprocess_images(images: torch.Tensor, output_type: str = "pil"):
    """Images `(B, C, H, W)` in [-1, 1] -> what diffusers pipelines return for ``output_type``.

    Returns:
        ``"pt"``: a `(B, C, H, W)` float tensor in [0, 1]; ``"np"``: a `(B, H, W, C)` float array in [0, 1];
        ``"pil"``: a list of PIL images.

    Raises:
        ValueError: for another ``output_type``.
    """
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type {output_type!r} is unknown; choose {', '.join(OUTPUT_TYPES)}")
    images = (images.detach().float() / 2 + 0.5).clamp(0, 1)
    if output_type == "pt":
        return images
    array = images.cpu().permute(0, 2, 3, 1).numpy()
    if output_type == "np":
        return array
    array = (array * 255).round().astype(np.uint8)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in array]


def preprocess_images(images, sample_size: int, in_channels: int, device=None, dtype=None) -> torch.Tensor:
    """User images -> a `(B, in_channels, sample_size, sample_size)` tensor in [-1, 1].

    Args:
        images: a tensor `(B, C, H, W)` or `(C, H, W)` already in [-1, 1], a PIL image, or a list of PIL images
            (resized and converted like training images, see `hfgen.data.images.transforms.preprocess_image`).

    Raises:
        ImageShapeError: for a tensor of the wrong shape or channels, or an empty list.
    """
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageShapeError("no images given; pass at least one image")
        if all(isinstance(im, Image.Image) for im in images):
            # PIL input only: a portable folder samples without it
            from hfgen.data.images.transforms import preprocess_image

            images = torch.from_numpy(np.stack([preprocess_image(im, sample_size, in_channels) for im in images]))
        else:
            images = torch.stack([torch.as_tensor(im) for im in images])
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ImageShapeError(f"expected a tensor or PIL image(s), got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    expected = (in_channels, sample_size, sample_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ImageShapeError(
            f"expected images of shape (batch_size, {in_channels}, {sample_size}, {sample_size}) in [-1, 1], got "
            f"{tuple(images.shape)}; resize/convert them to {sample_size}x{sample_size} with {in_channels} "
            "channel(s), or pass PIL images"
        )
    return images.to(device=device, dtype=dtype or torch.float32)


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake 1985; White 2016 for generative latents).

    Args:
        z_a, z_b (`torch.Tensor` of shape `(latent_dim,)`): the endpoints.
        t (`torch.Tensor` of shape `(steps,)`): fractions in [0, 1].

    Returns:
        `(steps, latent_dim)`; exactly ``z_a`` at t = 0 and ``z_b`` at t = 1. Falls back to linear interpolation
        for (anti-)parallel endpoints.
    """
    t = t[:, None]
    cos = torch.dot(z_a, z_b) / (z_a.norm() * z_b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:
        return (1 - t) * z_a + t * z_b
    path = (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / torch.sin(omega)
    path[t[:, 0] == 0] = z_a  # exact endpoints, not sin(w) z / sin(w)
    path[t[:, 0] == 1] = z_b
    return path
