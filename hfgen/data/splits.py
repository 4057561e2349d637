"""Fixed train / held-out splits of real data sets, and the data sets hfgen recognises by name.

A generative model is scored against images it never saw (the *held-out* part), and the real-data floor compares
train-part images with that same held-out part. The split is a pure function of the data set's size, its class
labels (stratified when the source has class labels: `.npy` labels or class sub-folders; never attribute labels,
so that ``--attribute`` cannot change the split) and the seed, so it is the same on every machine and in every
command (`hfgen train`, `hfgen evaluate`, `hfgen explore`, the feature-extractor scripts).

Recognised data sets (by the file or folder name passed as ``--train_data_dir``):

| name | recognised when the path contains | held-out images | features |
|---|---|---:|---|
| ``mnist`` | ``mnist`` | 2,000 (stratified) | ``mnist`` |
| ``cifar10`` | ``cifar`` | 1,000 (stratified) | ``cifar10`` |
| ``celeba`` | ``celeba`` | 1,000 (random) | ``celeba`` |

Every other local source has no held-out part unless ``--held_out_size N`` asks for one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0


@dataclass(frozen=True)
class KnownDataset:
    """A real data set with a fixed split and a matching feature extractor.

    Attributes:
        name (`str`): ``"mnist"``, ``"cifar10"`` or ``"celeba"``.
        pattern (`str`): lower-case substring of the path that identifies it.
        held_out_size (`int`): images in the held-out part (the rest is the train part).
        features (`str`): the feature extractor of `hfgen.metrics.features` trained on its train part.
    """

    name: str
    pattern: str
    held_out_size: int
    features: str


KNOWN_DATASETS = (
    KnownDataset("mnist", "mnist", 2000, "mnist"),
    KnownDataset("cifar10", "cifar", 1000, "cifar10"),
    KnownDataset("celeba", "celeba", 1000, "celeba"),
)


def recognise_dataset(path: str | None) -> KnownDataset | None:
    """The `KnownDataset` whose pattern occurs in ``path`` (case-insensitive), else None (digits: None)."""
    if not path:
        return None
    lowered = os.path.normpath(os.path.abspath(os.path.expanduser(path))).lower()
    tail = os.sep.join(lowered.split(os.sep)[-3:])  # the last components only: not a parent folder named "mnist"
    for known in KNOWN_DATASETS:
        if known.pattern in tail:
            return known
    return None


def held_out_split(
    num_images: int, held_out_size: int, labels=None, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and held-out parts, each sorted ascending.

    Args:
        num_images (`int`): size of the whole data set.
        held_out_size (`int`): images in the held-out part, 0 <= held_out_size < num_images.
        labels (array-like of shape `(num_images,)`, *optional*): class labels; the split is stratified by them
            (scikit-learn's ``train_test_split``) when every class has at least two images.
        seed (`int`): the split's random state (0 everywhere in hfgen).

    Returns:
        ``(train_indices, held_out_indices)``: int64 arrays of sizes ``num_images - held_out_size`` and
        ``held_out_size``.

    Raises:
        ValueError: when ``held_out_size`` is negative or leaves no training image.
    """
    if held_out_size < 0 or held_out_size >= num_images:
        raise ValueError(
            f"a held-out part of {held_out_size} images does not fit a data set of {num_images} images; "
            f"pass --held_out_size between 0 and {num_images - 1}"
        )
    index = np.arange(num_images, dtype=np.int64)
    if held_out_size == 0:
        return index, index[:0]
    stratify = None
    if labels is not None:
        labels = np.asarray(labels)
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and len(counts) <= held_out_size and len(counts) <= num_images - held_out_size:
            stratify = labels
    from sklearn.model_selection import train_test_split

    train, held_out = train_test_split(index, test_size=held_out_size, stratify=stratify, random_state=seed)
    return np.sort(train), np.sort(held_out)


__all__ = ["KNOWN_DATASETS", "KnownDataset", "SPLIT_SEED", "held_out_split", "recognise_dataset"]
