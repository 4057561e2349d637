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
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from hfgen.errors import DatasetError

logger = logging.getLogger(__name__)

DIGITS = "digits"
DIGITS_RESOLUTION = 16  # the default training size of the 8x8 digits (upsampled)
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


SPLITS = ("train", "test", "all")


class NoHeldOutPartError(DatasetError):
    """``split="test"`` was asked of data that holds no images out of training (see `open_held_out_source`)."""


def open_held_out_source(**kwargs) -> ImageSource | None:
    """`open_image_source` with ``split="test"`` (the held-out part), or None when the data has no held-out part.

    Raises:
        DatasetError: as `open_image_source`, except for a missing held-out part.
    """
    try:
        return open_image_source(split="test", **kwargs)
    except NoHeldOutPartError:
        return None


def _source_path(dataset_name: str | None, train_data_dir: str | None) -> tuple[str, bool]:
    """``(source, is_local)`` for the data arguments: a local path or a Hub name (digits: ``("digits", False)``)."""
    source = train_data_dir if train_data_dir is not None else (dataset_name or DIGITS)
    is_local = train_data_dir is not None or os.path.exists(source) or source.startswith((".", "/", "~"))
    return source, is_local and not (source == DIGITS and train_data_dir is None)


def resolve_held_out_size(dataset_name: str | None, train_data_dir: str | None, held_out_size: int | None) -> int:
    """Images held out of training: ``held_out_size`` when given, else the recognised data set's (`hfgen.data.splits`:
    MNIST 2,000, CIFAR-10 1,000, CelebA 1,000), else 0. The digits keep their own fixed 360-image test split."""
    from hfgen.data.splits import recognise_dataset

    if held_out_size is not None:
        return held_out_size
    source, is_local = _source_path(dataset_name, train_data_dir)
    known = recognise_dataset(source) if is_local else None
    return known.held_out_size if known else 0


@dataclass
class ImageSource:
    """Random access to the images of one data source, decoded only when asked (the one reader behind training,
    evaluation references and figures).

    Exactly one of ``array`` (a ``.npy`` source, possibly memory-mapped) and ``dataset`` (a `datasets.Dataset` whose
    ``image`` column is not decoded) is set.

    Attributes:
        name (`str`): the source, for messages.
        array (`np.ndarray`, *optional*): uint8 ``(N, H, W)`` or ``(N, H, W, C)``.
        dataset (`datasets.Dataset`, *optional*): rows with ``image`` as ``{"path", "bytes"}`` or PIL images.
        labels (`np.ndarray`, *optional*): int64 ``(N,)``: class labels, or 0/1 attribute labels.
        label_source (`str`, *optional*): where the labels came from (e.g. ``mnist_test_labels.npy`` or
            ``list_attr_celeba.txt:Smiling``), recorded in ``training_args.json`` and the model card.
        label_names (`list[str]`, *optional*): the name of each class index where the source has names (a
            ``ClassLabel`` column, image-folder class folders, ``not Smiling`` / ``Smiling`` for an attribute).
    """

    name: str
    array: np.ndarray | None = None
    dataset: object | None = None
    labels: np.ndarray | None = None
    label_source: str | None = None
    rows: np.ndarray | None = None
    label_names: list[str] | None = None

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return len(self.array) if self.array is not None else len(self.dataset)

    def array_rows(self, indices) -> np.ndarray:
        """The rows of ``array`` holding images ``indices`` (a `select`ed array source keeps the memory map)."""
        indices = np.asarray(indices, dtype=np.int64)
        return indices if self.rows is None else self.rows[indices]

    def image(self, index: int) -> Image.Image:
        """The image at ``index`` as a PIL image (raises whatever PIL raises for an unreadable file)."""
        if self.array is not None:
            return _array_image(self.array[int(self.array_rows([index])[0])])
        return _open_image(self.dataset[int(index)]["image"])

    def describe(self, index: int) -> str:
        """The file name of image ``index`` when known, else ``row N``."""
        if self.dataset is not None:
            value = self.dataset[int(index)]["image"]
            if isinstance(value, dict) and value.get("path"):
                return value["path"]
        return f"row {index}"

    def select(self, indices) -> ImageSource:
        """The images at ``indices`` (a sequence of ints), as a new source."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSource(
            name=self.name,
            array=self.array,  # a memory-mapped array stays on disk: only the row numbers are kept
            dataset=self.dataset.select(indices.tolist()) if self.dataset is not None else None,
            labels=self.labels[indices] if self.labels is not None else None,
            label_source=self.label_source,
            rows=self.array_rows(indices) if self.array is not None else None,
            label_names=self.label_names,
        )

    def native_size(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the first image (channels: 1 for greyscale, 3 otherwise)."""
        if self.array is not None:
            height, width = self.array.shape[1:3]
            return (1 if self.array.ndim == 3 or self.array.shape[-1] == 1 else 3), height, width
        for index in range(len(self)):  # the first readable image (corrupt files are skipped later, with a warning)
            try:
                first = self.image(index)
            except Exception:
                continue
            return (1 if first.mode in GREY_MODES else 3), first.size[1], first.size[0]
        raise DatasetError(f"{self.name}: none of the {len(self)} images could be read")

    @classmethod
    def from_dataset(cls, dataset, name: str = "dataset") -> ImageSource:
        """Wrap a `datasets.Dataset` with an ``image`` column (and ``label`` when present); images stay undecoded."""
        import datasets

        if isinstance(dataset.features.get("image"), datasets.Image):
            dataset = dataset.cast_column("image", datasets.Image(decode=False))
        labels = names = None
        if "label" in dataset.column_names:
            labels = np.asarray(dataset["label"], dtype=np.int64)
            feature = dataset.features.get("label")
            names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
        return cls(
            name=name,
            dataset=dataset,
            labels=labels,
            label_source="label column" if labels is not None else None,
            label_names=names,
        )


