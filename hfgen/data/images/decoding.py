"""Decoding an `ImageSource` into tensors: `ImageDecoder` (one image per item, for a lazy
`torch.utils.data.DataLoader`), `decode_images` (the whole source once, uint8, in memory), `images_to_tensor`
(the same, float in [-1, 1]) and `readable_images` (drops files PIL cannot identify). Unreadable images are skipped
with a warning naming the file."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from PIL import Image

from hfgen.data.images.source import ImageSource
from hfgen.data.images.transforms import preprocess_image_uint8, uint8_to_float
from hfgen.errors import DatasetError

logger = logging.getLogger(__name__)


class ImageDecoder(torch.utils.data.Dataset):
    """A `torch.utils.data.Dataset` that decodes and preprocesses one image of an `ImageSource` per item.

    Item ``i`` is a uint8 tensor ``(num_channels, resolution, resolution)``. Used directly by
    `torch.utils.data.DataLoader` for ``--lazy_loading`` (images decoded per batch by worker processes) and by
    `decode_images` to hold a whole data set in memory.

    Args:
        source (`ImageSource`), resolution (`int` > 0), num_channels (`int`: 1 or 3; None: the source's own),
        center_crop (`bool`): see `preprocess_image_uint8`.

    Raises:
        DatasetError: for a bad resolution or channel count; on access, for an unreadable image (naming the file).
    """

    def __init__(
        self, source: ImageSource, resolution: int, num_channels: int | None = None, center_crop: bool = True
    ):
        if not isinstance(resolution, int) or resolution <= 0:
            raise DatasetError(f"resolution must be a positive integer number of pixels, got {resolution!r}")
        if num_channels is not None and num_channels not in (1, 3):
            raise DatasetError(f"num_channels must be 1 (greyscale) or 3 (RGB), got {num_channels}")
        self.source = source
        self.resolution = resolution
        self.num_channels = num_channels or source.native_size()[0]
        self.center_crop = center_crop
        array = source.array
        # fast path: a uint8 array already at the target size and channels needs no PIL round trip
        self.direct = (
            array is not None
            and array.shape[1:3] == (resolution, resolution)
            and (
                (self.num_channels == 1 and (array.ndim == 3 or array.shape[-1] == 1))
                or (self.num_channels == 3 and array.ndim == 4 and array.shape[-1] == 3)
            )
        )

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.decode(index)

    def decode(self, index: int) -> torch.Tensor:
        """Image ``index`` as uint8 ``(C, resolution, resolution)``; DatasetError naming the file when unreadable."""
        if self.direct:
            item = np.asarray(self.source.array[int(self.source.array_rows([index])[0])])
            item = item[None] if item.ndim == 2 else item.transpose(2, 0, 1)
            return torch.from_numpy(np.ascontiguousarray(item))
        try:
            image = self.source.image(index)
        except Exception as err:
            raise DatasetError(f"cannot read image {self.source.describe(index)} ({err})") from None
        return torch.from_numpy(preprocess_image_uint8(image, self.resolution, self.num_channels, self.center_crop))

    def decode_batch(self, indices) -> torch.Tensor:
        """Images ``indices`` as uint8 ``(B, C, resolution, resolution)`` (one vectorised copy on the fast path)."""
        if self.direct:
            order = self.source.array_rows(indices)
            batch = np.asarray(self.source.array[np.sort(order)])[np.argsort(np.argsort(order))]
            batch = batch[:, None] if batch.ndim == 3 else batch.transpose(0, 3, 1, 2)
            return torch.from_numpy(np.ascontiguousarray(batch))
        return torch.stack([self.decode(i) for i in indices])


def readable_images(source: ImageSource) -> ImageSource:
    """``source`` without the files whose header PIL cannot identify (skipped with a warning naming each), for
    decoding later (lazy loading); a header check, not a full decode. Array sources are returned as they are.

    Raises:
        DatasetError: when no image is readable.
    """
    if source.dataset is None:
        return source
    keep, skipped = [], []
    for index, value in enumerate(source.dataset["image"]):
        try:
            if isinstance(value, dict) and value.get("bytes") is None and value.get("path"):
                with Image.open(value["path"]):
                    pass
            keep.append(index)
        except Exception as err:
            skipped.append(source.describe(index))
            logger.warning("skipping unreadable image %s (%s)", skipped[-1], err)
    if not keep:
        raise DatasetError(f"none of the {len(skipped)} images could be read (first: {skipped[:1]})")
    return source if not skipped else source.select(keep)


def decode_images(
    decoder: ImageDecoder, show_progress: bool = False, chunk_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode every image of ``decoder`` once into one uint8 tensor held in memory.

    Unreadable (corrupt) images are skipped with a warning naming the file.

    Returns:
        ``(images, labels)``: uint8 ``(N, C, resolution, resolution)``; int64 ``(N,)`` or None.

    Raises:
        DatasetError: when no image could be read.
    """
    from tqdm.auto import tqdm

    source = decoder.source
    count = len(source)
    if decoder.direct:  # one preallocated uint8 tensor filled chunk by chunk: memory = the uint8 size, no more
        images = torch.empty((count, decoder.num_channels, decoder.resolution, decoder.resolution), dtype=torch.uint8)
        for start in range(0, count, chunk_size):  # copied straight from the (memory-mapped) array: no temporaries
            with warnings.catch_warnings():  # a read-only memory map: the tensor is only read from
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                if source.rows is None:  # a view of the memory map
                    part = source.array[start : start + chunk_size]
                else:  # rows are sorted (a split): a gathered copy of one chunk
                    part = source.array[source.rows[start : start + chunk_size]]
                chunk = torch.from_numpy(np.asarray(part))
            images[start : start + len(chunk)].copy_(chunk[:, None] if chunk.ndim == 3 else chunk.permute(0, 3, 1, 2))
        labels = torch.from_numpy(np.asarray(source.labels)) if source.labels is not None else None
        return images, labels
    images = torch.empty((count, decoder.num_channels, decoder.resolution, decoder.resolution), dtype=torch.uint8)
    kept, skipped = [], []
    for index in tqdm(range(count), desc="Decoding images", disable=not show_progress):
        try:
            images[len(kept)] = decoder.decode(index)
        except DatasetError as err:
            skipped.append(source.describe(index))
            logger.warning("skipping unreadable image %s (%s)", skipped[-1], err)
            continue
        kept.append(index)
    if not kept:
        raise DatasetError(f"none of the {len(skipped)} images could be read (first: {skipped[:1]})")
    if skipped:
        logger.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(map(str, skipped[:5])))
        images = images[: len(kept)].clone()
    labels = torch.from_numpy(np.asarray(source.labels)[kept]) if source.labels is not None else None
    return images, labels


