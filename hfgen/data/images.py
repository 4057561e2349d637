"""Image data sources and preprocessing for every image model in hfgen.

`load_image_dataset` returns a `datasets.Dataset` with an ``image`` column (PIL images) and, when known, a
``label`` column, from one of:

- ``"digits"`` (the default): scikit-learn's bundled 1,797 real 8x8 handwritten digit scans, split once into a
  fixed stratified train/test split (20 % test, seed 0). The test split is never used for training.
- an image folder (read with the `datasets` ``imagefolder`` builder; sub-folder names become labels),
- a ``.npy`` array of shape ``(N, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3, 4}
  (uint8 in [0, 255], or floats in [0, 1] or [-1, 1]),
- a folder written by `datasets.Dataset.save_to_disk` / `DatasetDict.save_to_disk`,
- a Hugging Face Hub dataset name (needs the network; never used in tests).

`images_to_tensor` turns such a dataset into one float tensor of shape ``(N, C, resolution, resolution)`` with
values in [-1, 1], decoded once and kept in memory (small datasets: no PIL decoding at every step).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from PIL import Image

from hfgen.errors import DatasetError

logger = logging.getLogger(__name__)

DIGITS = "digits"
DIGITS_TEST_SIZE = 0.2
DIGITS_SPLIT_SEED = 0
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def load_digits_dataset(split: str = "train"):
    """The embedded default data set: scikit-learn's 1,797 real 8x8 handwritten digit scans.

    Pixel values (0-16 in scikit-learn) are scaled to uint8 [0, 255] greyscale PIL images. The split is a fixed
    stratified 80/20 train/test split with seed 0 (1,437 train / 360 test images), so the test split is the same
    on every machine and is never seen in training.

    Args:
        split (`str`): ``"train"``, ``"test"`` or ``"all"``.

    Returns:
        `datasets.Dataset` with columns ``image`` (8x8 ``"L"`` PIL images) and ``label`` (`ClassLabel` 0-9).

    Raises:
        DatasetError: for an unknown split name.
    """
    import datasets
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    index = np.arange(len(labels))
    if split == "all":
        chosen = index
    elif split in ("train", "test"):
        train_idx, test_idx = train_test_split(
            index, test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=DIGITS_SPLIT_SEED
        )
        chosen = np.sort(train_idx if split == "train" else test_idx)
    else:
        raise DatasetError(f"unknown split {split!r} for the digits data set; use 'train', 'test' or 'all'")
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(images[i], mode="L") for i in chosen], "label": labels[chosen].tolist()},
        features=features,
    )


def _array_to_uint8(array: np.ndarray, path: str) -> np.ndarray:
    if array.ndim not in (3, 4):
        raise DatasetError(
            f"{path}: expected an array of shape (N, H, W) or (N, H, W, C), got shape {tuple(array.shape)}"
        )
    if array.ndim == 4 and array.shape[-1] not in (1, 3, 4):
        raise DatasetError(
            f"{path}: the last axis must hold 1, 3 or 4 channels (N, H, W, C), got shape {tuple(array.shape)}; "
            "transpose a (N, C, H, W) array with array.transpose(0, 2, 3, 1) first"
        )
    if array.shape[0] == 0:
        raise DatasetError(f"{path}: the array holds no images (shape {tuple(array.shape)})")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise DatasetError(f"{path}: the array contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        array = array * 255.0
    elif low >= -1.0 and high <= 1.0:
        array = (array + 1.0) * 127.5
    elif low < 0.0 or high > 255.0:
        raise DatasetError(f"{path}: values must lie in [0, 255], [0, 1] or [-1, 1]; found [{low:g}, {high:g}]")
    return np.round(array).clip(0, 255).astype(np.uint8)


def load_npy_dataset(path: str):
    """Load a ``.npy`` image array of shape ``(N, H, W)`` or ``(N, H, W, C)`` as a `datasets.Dataset`.

    Values may be uint8 [0, 255] or floats in [0, 1] or [-1, 1]. A ``labels.npy`` or ``<stem>_labels.npy`` file of
    shape ``(N,)`` next to it is read as integer labels when present.

    Raises:
        DatasetError: for a missing file, a pickled/unreadable file, a wrong shape or an empty array.
    """
    import datasets

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read as a .npy array ({err})") from None
    array = _array_to_uint8(array, path)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    mode = {3: "L", 4: None}[array.ndim]
    if array.ndim == 4:
        mode = "RGB" if array.shape[-1] == 3 else "RGBA"
    columns = {"image": [Image.fromarray(a, mode=mode) for a in array]}
    features = {"image": datasets.Image()}
    stem = os.path.splitext(path)[0]
    for label_path in (stem + "_labels.npy", os.path.join(os.path.dirname(path), "labels.npy")):
        if os.path.isfile(label_path):
            labels = np.load(label_path, allow_pickle=False)
            if labels.ndim == 1 and len(labels) == len(array) and np.issubdtype(labels.dtype, np.integer):
                columns["label"] = labels.astype(np.int64).tolist()
                features["label"] = datasets.Value("int64")
            else:
                logger.warning("ignoring %s: expected %d integer labels of shape (N,)", label_path, len(array))
            break
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _pick_split(dataset, split: str, source: str):
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
            raise DatasetError(f"{source} has no split {split!r}; available splits: {', '.join(dataset)}")
        dataset = dataset[split]
    return dataset


def load_image_folder(path: str, split: str = "train"):
    """Load an image folder with the `datasets` ``imagefolder`` builder (class sub-folders become ``label``).

    Images are left undecoded-on-access (`datasets` decodes lazily); `images_to_tensor` decodes each file once and
    skips unreadable files with a warning naming them.

    Raises:
        DatasetError: when the folder holds no image files.
    """
    import datasets

    found = []
    for root, _, files in os.walk(path):
        found.extend(os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise DatasetError(
            f"{path}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "point --train_data_dir at a folder of images, a .npy file or a save_to_disk folder"
        )
    try:
        dataset = datasets.load_dataset("imagefolder", data_dir=path)
    except Exception as err:  # datasets raises many types for unreadable folders
        raise DatasetError(f"{path}: cannot read as an image folder ({type(err).__name__}: {err})") from None
    if isinstance(dataset, datasets.DatasetDict) and split not in dataset and len(dataset) == 1:
        return next(iter(dataset.values()))
    return _pick_split(dataset, split, path)


def load_image_dataset(
    dataset_name: str | None = DIGITS,
    train_data_dir: str | None = None,
    split: str = "train",
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
    image_column: str = "image",
):
    """Load an image data set as a `datasets.Dataset` with an ``image`` column (and ``label`` when known).

    Args:
        dataset_name (`str`, *optional*, defaults to ``"digits"``):
            ``"digits"`` for the embedded scikit-learn scans, a local path (same as ``train_data_dir``), or a
            Hugging Face Hub data set name (needs the network).
        train_data_dir (`str`, *optional*):
            A local image folder, a ``.npy`` file or a folder written by ``save_to_disk``. Takes precedence over
            ``dataset_name``.
        split (`str`, defaults to ``"train"``): which split to return (``"test"`` is the held-out digits split).
        dataset_config_name (`str`, *optional*): the Hub data set configuration.
        cache_dir (`str`, *optional*): where `datasets` caches downloads.
        image_column (`str`, defaults to ``"image"``): the column holding images; renamed to ``image``.

    Returns:
        `datasets.Dataset` with an ``image`` column of PIL images and, when the source has labels, ``label``.

    Raises:
        DatasetError: a missing path, an empty folder or array, a wrong array shape, an unknown split or column,
            or a Hub data set that cannot be reached.
    """
    import datasets

    source = train_data_dir if train_data_dir is not None else (dataset_name or DIGITS)
    is_local = train_data_dir is not None or os.path.exists(source) or source.startswith((".", "/", "~"))
    if source == DIGITS and train_data_dir is None:
        dataset = load_digits_dataset(split)
    elif is_local:
        path = os.path.expanduser(source)
        if not os.path.exists(path):
            raise DatasetError(f"data path {source} does not exist; pass an existing image folder, .npy or dataset")
        if os.path.isfile(path):
            if not path.endswith(".npy"):
                raise DatasetError(f"{source}: a data file must be a .npy array; for images, pass their folder")
            dataset = load_npy_dataset(path)
        elif os.path.isfile(os.path.join(path, "dataset_info.json")) or os.path.isfile(
            os.path.join(path, "dataset_dict.json")
        ):
            try:
                dataset = _pick_split(datasets.load_from_disk(path), split, source)
            except DatasetError:
                raise
            except Exception as err:
                raise DatasetError(f"{source}: cannot read the save_to_disk folder ({err})") from None
        else:
            dataset = load_image_folder(path, split)
    else:
        try:
            dataset = datasets.load_dataset(source, dataset_config_name, split=split, cache_dir=cache_dir)
        except Exception as err:
            raise DatasetError(
                f"cannot load the Hub data set {source!r} ({type(err).__name__}: {err}); offline, use 'digits', "
                "a local image folder, a .npy file or a save_to_disk folder"
            ) from None
    if image_column != "image":
        if image_column not in dataset.column_names:
            raise DatasetError(f"{source}: no column {image_column!r}; columns are {dataset.column_names}")
        dataset = dataset.rename_column(image_column, "image")
    if "image" not in dataset.column_names:
        raise DatasetError(
            f"{source}: no 'image' column (columns: {dataset.column_names}); pass --image_column with the right name"
        )
    if len(dataset) == 0:
        raise DatasetError(f"{source}: the data set ({split} split) is empty")
    return dataset


def infer_num_channels(dataset) -> int:
    """1 for greyscale (``L``/``1``/``I``/``F``) images, 3 otherwise, judged from the first image."""
    first = _open_image(dataset[0]["image"])
    return 1 if first.mode in ("L", "1", "I", "I;16", "F", "LA") else 3


def _open_image(value) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            import io

            image = Image.open(io.BytesIO(value["bytes"]))
        else:
            image = Image.open(value["path"])
        image.load()
        return image
    if isinstance(value, np.ndarray):
        return Image.fromarray(_array_to_uint8(value[None], "array")[0])
    raise DatasetError(f"unsupported image value of type {type(value).__name__}")


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


def preprocess_image(image: Image.Image, resolution: int, num_channels: int, center_crop: bool = True) -> np.ndarray:
    """Resize (shorter side to ``resolution``, bilinear), crop to a square and scale to [-1, 1].

    Args:
        image (`PIL.Image.Image`): any mode.
        resolution (`int`): output height and width in pixels (> 0).
        num_channels (`int`): 1 (greyscale) or 3 (RGB).
        center_crop (`bool`): centre crop after resizing; if False the image is resized straight to a square.

    Returns:
        `np.ndarray` of shape ``(num_channels, resolution, resolution)``, float32 in [-1, 1].
    """
    image = _to_8bit(image).convert("L" if num_channels == 1 else "RGB")
    if center_crop:
        width, height = image.size
        scale = resolution / min(width, height)
        new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
        image = image.resize(new_size, Image.BILINEAR)
        left = (new_size[0] - resolution) // 2
        top = (new_size[1] - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
    else:
        image = image.resize((resolution, resolution), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return array


def images_to_tensor(
    dataset,
    resolution: int,
    num_channels: int | None = None,
    center_crop: bool = True,
    max_samples: int | None = None,
    show_progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode and preprocess every image of ``dataset`` once into an in-memory tensor.

    Unreadable (corrupt) images are skipped with a warning naming the file.

    Args:
        dataset (`datasets.Dataset`): with an ``image`` column (and optionally ``label``).
        resolution (`int`): output size in pixels, > 0.
        num_channels (`int`, *optional*): 1 or 3; inferred from the first image when None.
        center_crop (`bool`): see `preprocess_image`.
        max_samples (`int`, *optional*): keep only the first ``max_samples`` images.
        show_progress (`bool`): show a tqdm bar while decoding.

    Returns:
        ``(images, labels)``: ``images`` of shape ``(N, num_channels, resolution, resolution)``, float32 in [-1, 1];
        ``labels`` int64 of shape ``(N,)`` or None.

    Raises:
        DatasetError: for ``resolution <= 0``, ``num_channels`` not in {1, 3}, or when no image could be read.
    """
    import datasets
    from tqdm.auto import tqdm

    if not isinstance(resolution, int) or resolution <= 0:
        raise DatasetError(f"resolution must be a positive integer number of pixels, got {resolution!r}")
    if num_channels is not None and num_channels not in (1, 3):
        raise DatasetError(f"num_channels must be 1 (greyscale) or 3 (RGB), got {num_channels}")
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    if isinstance(dataset.features.get("image"), datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    has_labels = "label" in dataset.column_names
    arrays, labels, skipped = [], [], []
    channels = num_channels
    for row in tqdm(dataset, desc="Decoding images", disable=not show_progress):
        value = row["image"]
        try:
            image = _open_image(value)
        except Exception as err:
            name = value.get("path") if isinstance(value, dict) else None
            skipped.append(name or f"row {len(arrays) + len(skipped)}")
            logger.warning("skipping unreadable image %s (%s)", skipped[-1], err)
            continue
        if channels is None:
            channels = 1 if image.mode in ("L", "1", "I", "I;16", "F", "LA") else 3
        arrays.append(preprocess_image(image, resolution, channels, center_crop))
        if has_labels:
            labels.append(int(row["label"]))
    if not arrays:
        raise DatasetError(f"none of the {len(skipped)} images could be read (first: {skipped[:1]})")
    if skipped:
        logger.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(map(str, skipped[:5])))
    images = torch.from_numpy(np.stack(arrays))
    return images, (torch.tensor(labels, dtype=torch.long) if has_labels else None)


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of ``images`` (``(B, C, H, W)``) left-right with probability 1/2, drawn from ``generator``."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``(B, C, H, W)`` float images in [-1, 1] to a list of PIL images (``L`` for C = 1, ``RGB`` for C = 3)."""
    array = ((images.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return [Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)) for a in array]


__all__ = [
    "DIGITS",
    "images_to_tensor",
    "infer_num_channels",
    "load_digits_dataset",
    "load_image_dataset",
    "load_image_folder",
    "load_npy_dataset",
    "preprocess_image",
    "random_hflip",
    "tensor_to_pil",
]