GREY_MODES = ("L", "1", "I", "I;16", "F", "LA")


def open_image_source(
    dataset_name: str | None = DIGITS,
    train_data_dir: str | None = None,
    split: str = "train",
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
    image_column: str = "image",
    held_out_size: int | None = None,
    attribute_file: str | None = None,
    attribute: str | None = None,
) -> ImageSource:
    """Open a data source for random access without decoding it (see `load_image_dataset` for the arguments).

    ``.npy`` arrays are memory-mapped; image folders are listed, not read. ``split`` is ``"train"``, ``"test"`` (the
    held-out part) or ``"all"``; for a local source with a single split the parts come from
    `hfgen.data.splits.held_out_split` with `resolve_held_out_size` images held out (0: ``"train"`` is everything).

    Raises:
        DatasetError: see `load_image_dataset`.
    """
    from hfgen.data.splits import held_out_split

    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    source, is_local = _source_path(dataset_name, train_data_dir)
    if source == DIGITS and train_data_dir is None:
        if attribute_file is not None:
            raise DatasetError("--attribute_file labels images by file name; the digits have labels of their own")
        return ImageSource.from_dataset(load_digits_dataset(split), name=DIGITS)
    if is_local and os.path.isfile(os.path.expanduser(source)) and source.endswith(".npy"):
        array, labels = read_npy_images(os.path.expanduser(source))
        image_source = ImageSource(name=source, array=array, labels=labels)
        if labels is not None:
            image_source.label_source = os.path.basename(npy_label_path(os.path.expanduser(source)))
        if attribute_file is not None:
            raise DatasetError(
                f"--attribute_file labels images by file name, and {source} is an array without file names; "
                "use an image folder, or put the labels in a <name>_labels.npy file"
            )
    else:
        dataset, has_splits = _load_dataset(
            dataset_name, train_data_dir, split, dataset_config_name, cache_dir, image_column
        )
        image_source = ImageSource.from_dataset(dataset, name=source)
        if has_splits:  # the source's own train/test splits: no held-out cut
            held_out_size = 0
            split = "all"
    if attribute_file is not None:
        from hfgen.data.attributes import attribute_labels, read_attribute_file

        if attribute is None:
            raise DatasetError("--attribute_file needs --attribute NAME (e.g. --attribute Smiling)")
        table = read_attribute_file(attribute_file)
        names = [image_source.describe(i) for i in range(len(image_source))]
        image_source.labels = attribute_labels(table, attribute, names, source)
        image_source.label_source = f"{os.path.basename(attribute_file)}:{attribute}"
        image_source.label_names = [f"not {attribute}", attribute]
        class_labels = None  # the split never depends on --attribute
    else:
        if attribute is not None:
            raise DatasetError("--attribute NAME needs --attribute_file (a CelebA-format list_attr_*.txt)")
        class_labels = image_source.labels
    if split == "all":
        return image_source
    held_out = resolve_held_out_size(dataset_name, train_data_dir, held_out_size)
    if held_out == 0:
        if split == "test":
            raise NoHeldOutPartError(
                f"{source} has no held-out part; pass --held_out_size N to hold N images out of training"
            )
        return image_source
    try:
        train, test = held_out_split(len(image_source), held_out, labels=class_labels)
    except ValueError as err:
        raise DatasetError(f"{source}: {err}") from None
    return image_source.select(train if split == "train" else test)


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
