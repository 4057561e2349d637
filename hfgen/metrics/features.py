"""Feature extractors for sample-quality metrics, usable offline.

- `DigitsClassifier`: a small CNN trained only on the digits train split (`scripts/train_digits_classifier.py`); its
  64-dimensional penultimate layer gives a "Fréchet LeNet distance" — the in-domain feature space the FID authors
  recommend for non-ImageNet data — and its logits give classifier-based scores (confidence, mode coverage). Its
  weights ship inside the package (`hfgen/metrics/weights/digits_classifier.safetensors`, < 1 MB).
- `CLIPFeatures`: CLIP image embeddings (transformers `CLIPVisionModelWithProjection`) from a local folder, for CMMD.
- `FIDInceptionV3` (`hfgen.metrics.inception`): the FID Inception-v3 network, from pytorch-fid's weights converted to
  safetensors (``inception:PATH``); 2048-dimensional pool features.
- `load_feature_extractor("digits" | "clip:PATH" | "inception:PATH")`: by name.

Every extractor is an `nn.Module` with an integer ``num_features`` whose ``forward`` takes images of shape
``(batch_size, channels, height, width)``, floats in [0, 1] (1 or 3 channels; any size), and returns
``(batch_size, num_features)`` features — the interface torchmetrics' FID/KID expect of a custom feature module
(``normalize=True`` convention).
"""

from __future__ import annotations

import importlib.resources
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from hfgen.errors import CheckpointError, UnknownNameError

DIGITS_INPUT_SIZE = 16
DIGITS_WEIGHTS = "digits_classifier.safetensors"


def to_greyscale(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, H, W)`` floats in [0, 1] with C in {1, 3, 4} to ``(B, 1, size, size)`` greyscale in [0, 1].

    Raises:
        ValueError: for a tensor that is not 4-D or has another channel count.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
        raise ValueError(f"expected images of shape (B, 1|3, H, W), got {tuple(images.shape)}")
    images = images.float()
    if images.shape[1] > 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
        images = (images[:, :3] * weights).sum(dim=1, keepdim=True)
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return images