def images_to_tensor(
    dataset,
    resolution: int,
    num_channels: int | None = None,
    center_crop: bool = True,
    max_samples: int | None = None,
    show_progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode and preprocess every image of ``dataset`` once into an in-memory float tensor.

    Unreadable (corrupt) images are skipped with a warning naming the file.

    Args:
        dataset (`datasets.Dataset` or `ImageSource`): with an ``image`` column (and optionally ``label``).
        resolution (`int`): output size in pixels, > 0.
        num_channels (`int`, *optional*): 1 or 3; inferred from the first image when None.
        center_crop (`bool`): see `preprocess_image_uint8`.
        max_samples (`int`, *optional*): keep only the first ``max_samples`` images.
        show_progress (`bool`): show a tqdm bar while decoding.

    Returns:
        ``(images, labels)``: ``images`` of shape ``(N, num_channels, resolution, resolution)``, float32 in [-1, 1];
        ``labels`` int64 of shape ``(N,)`` or None.

    Raises:
        DatasetError: for ``resolution <= 0``, ``num_channels`` not in {1, 3}, or when no image could be read.
    """
    source = dataset if isinstance(dataset, ImageSource) else ImageSource.from_dataset(dataset)
    if max_samples is not None and max_samples < len(source):
        source = source.select(range(max_samples))
    images, labels = decode_images(ImageDecoder(source, resolution, num_channels, center_crop), show_progress)
    return uint8_to_float(images), labels


__all__ = [
    "ImageDecoder",
    "decode_images",
    "images_to_tensor",
    "readable_images",
]
