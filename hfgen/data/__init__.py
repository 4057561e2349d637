"""Data sources: the embedded digits, image folders, .npy arrays (with labels), attribute files, save_to_disk
folders and Hub data sets; fixed train/held-out splits of the real data sets."""

from hfgen.data.attributes import AttributeTable, read_attribute_file
from hfgen.data.images import (
    DIGITS,
    ImageDecoder,
    ImageSource,
    decode_images,
    images_to_tensor,
    load_digits_dataset,
    load_image_dataset,
    open_image_source,
    preprocess_image,
    tensor_to_pil,
)
from hfgen.data.splits import KNOWN_DATASETS, held_out_split, recognise_dataset

__all__ = [
    "DIGITS",
    "KNOWN_DATASETS",
    "AttributeTable",
    "ImageDecoder",
    "ImageSource",
    "decode_images",
    "held_out_split",
    "images_to_tensor",
    "load_digits_dataset",
    "load_image_dataset",
    "open_image_source",
    "preprocess_image",
    "read_attribute_file",
    "recognise_dataset",
    "tensor_to_pil",
]
