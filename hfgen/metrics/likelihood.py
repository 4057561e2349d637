"""Likelihood figures that need no neural network: what lossless PNG compression spends on the same images.

A density model of 8-bit images is a compressor (bits per dimension = expected code length per sub-pixel with an
ideal entropy coder), so PNG is the baseline a flow must beat to have learned anything a generic compressor has not.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def _uint8(images: torch.Tensor) -> np.ndarray:
    """`(N, C, H, W)` in [-1, 1] -> `(N, H, W, C)` uint8."""
    array = ((images.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return array.transpose(0, 2, 3, 1)


def _png_bits(array: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG", optimize=True)
    return 8 * buffer.tell()


def png_bits_per_image(images: torch.Tensor) -> torch.Tensor:
    """PNG size of each image (``optimize=True``) in bits, `(N,)`; images `(N, C, H, W)` in [-1, 1].

    This is the complexity estimate of Serrà et al. 2020 (input complexity for OOD scores); it includes PNG's fixed
    header (~57 bytes), which dominates for tiny images.
    """
    return torch.tensor([float(_png_bits(a)) for a in _uint8(images)], dtype=torch.float64)


def png_bits_per_dim(images: torch.Tensor) -> dict:
    """PNG baselines in bits per dimension for images `(N, C, H, W)` in [-1, 1].

    Returns:
        ``png_bits_per_dim``: mean over images each saved as its own PNG (headers included);
        ``png_tiled_bits_per_dim``: all images tiled into one PNG (header cost shared: the fairer compression
        figure).
    """
    array = _uint8(images)
    count, height, width, channels = array.shape
    dims = height * width * channels
    per_image = png_bits_per_image(images)
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    tiled = np.zeros((rows * height, columns * width, channels), np.uint8)
    for index, image in enumerate(array):
        r, c = divmod(index, columns)
        tiled[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
    return {
        "png_bits_per_dim": float(per_image.mean() / dims),
        "png_tiled_bits_per_dim": _png_bits(tiled) / (count * dims),
    }
