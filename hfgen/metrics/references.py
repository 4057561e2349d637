"""The real images metrics are measured against (split from `hfgen.metrics.image_quality`): the reference set and
the real-data floor's second set (`ReferenceSets`, `load_reference_sets`), the data a folder was trained on
(`training_data_spec`) and the feature extractor that matches it (`resolve_features`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfgen.errors import NotEnoughSamplesError


@dataclass
class ReferenceSets:
    """Real images for a metric and its floor, both ``(N, C, H, W)`` floats in [0, 1].

    Attributes:
        reference: what generated images are compared with (digits: the held-out test split).
        floor: real images standing in for generated ones in the real-data floor (digits: train split).
        name (`str`): a label for reports.
        reference_labels (`torch.Tensor`, *optional*): int64 ``(N,)`` labels of ``reference`` where the data has
            them (per-class FID of class-conditional models).
    """

    reference: torch.Tensor
    floor: torch.Tensor
    name: str
    reference_labels: torch.Tensor | None = None


DATA_KEYS = ("dataset_name", "train_data_dir", "held_out_size", "attribute_file", "attribute", "center_crop")
FLOOR_POOL_SIZE = 2000  # the floor draws from a fixed random subset of at most this many train-part images


def training_data_spec(output_dir: str) -> dict | None:
    """The data arguments a trained folder was trained on (from its ``training_args.json``), or None.

    Returns:
        dict with the `DATA_KEYS` (``dataset_name``, ``train_data_dir``, ``held_out_size``, ``attribute_file``,
        ``attribute``, ``center_crop``), or None for a folder without ``training_args.json`` (e.g. a Hub repo id).
    """
    from hfgen.output_folder.layout import read_training_args

    args = read_training_args(output_dir)
    if args is None:
        return None
    return {key: args.get(key) for key in DATA_KEYS}


def resolve_features(features: str, data_spec: dict | None, num_channels: int, resolution: int) -> str:
    """The feature extractor for ``features="auto"`` (any other value is returned as it is).

    The rule (documented in the README): the digits -> ``digits``; a recognised data set (`hfgen.data.splits`: a path
    containing ``mnist``, ``cifar`` or ``celeba``) -> its own extractor; otherwise by the generated images' shape:
    1 channel -> ``mnist``, 3 channels up to 32 pixels -> ``cifar10``, larger RGB -> ``celeba``.
    """
    from hfgen.data.splits import recognise_dataset

    if features != "auto":
        return features
    if data_spec is not None:
        if not data_spec.get("train_data_dir") and data_spec.get("dataset_name") in (None, "digits"):
            return "digits"
        known = recognise_dataset(data_spec.get("train_data_dir") or data_spec.get("dataset_name"))
        if known is not None:
            return known.features
    if num_channels == 1:
        return "mnist"
    return "cifar10" if resolution <= 32 else "celeba"


def load_reference_sets(
    reference, resolution: int, num_channels: int, seed: int = 0, center_crop: bool = True
) -> ReferenceSets:
    """Real images preprocessed exactly as training images are, at the generated images' size and channels.

    Args:
        reference: ``"digits"``: reference = the held-out test split (360 images), floor = the train split (1,437).
            A dict of training data arguments (`training_data_spec`): reference = the held-out part of that data
            (MNIST 2,000, CIFAR-10 1,000, CelebA 1,000, or ``--held_out_size``), floor = a fixed random subset of at
            most 2,000 train-part images; data without a held-out part is cut into two random halves. A path (image
            folder, ``.npy`` or ``save_to_disk`` folder): its images shuffled with ``seed`` and cut in two halves.
        resolution (`int`), num_channels (`int`): the generated images' size.
        seed (`int`): the halves' and the floor subset's shuffle.
        center_crop (`bool`): as in training (for a path reference).

    Raises:
        DatasetError: for an unreadable reference. NotEnoughSamplesError: for a reference of fewer than 4 images.
    """
    from hfgen.data.images.decoding import images_to_tensor
    from hfgen.data.images.formats import load_image_dataset
    from hfgen.data.images.source import open_held_out_source, open_image_source

    def tensor(source, crop=center_crop):
        images, _ = labelled(source, crop)
        return images

    def labelled(source, crop=center_crop):
        images, labels = images_to_tensor(source, resolution=resolution, num_channels=num_channels, center_crop=crop)
        return (images + 1) / 2, labels

    if reference == "digits":
        images, labels = labelled(load_image_dataset("digits", split="test"))
        return ReferenceSets(
            reference=images,
            floor=tensor(load_image_dataset("digits", split="train")),
            name="digits (held-out test split; floor: train split)",
            reference_labels=labels,
        )
    if isinstance(reference, dict):
        spec = {k: reference.get(k) for k in DATA_KEYS}
        crop = spec.pop("center_crop")
        crop = center_crop if crop is None else crop
        if not spec.get("train_data_dir") and spec.get("dataset_name") in (None, "digits"):
            return load_reference_sets("digits", resolution, num_channels, seed)
        label = spec.get("train_data_dir") or spec.get("dataset_name")
        held_out = open_held_out_source(**spec)
        if held_out is not None:
            train = open_image_source(split="train", **spec)
            pool = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:FLOOR_POOL_SIZE]
            images, labels = labelled(held_out, crop)
            return ReferenceSets(
                reference=images,
                floor=tensor(train.select(pool.sort().values.numpy()), crop),
                name=f"{label} (held-out part, {len(held_out)} images; floor: train part)",
                reference_labels=labels,
            )
        images, labels = labelled(open_image_source(split="all", **spec), crop)
        name = f"{label} (two random halves: the data has no held-out part)"
    else:
        images, labels = labelled(load_image_dataset(train_data_dir=reference))
        name = f"{reference} (two random halves)"
    if len(images) < 4:
        raise NotEnoughSamplesError(f"the reference {name} holds {len(images)} images; at least 4 are needed")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    half = len(images) // 2
    return ReferenceSets(
        images[order[:half]],
        images[order[half:]],
        name=name,
        reference_labels=labels[order[:half]] if labels is not None else None,
    )
