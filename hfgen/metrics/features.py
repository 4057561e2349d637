"""Feature extractors for sample-quality metrics, usable offline.

- `DigitsClassifier`: a small CNN trained only on the digits train split (`scripts/train_digits_classifier.py`); its
  64-dimensional penultimate layer gives a "Fréchet LeNet distance" — the in-domain feature space the FID authors
  recommend for non-ImageNet data — and its logits give classifier-based scores (confidence, mode coverage). Its
  weights ship inside the package (`hfgen/metrics/weights/digits_classifier.safetensors`, < 1 MB).
- `RealDataClassifier`: one small batch-norm CNN class, configured per data set, whose weights ship inside the package
  (`hfgen/metrics/weights/{mnist,cifar10,celeba}_classifier.safetensors`, rebuilt by
  ``python scripts/train_feature_classifier.py NAME``), each trained only on the train part of the fixed split of
  `hfgen.data.splits.held_out_split` so that its held-out part stays unseen:
  ``mnist`` (10 digit classes, 28x28 greyscale), ``cifar10`` (10 classes, 32x32 RGB) and ``celeba`` (the 40 binary
  CelebA attributes as independent logits, 64x64 RGB). Their feature layers are in-domain feature spaces, as the
  FID authors (Heusel et al. 2017) recommend for data unlike ImageNet, that work offline where Inception weights
  are not at hand. Their distances are comparable only between runs that use the same extractor.
- `CLIPFeatures`: CLIP image embeddings (transformers `CLIPVisionModelWithProjection`) from a local folder, for CMMD.
- `FIDInceptionV3` (`hfgen.metrics.inception`): the FID Inception-v3 network, from pytorch-fid's weights converted to
  safetensors (``inception:PATH``); 2048-dimensional pool features.
- `load_feature_extractor("digits" | "mnist" | "cifar10" | "celeba" | "clip:PATH" | "inception:PATH")`: by name.

Every extractor is an `nn.Module` with an integer ``num_features`` whose ``forward`` takes images of shape
``(batch_size, channels, height, width)``, floats in [0, 1] (1 or 3 channels; any size), and returns
``(batch_size, num_features)`` features — the interface torchmetrics' FID/KID expect of a custom feature module
(``normalize=True`` convention). The classifiers (`DigitsClassifier`, `RealDataClassifier`) also have
``features_and_logits(images)`` and ``classify(images)``, plus ``logits_kind`` — ``"classes"`` for logits over
mutually exclusive classes (softmax), ``"attributes"`` for independent binary attribute logits (sigmoid) — and
``output_names``, the name of each logit.
"""

from __future__ import annotations

import importlib.resources
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from hfgen.errors import CheckpointError, UnknownNameError

