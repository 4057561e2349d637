"""What every tab of `hfgen demo` shares, as plain Python (no gradio): `DemoModel` (a loaded folder), the error the
page shows, image grids and uploads. One module per kind of folder (`diffusion`, `latent`, `gan`, `flow`, `vqa`) adds
the tab's actions: methods taking the widgets' values and returning PIL images and text. `hfgen.demo.app` wires them
to gradio; tests call them directly.

Images come back as one PIL grid (`hfgen.plotting.make_image_grid`, nearest-neighbour upscaled so that an 8x8 digit
is visible). Every method raises `DemoInputError` (a `HfgenError`) for input it cannot use, with a message meant for
the page: the app shows it as a message, never a traceback.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import torch
from PIL import Image

from hfgen.errors import DatasetError, HfgenError

MAX_IMAGES = 64
DISPLAY_PIXELS = 256  # a grid is upscaled (nearest) until it is about this wide


class DemoInputError(HfgenError, ValueError):
    """Input the demo cannot use (an upload that is not an image, a wrong size, an unknown class): shown in the
    page."""


def grid(images: torch.Tensor, nrow: int | None = None) -> Image.Image:
    """`(B, C, H, W)` images in [0, 1] -> one PIL grid about `DISPLAY_PIXELS` wide."""
    from hfgen.plotting import make_image_grid

    count, _, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(count))
    scale = max(1, round(DISPLAY_PIXELS / (nrow * (width + 1))))
    return make_image_grid(images.cpu().float(), nrow=nrow, scale=scale)


def image_count(num_images, name: str = "number of images") -> int:
    """``num_images`` as an int in 1..MAX_IMAGES.

    Raises:
        DemoInputError: anything else.
    """
    try:
        value = int(num_images)
    except (TypeError, ValueError):
        raise DemoInputError(f"{name} must be a whole number, got {num_images!r}") from None
    if not 1 <= value <= MAX_IMAGES:
        raise DemoInputError(f"{name} must be between 1 and {MAX_IMAGES}, got {value}")
    return value


def seeded_generator(seed) -> torch.Generator:
    """A CPU generator seeded with ``seed``.

    Raises:
        DemoInputError: a seed that is not a whole number >= 0.
    """
    try:
        value = int(seed)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or value >= 2**63:
        raise DemoInputError(f"seed must be a whole number >= 0, got {seed!r}")
    return torch.Generator().manual_seed(value)


def uploaded_image(image, sample_size: int, in_channels: int) -> torch.Tensor:
    """An upload (PIL image, `(H, W[, C])` uint8 array, or a file path) -> `(1, C, S, S)` in [-1, 1], converted like
    the training images (`hfgen.data.images.transforms.preprocess_image`: centre crop, resize, channels).

    Raises:
        DemoInputError: nothing uploaded, a file that is not an image, or an array of another shape.
    """
    from hfgen.data.images.transforms import preprocess_image

    if image is None:
        raise DemoInputError("upload an image first")
    try:
        if isinstance(image, (str, os.PathLike)):
            with Image.open(image) as opened:
                image = opened.convert("RGB") if opened.mode not in ("L", "RGB") else opened.copy()
        elif isinstance(image, np.ndarray):
            if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
                raise DemoInputError(f"expected an (H, W) or (H, W, 1|3|4) image, got an array of shape {image.shape}")
            array = image.astype(np.uint8) if image.dtype != np.uint8 else image
            image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array[..., :3])
        if not isinstance(image, Image.Image):
            raise DemoInputError(f"expected an image, got {type(image).__name__}")
        array = preprocess_image(image, sample_size, in_channels)
    except DemoInputError:
        raise
    except (OSError, ValueError) as err:
        raise DemoInputError(f"this file is not an image hfgen can read ({type(err).__name__}: {err})") from None
    return torch.from_numpy(np.asarray(array))[None].float()


class DemoModel:
    """A loaded folder and what its tab shows. Subclasses add the tab's actions.

    Attributes:
        folder (`str`): the output folder (or Hub id) it was loaded from.
        pipeline: the `diffusers.DiffusionPipeline` `hfgen.load_pipeline` returned (None for a VQA adapter).
        kind (`str`): ``"diffusion"``, ``"latent"`` (VAE / autoencoder), ``"gan"``, ``"flow"`` or ``"vqa"``.
    """

    kind = ""

    def __init__(self, folder: str, pipeline=None):
        self.folder, self.pipeline = folder, pipeline
        if pipeline is not None and hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)
        self._lock = threading.Lock()  # one request at a time per model (gradio's queue may run several)

    @property
    def title(self) -> str:
        """The tab's name: the folder's base name and the family."""
        name = os.path.basename(os.path.normpath(self.folder)) or self.folder
        return f"{name} ({self.family})"

    @property
    def family(self) -> str:
        return type(self.pipeline).__name__.replace("Pipeline", "") if self.pipeline is not None else self.kind

    @property
    def class_names(self) -> list[str] | None:
        """The class names of a class-conditional model (in index order), None for an unconditional one."""
        id2label = getattr(self.pipeline, "id2label", None)
        if not id2label:
            return None
        return [str(id2label[i]) for i in sorted(id2label)]

    def class_label(self, name):
        """A class name from the dropdown -> what the pipeline takes (None: every class in turn).

        Raises:
            DemoInputError: a name that is not one of `class_names`.
        """
        names = self.class_names
        if not names or name in (None, "", "every class"):
            return None
        if str(name) not in names:
            raise DemoInputError(f"unknown class {name!r}; choose one of {', '.join(names)}")
        return names.index(str(name))

    def _held_out(self, max_images: int = 500):
        """(images in [-1, 1], labels or None) of the folder's held-out data (the digits test split for a folder
        trained on the digits or without training_args.json), or (None, None) when that data is not here."""
        from hfgen.jobs.explore import folder_data, load_held_out_images

        try:
            return load_held_out_images(self.pipeline, folder_data(self.folder), max_images=max_images)
        except (DatasetError, OSError):
            return None, None
