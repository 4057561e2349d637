"""`ImageSource`: random access to the images of one data source, decoded only when asked, and `open_image_source`,
which opens a source (see `hfgen.data.images.formats`), attaches its labels (its own, or an attribute file's) and
cuts the fixed train/held-out parts (`hfgen.data.splits`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hfgen.data.images.formats import (
    DIGITS,
    GREY_MODES,
    _array_image,
    _load_dataset,
    _open_image,
    _source_path,
    load_digits_dataset,
    npy_label_path,
    read_npy_images,
)
from hfgen.errors import DatasetError

SPLITS = ("train", "test", "all")


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


def resolve_held_out_size(dataset_name: str | None, train_data_dir: str | None, held_out_size: int | None) -> int:
    """Images held out of training: ``held_out_size`` when given, else the recognised data set's (`hfgen.data.splits`:
    MNIST 2,000, CIFAR-10 1,000, CelebA 1,000), else 0. The digits keep their own fixed 360-image test split."""
    from hfgen.data.splits import recognise_dataset

    if held_out_size is not None:
        return held_out_size
    source, is_local = _source_path(dataset_name, train_data_dir)
    known = recognise_dataset(source) if is_local else None
    return known.held_out_size if known else 0


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


__all__ = [
    "SPLITS",
    "ImageSource",
    "NoHeldOutPartError",
    "open_held_out_source",
    "open_image_source",
    "resolve_held_out_size",
]
