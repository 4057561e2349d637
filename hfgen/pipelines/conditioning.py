"""Class labels and classifier-free guidance, shared by every class-conditional pipeline.

A class-conditional hfgen model knows ``num_classes`` C (read from the training data) and the class names
``id2label`` (``{0: "0", 1: "1", ...}``, stored in ``model_index.json``). Diffusion-style networks
(`UNet2DModel` with ``num_class_embeds = C + 1``) reserve the last class index C for "no label", which label dropout
trains (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance") and guidance uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def normalize_id2label(id2label: dict | None, num_classes: int) -> dict[int, str]:
    """``id2label`` with int keys (JSON stores them as strings), or ``{i: str(i)}`` when None."""
    if not id2label:
        return {i: str(i) for i in range(num_classes)}
    return {int(k): str(v) for k, v in id2label.items()}


def labels_batch_size(class_labels, batch_size: int) -> int:
    """The number of images a pipeline call makes: ``batch_size``, or the number of labels when several are given
    one per image and ``batch_size`` was left at its default of 1 (``pipeline(class_labels=[0, 1])`` makes 2)."""
    several = isinstance(class_labels, (list, tuple, torch.Tensor)) and len(class_labels) > 1
    return len(class_labels) if several and batch_size == 1 else batch_size


def resolve_class_labels(
    class_labels: int | str | Sequence[int | str] | torch.Tensor | None,
    batch_size: int,
    num_classes: int,
    id2label: dict | None = None,
) -> torch.Tensor:
    """The class index of each of ``batch_size`` images: a long tensor `(batch_size,)` with values in [0, C).

    Args:
        class_labels: None (every class in turn: ``0, 1, ..., C-1, 0, 1, ...``, so that any ``k * C`` images hold
            ``k`` of each class), one label for all images, or one per image; a label is a class index or a class
            name from ``id2label`` (``"7"``, ``"Smiling"``).
        batch_size (`int`): images wanted.
        num_classes (`int`): C.
        id2label (`dict`, *optional*): class index -> name.

    Raises:
        ValueError: a label outside [0, C), an unknown class name, or a number of labels that is neither 1 nor
            ``batch_size`` (the message lists the classes).
    """
    names = normalize_id2label(id2label, num_classes)
    listing = ", ".join(f"{i} ({n})" if n != str(i) else str(i) for i, n in sorted(names.items()))
    if class_labels is None:
        return torch.arange(batch_size) % num_classes
    if isinstance(class_labels, torch.Tensor):
        class_labels = class_labels.flatten().tolist()
    if isinstance(class_labels, (int, str)):
        class_labels = [class_labels]
    by_name = {name: index for index, name in names.items()}
    indices = []
    for label in class_labels:
        if isinstance(label, str) and label in by_name:
            index = by_name[label]
        elif isinstance(label, str) and label.strip().lstrip("-").isdigit():
            index = int(label)
        elif isinstance(label, int) and not isinstance(label, bool):
            index = label
        else:
            raise ValueError(f"class label {label!r} is not one of the model's {num_classes} classes: {listing}")
        if not 0 <= index < num_classes:
            raise ValueError(f"class label {index} is outside the model's {num_classes} classes: {listing}")
        indices.append(index)
    if len(indices) == 1:
        indices = indices * batch_size
    if len(indices) != batch_size:
        raise ValueError(
            f"got {len(indices)} class labels for {batch_size} images; pass one label for all images or one per image"
        )
    return torch.tensor(indices, dtype=torch.long)


def classifier_free_guidance(
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    sample: torch.Tensor,
    timestep: torch.Tensor,
    class_labels: torch.Tensor,
    null_label: int,
    guidance_scale: float,
) -> torch.Tensor:
    """The guided network output ``u + w (c - u)`` (Ho & Salimans 2022, eq. 6 with w = 1 + their w).

    ``c`` is the prediction with the requested labels, ``u`` with the "no label" class. ``w = 1`` returns ``c``
    exactly (one forward pass), ``w = 0`` returns ``u`` exactly (one pass); any other ``w`` runs both halves in one
    batched forward pass of size ``2 B``.

    Args:
        predict: ``(sample, timestep, class_labels) -> output`` of the network, all with the same batch size.
        sample (`torch.Tensor` of shape `(B, C, H, W)`): the current sample.
        timestep (`torch.Tensor`): a scalar timestep or one per image `(B,)`.
        class_labels (`torch.Tensor` of shape `(B,)`): class indices in [0, null_label).
        null_label (`int`): the index of "no label" (the number of classes C).
        guidance_scale (`float`): w >= 0.
    """
    if guidance_scale == 1.0:
        return predict(sample, timestep, class_labels)
    null = torch.full_like(class_labels, null_label)
    if guidance_scale == 0.0:
        return predict(sample, timestep, null)
    timesteps = timestep.expand(len(sample)) if timestep.ndim == 0 else timestep
    both = predict(torch.cat([sample, sample]), torch.cat([timesteps, timesteps]), torch.cat([class_labels, null]))
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance_scale * (conditional - unconditional)


def check_guidance_scale(guidance_scale: float, conditional: bool) -> None:
    """Raise ValueError for a negative or non-finite ``guidance_scale``, or any value other than 1 on an
    unconditional model."""
    import math

    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale must be finite and >= 0, got {guidance_scale}")
    if not conditional and guidance_scale != 1.0:
        raise ValueError("guidance_scale needs a class-conditional model (trained with --class_conditional); drop it")


__all__ = [
    "check_guidance_scale",
    "classifier_free_guidance",
    "labels_batch_size",
    "normalize_id2label",
    "resolve_class_labels",
]
