"""Image data sources and preprocessing for every image model in hfgen.

`load_image_dataset` returns a `datasets.Dataset` with an ``image`` column (PIL images) and, when known, a
``label`` column, from one of:

- ``"digits"`` (the default): scikit-learn's bundled 1,797 real 8x8 handwritten digit scans, split once into a
  fixed stratified train/test split (20 % test, seed 0). The test split is never used for training.
- an image folder (read with the `datasets` ``imagefolder`` builder; sub-folder names become labels),
- a ``.npy`` array of shape ``(N, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3, 4}
  (uint8 in [0, 255], or floats in [0, 1] or [-1, 1]),
- a folder written by `datasets.Dataset.save_to_disk` / `DatasetDict.save_to_disk`,
- a Hugging Face Hub data set name (needs the network; never used in tests).

`images_to_tensor` turns such a dataset into one float tensor of shape ``(N, C, resolution, resolution)`` with
values in [-1, 1], decoded once and kept in memory (small datasets: no PIL decoding at every step).

The package, in the order data flows through it:

- `formats`: reading each kind of source (digits, ``.npy`` and its labels file, image folders, ``save_to_disk``
  folders, Hub names) into a `datasets.Dataset`;
- `source`: `ImageSource` (random access, decoded only when asked) and `open_image_source` (labels, attribute
  files, the fixed train/held-out parts);
- `transforms`: crop, resize and channels (`preprocess_image_uint8`), the [-1, 1] scale, flips, tensors to PIL;
- `decoding`: `ImageDecoder`, `decode_images` and `images_to_tensor` (unreadable files skipped with a warning).

Every public name is re-exported here; inside hfgen, import from the module that defines it.
"""

from hfgen.data.images.decoding import ImageDecoder, decode_images, images_to_tensor, readable_images
from hfgen.data.images.formats import (
    DIGITS,
    DIGITS_RESOLUTION,
    DIGITS_SPLIT_SEED,
    DIGITS_TEST_SIZE,
    GREY_MODES,
    IMAGE_EXTENSIONS,
    infer_num_channels,
    load_digits_dataset,
    load_image_dataset,
    load_image_folder,
    load_npy_dataset,
    npy_label_path,
    read_npy_images,
)
from hfgen.data.images.source import (
    SPLITS,
    ImageSource,
    NoHeldOutPartError,
    open_held_out_source,
    open_image_source,
    resolve_held_out_size,
)
from hfgen.data.images.transforms import (
    preprocess_image,
    preprocess_image_uint8,
    random_hflip,
    tensor_to_pil,
    uint8_to_float,
)

__all__ = [
    "DIGITS",
    "DIGITS_RESOLUTION",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_SIZE",
    "GREY_MODES",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "ImageDecoder",
    "ImageSource",
    "NoHeldOutPartError",
    "decode_images",
    "images_to_tensor",
    "infer_num_channels",
    "load_digits_dataset",
    "load_image_dataset",
    "load_image_folder",
    "load_npy_dataset",
    "npy_label_path",
    "open_held_out_source",
    "open_image_source",
    "preprocess_image",
    "preprocess_image_uint8",
    "random_hflip",
    "read_npy_images",
    "readable_images",
    "resolve_held_out_size",
    "tensor_to_pil",
    "uint8_to_float",
]
