"""Reading each kind of image data source into a `datasets.Dataset` with an ``image`` column (and ``label`` when
known); `load_image_dataset` picks the reader from the source:

- ``"digits"``: scikit-learn's 1,797 real 8x8 digit scans, with a fixed stratified train/test split
  (`load_digits_dataset`),
- a ``.npy`` array (``(N, H, W)`` or ``(N, H, W, C)``) and its ``*_labels.npy`` file (`read_npy_images`,
  `load_npy_dataset`),
- an image folder, class sub-folders becoming labels (`load_image_folder`),
- a folder written by ``save_to_disk``, or a Hub data set name.

`_open_image` and `_array_image` turn one stored value (a PIL image, ``{"path", "bytes"}``, an array) into a PIL
image; `infer_num_channels` and `GREY_MODES` tell greyscale from colour.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from hfgen.errors import DatasetError

DIGITS = "digits"
DIGITS_RESOLUTION = 16  # the default training size of the 8x8 digits (upsampled)
DIGITS_TEST_SIZE = 0.2
DIGITS_SPLIT_SEED = 0
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GREY_MODES = ("L", "1", "I", "I;16", "F", "LA")


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


def npy_label_path(path: str) -> str | None:
    """The labels file that belongs to the ``.npy`` image array at ``path``, or None.

    Looked for, in order: ``<name>_labels.npy`` for ``<name>_images.npy`` (the layout of ``../shared/data``),
    ``<stem>_labels.npy`` and ``labels.npy`` in the same folder.
    """
    stem = os.path.splitext(path)[0]
    candidates = []
    if stem.endswith("_images"):
        candidates.append(stem[: -len("_images")] + "_labels.npy")
    candidates += [stem + "_labels.npy", os.path.join(os.path.dirname(path), "labels.npy")]
    return next((c for c in candidates if os.path.isfile(c)), None)


def read_npy_images(path: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a ``.npy`` image array and its labels (see `npy_label_path`) without building a `datasets.Dataset`.

    Args:
        path (`str`): an array of shape ``(N, H, W)`` or ``(N, H, W, C)``, C in {1, 3, 4}; uint8 [0, 255] or floats
            in [0, 1] or [-1, 1].
        mmap (`bool`): memory-map a uint8 array instead of reading it (images are then copied only when used).

    Returns:
        ``(images, labels)``: uint8 ``(N, H, W)`` or ``(N, H, W, C)``; int64 ``(N,)`` or None.

    Raises:
        DatasetError: for an unreadable file, a wrong shape, an empty array, or a labels file that is not N integers.
    """
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:  # EOFError: an empty (zero-byte) file
        empty = " (the file is empty)" if os.path.getsize(path) == 0 else ""
        raise DatasetError(
            f"{path}: cannot read as a .npy array{empty} ({err}); pass a file written by numpy.save"
        ) from None
    array = _array_to_uint8(array, path)
    labels = None
    label_path = npy_label_path(path)
    if label_path is not None:
        try:
            labels = np.load(label_path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise DatasetError(f"{label_path}: cannot read as a .npy array ({err})") from None
        if labels.ndim != 1 or len(labels) != len(array) or not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(
                f"{label_path}: expected {len(array)} integer labels of shape ({len(array)},) for the {len(array)} "
                f"images of {os.path.basename(path)}, got {labels.dtype} of shape {tuple(labels.shape)}; fix or "
                "remove the labels file"
            )
        labels = labels.astype(np.int64)
    return array, labels


def load_npy_dataset(path: str):
    """Load a ``.npy`` image array of shape ``(N, H, W)`` or ``(N, H, W, C)`` as a `datasets.Dataset`.

    Values may be uint8 [0, 255] or floats in [0, 1] or [-1, 1]. Labels are read from ``<name>_labels.npy`` next to
    ``<name>_images.npy`` (or ``<stem>_labels.npy`` / ``labels.npy``) when present (see `read_npy_images`).

    Raises:
        DatasetError: for a missing file, a pickled/unreadable file, a wrong shape, an empty array or labels of the
            wrong length.
    """
    import datasets

    array, labels = read_npy_images(path, mmap=False)
    columns = {"image": [_array_image(a) for a in array]}
    features = {"image": datasets.Image()}
    if labels is not None:
        columns["label"] = labels.tolist()
        features["label"] = datasets.Value("int64")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _array_image(array: np.ndarray) -> Image.Image:
    """One uint8 ``(H, W)`` or ``(H, W, C)`` array as a PIL image (``L``, ``RGB`` or ``RGBA``)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return Image.fromarray(array, mode="L")
    return Image.fromarray(array, mode="RGB" if array.shape[-1] == 3 else "RGBA")


def _pick_split(dataset, split: str, source: str):
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
            raise DatasetError(f"{source} has no split {split!r}; available splits: {', '.join(dataset)}")
        dataset = dataset[split]
    return dataset


_FOLDER_CACHE: dict = {}


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
    # the same folder listed again in this process (evaluation references, figures) reuses the listing, which takes
    # datasets ~10 s for 10,000 files; the key changes when a file is added, removed or rewritten
    key = (os.path.abspath(path), len(found), max(os.stat(f).st_mtime_ns for f in found))
    dataset = _FOLDER_CACHE.get(key)
    if dataset is None:
        try:
            dataset = datasets.load_dataset("imagefolder", data_dir=path)
        except Exception as err:  # datasets raises many types for unreadable folders
            raise DatasetError(f"{path}: cannot read as an image folder ({type(err).__name__}: {err})") from None
        _FOLDER_CACHE.clear()
        _FOLDER_CACHE[key] = dataset
    if isinstance(dataset, datasets.DatasetDict) and split not in dataset and len(dataset) == 1:
        return next(iter(dataset.values()))
    return _pick_split(dataset, split, path)


def _source_path(dataset_name: str | None, train_data_dir: str | None) -> tuple[str, bool]:
    """``(source, is_local)`` for the data arguments: a local path or a Hub name (digits: ``("digits", False)``)."""
    source = train_data_dir if train_data_dir is not None else (dataset_name or DIGITS)
    is_local = train_data_dir is not None or os.path.exists(source) or source.startswith((".", "/", "~"))
    return source, is_local and not (source == DIGITS and train_data_dir is None)


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
            A local image folder, a ``.npy`` file (labels from ``<name>_labels.npy`` next to ``<name>_images.npy``)
            or a folder written by ``save_to_disk``. Takes precedence over ``dataset_name``.
        split (`str`, defaults to ``"train"``): which split of a source that has splits (the digits: ``"test"`` is
            the held-out split; a ``DatasetDict``). A single-split local source is returned whole: use
            `open_image_source` for its fixed train/held-out parts.
        dataset_config_name (`str`, *optional*): the Hub data set configuration.
        cache_dir (`str`, *optional*): where `datasets` caches downloads.
        image_column (`str`, defaults to ``"image"``): the column holding images; renamed to ``image``.

    Returns:
        `datasets.Dataset` with an ``image`` column of PIL images and, when the source has labels, ``label``.

    Raises:
        DatasetError: a missing path, an empty folder or array, a wrong array shape, labels of the wrong length, an
            unknown split or column, or a Hub data set that cannot be reached.
    """
    return _load_dataset(dataset_name, train_data_dir, split, dataset_config_name, cache_dir, image_column)[0]


def _load_dataset(dataset_name, train_data_dir, split, dataset_config_name, cache_dir, image_column):
    """`load_image_dataset`, and whether the source has splits of its own (a `DatasetDict` or a Hub data set)."""
    import datasets

    source, is_local = _source_path(dataset_name, train_data_dir)
    has_splits = False
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
                loaded = datasets.load_from_disk(path)
                has_splits = isinstance(loaded, datasets.DatasetDict)
                dataset = _pick_split(loaded, split, source)
            except DatasetError:
                raise
            except Exception as err:
                raise DatasetError(f"{source}: cannot read the save_to_disk folder ({err})") from None
        else:
            dataset = load_image_folder(path, split)
    else:
        try:
            dataset = datasets.load_dataset(source, dataset_config_name, split=split, cache_dir=cache_dir)
            has_splits = True
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
    return dataset, has_splits


def infer_num_channels(dataset) -> int:
    """1 for greyscale (``L``/``1``/``I``/``F``) images, 3 otherwise, judged from the first image."""
    first = _open_image(dataset[0]["image"])
    return 1 if first.mode in GREY_MODES else 3


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


__all__ = [
    "DIGITS",
    "DIGITS_RESOLUTION",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_SIZE",
    "GREY_MODES",
    "IMAGE_EXTENSIONS",
    "infer_num_channels",
    "load_digits_dataset",
    "load_image_dataset",
    "load_image_folder",
    "load_npy_dataset",
    "npy_label_path",
    "read_npy_images",
]
