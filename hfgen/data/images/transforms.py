"""Pixel transforms shared by training, sampling and the demo: crop, resize and channel conversion to uint8
(`preprocess_image_uint8`), the [-1, 1] float scale (`preprocess_image`, `uint8_to_float`, `tensor_to_pil`) and the
random horizontal flip of ``--random_flip``."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit / 32-bit integer and float greyscale images to 8 bits (PIL's convert("L") would clip them)."""
    if image.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
        return image
    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) > 255):
        array = array / 257.0
    elif image.mode == "F" and array.size and array.min() >= 0.0 and array.max() <= 1.0:
        array = array * 255.0
    return Image.fromarray(np.round(array).clip(0, 255).astype(np.uint8), mode="L")


def preprocess_image_uint8(
    image: Image.Image, resolution: int, num_channels: int, center_crop: bool = True
) -> np.ndarray:
    """Crop the central square (``center_crop``), resize to ``resolution`` (bilinear, antialiased when shrinking:
    PIL widens the filter support by the scale factor) and convert to ``num_channels``.

    Args:
        image (`PIL.Image.Image`): any mode.
        resolution (`int`): output height and width in pixels (> 0).
        num_channels (`int`): 1 (greyscale, ITU-R 601-2 luma) or 3 (RGB).
        center_crop (`bool`): crop the central ``min(W, H)`` square first (CelebA's 89x109 faces -> 89x89); if
            False the whole image is resized to a square (aspect ratio not kept).

    Returns:
        `np.ndarray` of shape ``(num_channels, resolution, resolution)``, uint8 in [0, 255].
    """
    image = _to_8bit(image).convert("L" if num_channels == 1 else "RGB")
    width, height = image.size
    box = None
    if center_crop and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    if box is not None:  # crop first: resize(box=...) would let the filter read pixels outside the box
        image = image.crop(box)
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.BILINEAR)
    array = np.array(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def preprocess_image(image: Image.Image, resolution: int, num_channels: int, center_crop: bool = True) -> np.ndarray:
    """`preprocess_image_uint8` scaled to [-1, 1]: `np.ndarray` ``(num_channels, resolution, resolution)`` float32."""
    return preprocess_image_uint8(image, resolution, num_channels, center_crop).astype(np.float32) / 127.5 - 1.0


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] (any shape) to float32 in [-1, 1]: ``x / 127.5 - 1``."""
    return images.float() / 127.5 - 1.0


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of ``images`` (``(B, C, H, W)``) left-right with probability 1/2, drawn from ``generator``."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``(B, C, H, W)`` float images in [-1, 1] to a list of PIL images (``L`` for C = 1, ``RGB`` for C = 3)."""
    array = ((images.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return [Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)) for a in array]


__all__ = [
    "preprocess_image",
    "preprocess_image_uint8",
    "random_hflip",
    "tensor_to_pil",
    "uint8_to_float",
]
