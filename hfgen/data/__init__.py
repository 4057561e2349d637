"""Data sources: the embedded digits, image folders, .npy arrays, save_to_disk folders and Hub data sets."""

from hfgen.data.images import (
    DIGITS,
    images_to_tensor,
    load_digits_dataset,
    load_image_dataset,
    preprocess_image,
    tensor_to_pil,
)

__all__ = [
    "DIGITS",
    "images_to_tensor",
    "load_digits_dataset",
    "load_image_dataset",
    "preprocess_image",
    "tensor_to_pil",
]