DIGITS_INPUT_SIZE = 16
DIGITS_WEIGHTS = "digits_classifier.safetensors"
# data sets with a shipped `RealDataClassifier`: hfgen/metrics/weights/{name}_classifier.safetensors
REAL_DATA_FEATURES = ("mnist", "cifar10", "celeba")
REAL_DATA_SCRIPT = "scripts/train_feature_classifier.py"


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

    Attributes:
        logits_kind (`str`): ``"classes"``: the logits are over the 10 mutually exclusive digit classes.
        output_names (`tuple[str]`): ``("0", ..., "9")``, the class of each logit.
    """

    logits_kind = "classes"
    output_names = tuple(str(digit) for digit in range(10))

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


class RealDataClassifier(nn.Module):
    """A small batch-norm CNN for one real data set whose feature layer is that data set's in-domain feature space.

    One class for every shipped real-data extractor (``mnist``, ``cifar10``, ``celeba``): the configuration below is
    stored in the safetensors metadata, so `from_pretrained` rebuilds the architecture the weights were trained with.

    Architecture: stages that halve the image until it is at most 4 pixels wide (28 or 32: 3 stages, 64: 4); the
    first stage is one 3x3 conv, every later stage two, each conv followed by batch norm and ReLU, each stage by a 2x2
    max-pool; stage widths ``width``, ``2 * width``, then ``4 * width``. Then global average pooling -> linear ->
    ``num_features`` (the features, taken before the ReLU) -> ReLU -> dropout -> linear -> ``num_outputs`` logits.
    About 0.3 M parameters with ``width=32`` (1.2 MB of float32).

    Parameters:
        in_channels (`int`, defaults to 3): 1 (greyscale) or 3 (RGB), the channels the network was trained on.
        input_size (`int`, defaults to 32): images are resized to ``input_size x input_size`` (at least 8).
        num_outputs (`int`, defaults to 10): number of logits.
        multi_label (`bool`, defaults to False): False: logits over ``num_outputs`` mutually exclusive classes
            (softmax / cross-entropy); True: ``num_outputs`` independent binary attributes (sigmoid / BCE).
        num_features (`int`, defaults to 128): width of the feature layer.
        width (`int`, defaults to 32): channels of the first stage.
        output_names (`list[str]`, *optional*): the name of each logit (class or attribute names); ``"0"``, ``"1"``,
            ... when not given.

    Attributes:
        logits_kind (`str`): ``"attributes"`` when ``multi_label`` else ``"classes"``.
        output_names (`tuple[str]`): the name of each logit.
        metadata (`dict[str, str]`): the safetensors metadata the weights were loaded with (held-out accuracies, seed,
            ...); empty for a model built in code.

    Inputs are ``(B, C, H, W)`` floats in [0, 1] with 1 or 3 channels (a 4th, alpha, channel is dropped), any size:
    greyscale is repeated to RGB for an RGB network, RGB is converted to greyscale (`to_greyscale`) for a greyscale
    one, and images are resized (bilinear, antialiased) to ``input_size``. Non-square images are stretched: crop them
    as the training images were (``celeba``: the central 89x89 square of the 89x109 aligned faces) before.

    Raises:
        ValueError: for an invalid configuration (``in_channels`` not 1 or 3, ``input_size < 8``, ``output_names``
            of the wrong length).
    """

    def __init__(
        self,
        in_channels: int = 3,
        input_size: int = 32,
        num_outputs: int = 10,
        multi_label: bool = False,
        num_features: int = 128,
        width: int = 32,
        output_names: list[str] | tuple[str, ...] | None = None,
    ):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if input_size < 8:
            raise ValueError(f"input_size must be at least 8, got {input_size}")
        if output_names is None:
            output_names = [str(i) for i in range(num_outputs)]
        if len(output_names) != num_outputs:
            raise ValueError(f"expected {num_outputs} output_names, got {len(output_names)}")
        self.in_channels = in_channels
        self.input_size = input_size
        self.num_outputs = num_outputs
        self.multi_label = bool(multi_label)
        self.num_features = num_features
        self.width = width
        self.output_names = tuple(str(name) for name in output_names)
        self.metadata: dict[str, str] = {}

        layers: list[nn.Module] = []
        channels, size, stage = in_channels, input_size, 0
        while size > 4:
            out = width * 2 ** min(stage, 2)
            for _ in range(1 if stage == 0 else 2):
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
                channels = out
            layers.append(nn.MaxPool2d(2))
            size //= 2
            stage += 1
        self.conv = nn.Sequential(*layers)
        self.feature = nn.Linear(channels, num_features)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(num_features, num_outputs)
        # per-dimension scale of the feature layer on the train part (set by the training script), so that features
        # have unit variance on the real data and FID/KID values stay in a readable range
        self.register_buffer("feature_scale", torch.ones(num_features))

    @property
    def logits_kind(self) -> str:
        """``"attributes"`` (independent sigmoid logits) when ``multi_label``, else ``"classes"`` (softmax logits)."""
        return "attributes" if self.multi_label else "classes"

    @property
    def config(self) -> dict:
        """The constructor arguments, as stored in the weights' metadata (``"config"``, JSON)."""
        return {
            "in_channels": self.in_channels,
            "input_size": self.input_size,
            "num_outputs": self.num_outputs,
            "multi_label": self.multi_label,
            "num_features": self.num_features,
            "width": self.width,
            "output_names": list(self.output_names),
        }

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` floats in [0, 1] (C in 1, 3, 4) to ``(B, in_channels, input_size, input_size)`` in [-1, 1].

        Raises:
            ValueError: for a tensor that is not 4-D or has another channel count.
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
            raise ValueError(f"expected images of shape (B, 1|3, H, W), got {tuple(images.shape)}")
        if self.in_channels == 1:
            images = to_greyscale(images, self.input_size)
        else:
            images = images[:, :3].float()
            if images.shape[1] == 1:
                images = images.repeat(1, 3, 1, 1)
            if images.shape[-2:] != (self.input_size, self.input_size):
                size = (self.input_size, self.input_size)
                images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return images * 2 - 1

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (B, num_features), logits (B, num_outputs))`` for images ``(B, C, H, W)`` in [0, 1].

        Features are real-valued, about unit variance per dimension on the train part; logits are unbounded (softmax
        them when ``logits_kind == "classes"``, sigmoid each when ``"attributes"``).

        Raises:
            ValueError: for images that are not ``(B, 1|3, H, W)``.
        """
        features = self.feature(self.conv(self.preprocess(images)).mean(dim=(2, 3)))
        return features / self.feature_scale, self.head(self.dropout(F.relu(features)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of shape ``(B, num_features)`` for images ``(B, C, H, W)`` in [0, 1] (unit variance on train)."""
        return self.features_and_logits(images)[0]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, num_outputs)`` for images ``(B, C, H, W)`` in [0, 1] (see ``logits_kind``)."""
        return self.features_and_logits(images)[1]

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> RealDataClassifier:
        """A shipped classifier by name (``"mnist"``, ``"cifar10"``, ``"celeba"``) or the weights at a ``.safetensors``
        path written by ``scripts/train_feature_classifier.py``, in eval mode, with ``metadata`` set.

        Raises:
            CheckpointError: when the weights are missing or do not fit the architecture in their metadata (re-create
                them with ``python scripts/train_feature_classifier.py NAME``).
        """
        from safetensors import safe_open
        from safetensors.torch import load_file

        if name_or_path in REAL_DATA_FEATURES:
            name = name_or_path
            weights = f"{name}_classifier.safetensors"
            path = str(importlib.resources.files("hfgen.metrics").joinpath("weights", weights))
        else:
            name, path = "NAME", os.path.expanduser(name_or_path)
        if not os.path.isfile(path):
            raise CheckpointError(
                f"feature classifier weights {path} are missing; run `python {REAL_DATA_SCRIPT} {name}` "
                f"(NAME: {', '.join(REAL_DATA_FEATURES)})"
            )
        try:
            with safe_open(path, framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            name = metadata.get("name", name)
            if "config" not in metadata:
                raise KeyError("no 'config' in the safetensors metadata")
            model = cls(**json.loads(metadata["config"]))
            model.load_state_dict(load_file(path))
        except Exception as err:
            raise CheckpointError(
                f"{path} is not a valid feature classifier ({type(err).__name__}: {err}); "
                f"re-create it with `python {REAL_DATA_SCRIPT} {name}`"
            ) from None
        model.metadata = metadata
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
    """A feature extractor by name.

    Args:
        spec (`str`): ``"digits"`` (shipped `DigitsClassifier`), ``"mnist"``, ``"cifar10"`` or ``"celeba"`` (shipped
            `RealDataClassifier` weights, ``hfgen/metrics/weights/{name}_classifier.safetensors``), any of these
            followed by ``":PATH"`` (the same architecture from other weights, e.g. ``"mnist:my_mnist.safetensors"``),
            ``"clip:PATH"`` (a local CLIP folder) or ``"inception:PATH"`` (pytorch-fid's weights converted to
            safetensors).

    Raises:
        UnknownNameError: for any other name.
        CheckpointError: when the weights cannot be loaded (or ``NAME:PATH`` holds another data set's classifier).
    """
    kind, _, path = spec.partition(":")
    if kind == "digits":
        return DigitsClassifier.from_pretrained(path or None)
    if kind in REAL_DATA_FEATURES:
        model = RealDataClassifier.from_pretrained(path or kind)
        trained_on = model.metadata.get("name", kind)
        if trained_on != kind:
            raise CheckpointError(
                f"{path} holds the {trained_on} feature classifier, not {kind}; use '{trained_on}:{path}'"
            )
        return model
    if kind == "clip" and path:
        return CLIPFeatures.from_pretrained(os.path.expanduser(path))
    if kind == "inception" and path:
        from hfgen.metrics.inception import FIDInceptionV3

        return FIDInceptionV3.from_pretrained(os.path.expanduser(path))
    raise UnknownNameError(
        f"unknown features {spec!r}; use 'digits', 'mnist', 'cifar10', 'celeba' (shipped classifiers), "
        "'clip:PATH' (a local CLIP model folder) or 'inception:PATH' (pytorch-fid weights converted to .safetensors)"
    )