class DigitsClassifier(nn.Module):
    """A small CNN for the 10 digit classes whose penultimate layer is the feature space of digits metrics.

    Architecture: 3 conv layers (32, 64, 64 channels, ReLU, two 2x2 max-pools) -> linear 1024 -> ``num_features``
    (the features, taken before the ReLU) -> ReLU -> dropout -> linear -> 10 logits. About 124 k parameters.

    Parameters:
        num_features (`int`, defaults to 64): width of the feature layer (kept small: the digits set has 1,797 images).
        input_size (`int`, defaults to 16): images are resized to this size (the resolution the classifier was
            trained at).

    Inputs are ``(B, C, H, W)`` floats in [0, 1], 1 or 3 channels, any size (converted to greyscale and resized).
    """

    def __init__(self, num_features: int = 64, input_size: int = DIGITS_INPUT_SIZE):
        super().__init__()
        self.num_features = num_features
        self.input_size = input_size
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 64 * (input_size // 4) ** 2
        self.feature = nn.Linear(flat, num_features)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(num_features, 10)
        # per-dimension scale of the feature layer on the train split (set by the training script), so that features
        # have unit variance on real digits and FID/KID values stay in a readable range
        self.register_buffer("feature_scale", torch.ones(num_features))

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (B, num_features), logits (B, 10))`` for images in [0, 1]."""
        x = to_greyscale(images, self.input_size) * 2 - 1
        features = self.feature(self.conv(x).flatten(1))
        return features / self.feature_scale, self.head(self.dropout(F.relu(features)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of shape ``(B, num_features)`` for images ``(B, C, H, W)`` in [0, 1] (unit variance on digits)."""
        return self.features_and_logits(images)[0]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, 10)`` for images ``(B, C, H, W)`` in [0, 1]."""
        return self.features_and_logits(images)[1]

    @classmethod
    def from_pretrained(cls, path: str | None = None) -> DigitsClassifier:
        """The shipped classifier (or weights at ``path``, a ``.safetensors`` file), in eval mode.

        Raises:
            CheckpointError: when the weights are missing or do not fit the architecture (re-create them with
                ``python scripts/train_digits_classifier.py``).
        """
        from safetensors.torch import load_file

        if path is None:
            path = str(importlib.resources.files("hfgen.metrics").joinpath("weights", DIGITS_WEIGHTS))
        if not os.path.isfile(path):
            raise CheckpointError(
                f"digits classifier weights {path} are missing; run `python scripts/train_digits_classifier.py`"
            )
        try:
            state = load_file(path)
            model = cls(num_features=state["feature.weight"].shape[0])
            model.load_state_dict(state)
        except Exception as err:
            raise CheckpointError(
                f"{path} is not a valid digits classifier ({type(err).__name__}: {err}); "
                "re-create it with `python scripts/train_digits_classifier.py`"
            ) from None
        return model.eval().requires_grad_(False)


class CLIPFeatures(nn.Module):
    """CLIP image embeddings (``image_embeds``, the projection output) for CMMD and CLIP-space FID.

    Parameters:
        model (`transformers.CLIPVisionModelWithProjection`): the vision tower with projection.
        image_size (`int`): the square input size the model expects (``model.config.image_size``).
        mean, std (`tuple[float]`): the processor's normalisation (CLIP's defaults when not given).

    Inputs are ``(B, C, H, W)`` floats in [0, 1] (greyscale is repeated to RGB), resized bicubically.
    """

    CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
    CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, model, image_size: int | None = None, mean=None, std=None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.image_size = image_size or model.config.image_size
        self.num_features = int(model.config.projection_dim)
        self.register_buffer("mean", torch.tensor(mean or self.CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or self.CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str) -> CLIPFeatures:
        """Load a CLIP model folder (``config.json`` + safetensors weights, optional ``preprocessor_config.json``).

        Raises:
            CheckpointError: when ``path`` is missing or is not a CLIP model.
        """
        from transformers import CLIPVisionModelWithProjection

        if not os.path.isdir(path) and os.path.exists(path):
            raise CheckpointError(f"{path} must be a folder holding a CLIP model saved with save_pretrained")
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(path, use_safetensors=True)
        except Exception as err:
            raise CheckpointError(
                f"cannot load a CLIP vision model from {path} ({type(err).__name__}: {err})"
            ) from None
        mean = std = None
        size = None
        processor_config = os.path.join(path, "preprocessor_config.json")
        if os.path.isfile(processor_config):
            import json

            with open(processor_config) as handle:
                config = json.load(handle)
            mean, std = config.get("image_mean"), config.get("image_std")
            crop = config.get("crop_size")
            size = crop.get("height") if isinstance(crop, dict) else crop
        return cls(model, image_size=size, mean=mean, std=std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``image_embeds`` of shape ``(B, num_features)`` for images ``(B, C, H, W)`` in [0, 1]."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (B, 1|3, H, W), got {tuple(images.shape)}")
        images = images.float()
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        images = (images.clamp(0, 1) - self.mean) / self.std
        return self.model(pixel_values=images).image_embeds


def load_feature_extractor(spec: str = "digits") -> nn.Module:
    """A feature extractor by name: ``"digits"`` (shipped), ``"clip:PATH"`` (a local CLIP folder) or
    ``"inception:PATH"`` (pytorch-fid's weights converted to safetensors).

    Raises:
        UnknownNameError: for any other name.
        CheckpointError: when the weights cannot be loaded.
    """
    kind, _, path = spec.partition(":")
    if kind == "digits":
        return DigitsClassifier.from_pretrained(path or None)
    if kind == "clip" and path:
        return CLIPFeatures.from_pretrained(os.path.expanduser(path))
    if kind == "inception" and path:
        from hfgen.metrics.inception import FIDInceptionV3

        return FIDInceptionV3.from_pretrained(os.path.expanduser(path))
    raise UnknownNameError(
        f"unknown features {spec!r}; use 'digits', 'clip:PATH' (a local CLIP model folder) or 'inception:PATH' "
        "(pytorch-fid weights converted to .safetensors)"
    )
