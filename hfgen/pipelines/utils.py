"""Helpers shared by hfgen's pipelines: turning user images into model input and model output into user images."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from hfgen.errors import ImageShapeError

OUTPUT_TYPES = ("pil", "np", "pt")


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
            (resized and converted like training images, see `hfgen.data.images.preprocess_image`).

    Raises:
        ImageShapeError: for a tensor of the wrong shape or channels, or an empty list.
    """
    from hfgen.data.images import preprocess_image

    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageShapeError("no images given; pass at least one image")
        if all(isinstance(im, Image.Image) for im in images):
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
