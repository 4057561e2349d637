"""Sample-quality metrics, each reported next to the real-data floor.

- FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) through `torchmetrics`, on the features of a custom
  feature module (by default the shipped digits classifier: a "Fréchet LeNet distance").
- CMMD (Jayasumana et al. 2024, "Rethinking FID"): squared MMD with a Gaussian RBF kernel, sigma = 10, times 1000, on
  L2-normalised embeddings, computed as in the authors' reference code (V-statistic, diagonals included).
- Improved precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020) through `prdc`.
- With classifier features: the share of samples classified with confidence >= 0.9 and the entropy (bits) of the
  predicted-class histogram — mode coverage over the 10 digits (log2 10 = 3.32 bits when all are equally present).

The **real-data floor** is every metric computed between two real sets with the same sample counts and features:
for ``reference="digits"`` the generated images are compared with the held-out test split (360 images) and the floor
compares the same number of train-split images with that same test split. A model cannot be expected to beat it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import math
import warnings

import torch
import torch.nn as nn

from hfgen.errors import NotEnoughSamplesError
from hfgen.metrics.references import (  # noqa: F401 - re-exported: the reference sets live in references.py
    DATA_KEYS,
    FLOOR_POOL_SIZE,
    ReferenceSets,
    load_reference_sets,
    resolve_features,
    training_data_spec,
)

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
PRDC_NEAREST_K = 5
CONFIDENCE_THRESHOLD = 0.9
KID_MAX_SUBSET_SIZE = 1000
KID_SUBSETS = 100


class _Precomputed(nn.Module):
    """Identity "feature module" so torchmetrics' FID/KID run on features computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def minimum_samples(metric: str, num_features: int) -> int:
    """Images needed per set: FID needs more images than feature dimensions (a full-rank covariance), KID 4, PRDC
    ``nearest_k + 1``, CMMD 2."""
    return {"fid": num_features + 1, "kid": 4, "prdc": PRDC_NEAREST_K + 1, "cmmd": 2}[metric]


def _check(metric: str, real: torch.Tensor, fake: torch.Tensor) -> None:
    need = minimum_samples(metric, real.shape[1])
    have = min(len(real), len(fake))
    if have < need:
        raise NotEnoughSamplesError(
            f"{metric.upper()} with {real.shape[1]}-dimensional features needs at least {need} images in each set, "
            f"got {len(real)} real and {len(fake)} generated; raise --num_images"
        )


@torch.no_grad()
def extract_features(
    extractor: nn.Module, images: torch.Tensor, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``extractor`` over ``images`` in batches.

    Args:
        extractor (`nn.Module`): a feature module (see `hfgen.metrics.features`).
        images (`torch.Tensor` of shape `(N, C, H, W)`): floats in [0, 1].

    Returns:
        ``(features (N, num_features) float64, logits (N, K) float64 or None)`` — class logits only when the extractor
        classifies into mutually exclusive classes (it has ``features_and_logits`` and its ``logits_kind`` is
        ``"classes"``, the default when the attribute is absent); None for plain feature modules and for
        independent attribute logits (``logits_kind == "attributes"``, e.g. the ``celeba`` extractor), which
        `classifier_scores` must not softmax.
    """
    features, logits = [], []
    has_logits = hasattr(extractor, "features_and_logits")
    keep_logits = has_logits and getattr(extractor, "logits_kind", "classes") == "classes"
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        if has_logits:
            f, lg = extractor.features_and_logits(batch)
            if keep_logits:
                logits.append(lg.double())
        else:
            f = extractor(batch)
        features.append(f.double())
    return torch.cat(features), (torch.cat(logits) if keep_logits else None)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets ``(N, D)`` with torchmetrics' `FrechetInceptionDistance` (custom features).

    Raises:
        NotEnoughSamplesError: with ``N <= D`` in either set.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check("fid", real, fake)
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), normalize=True).double()
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """KID ``(mean, std)`` over random subsets (torchmetrics), subset size ``min(1000, smaller set // 2)``.

    Raises:
        NotEnoughSamplesError: with fewer than 4 images in a set.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    _check("kid", real, fake)
    subset = min(KID_MAX_SUBSET_SIZE, min(len(real), len(fake)) // 2)
    with warnings.catch_warnings():  # "will save all extracted features in buffer": intended, they are small
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=KID_SUBSETS, subset_size=subset)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def cmmd(real: torch.Tensor, fake: torch.Tensor, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """CMMD: ``scale * (mean k(x, x') + mean k(y, y') - 2 mean k(x, y))``, ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``,
    on L2-normalised embeddings (Jayasumana et al. 2024; sigma = 10, scale = 1000 as in the paper).

    Raises:
        NotEnoughSamplesError: with fewer than 2 images in a set.
    """
    _check("cmmd", real, fake)
    x = torch.nn.functional.normalize(real.double(), dim=1)
    y = torch.nn.functional.normalize(fake.double(), dim=1)
    gamma = 1.0 / (2.0 * sigma**2)

    def mean_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-gamma * torch.cdist(a, b).pow(2)).mean()

    return float(scale * (mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y)))


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, nearest_k: int = PRDC_NEAREST_K):
    """Improved precision/recall and density/coverage with `prdc.compute_prdc` (k nearest neighbours = 5).

    Returns:
        dict with ``precision``, ``recall``, ``coverage`` in [0, 1] and ``density`` (>= 0, ~1 for matching sets).
    """
    from prdc import compute_prdc

    _check("prdc", real, fake)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        out = compute_prdc(real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=nearest_k)
    return {key: float(value) for key, value in out.items()}


def classifier_scores(logits: torch.Tensor, threshold: float = CONFIDENCE_THRESHOLD) -> dict:
    """Scores from class logits ``(N, K)`` over K mutually exclusive classes (softmax), such as the digits, MNIST or
    CIFAR-10 classifiers' (`extract_features` returns None instead of multi-label attribute logits, whose classes are
    not exclusive).

    Returns:
        ``confident_share``: share of images whose top softmax probability is >= ``threshold``;
        ``class_entropy_bits``: entropy of the predicted-class histogram in bits (log2 K when all classes are equally
        present, 0 under total mode collapse); ``classes_covered``: classes predicted for at least one image.

    Raises:
        ValueError: for logits that are not 2-D.
    """
    if logits.ndim != 2:
        raise ValueError(f"expected class logits of shape (N, K), got {tuple(logits.shape)}")
    probabilities = logits.softmax(dim=1)
    predicted = probabilities.argmax(dim=1)
    histogram = torch.bincount(predicted, minlength=logits.shape[1]).double() / len(predicted)
    nonzero = histogram[histogram > 0]
    return {
        "confident_share": float((probabilities.max(dim=1).values >= threshold).double().mean()),
        "class_entropy_bits": float(-(nonzero * nonzero.log2()).sum()),
        "classes_covered": int((histogram > 0).sum()),
    }


def compute_metrics(
    real: torch.Tensor, fake: torch.Tensor, fake_logits: torch.Tensor | None = None, seed: int = 0
) -> dict:
    """Every metric between real features ``(N_r, D)`` and generated features ``(N_f, D)``.

    Returns:
        dict with ``fid``, ``kid_mean``, ``kid_std``, ``cmmd``, ``precision``, ``recall``, ``density``, ``coverage``
        (and the `classifier_scores` when ``fake_logits`` is given).

    Raises:
        NotEnoughSamplesError: when a set is too small for a metric.
    """
    kid_mean, kid_std = kernel_inception_distance(real, fake, seed=seed)
    metrics = {
        "fid": frechet_distance(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "cmmd": cmmd(real, fake),
        **precision_recall_density_coverage(real, fake),
    }
    if fake_logits is not None:
        metrics.update(classifier_scores(fake_logits))
    return metrics


_SCORER_CACHE: dict[tuple, dict] = {}  # (shipped features, reference and floor fingerprints, seed) -> features, floors
_SCORER_CACHE_SIZE = 4


def _fingerprint(images: torch.Tensor) -> tuple:
    """Shape, dtype and SHA-1 of a tensor's bytes: equal exactly when the images are."""
    array = images.detach().cpu().contiguous().numpy()
    return tuple(images.shape), str(images.dtype), hashlib.sha1(array.tobytes()).hexdigest()


class MetricScorer:
    """Scores sets of generated images against one reference: reference features and floors computed once.

    Args:
        reference (`str`, `dict` or `ReferenceSets`): ``"digits"``, training data arguments or a path (see
            `load_reference_sets`).
        features (`str` or `nn.Module`): ``"digits"``, ``"mnist"``, ``"cifar10"``, ``"celeba"``, ``"clip:PATH"``,
            ``"inception:PATH"`` or a feature module (``"auto"`` must be resolved first: `resolve_features`).
        resolution (`int`), num_channels (`int`): size of the generated images (real images are preprocessed to it).
        seed (`int`): seeds KID's subsets and the floor's subsample.
    """

    def __init__(self, reference, features, resolution: int, num_channels: int, seed: int = 0):
        from hfgen.metrics.features import load_feature_extractor

        self.features_name = features if isinstance(features, str) else type(features).__name__
        self.extractor = load_feature_extractor(features) if isinstance(features, str) else features
        if isinstance(reference, (str, dict)):
            reference = load_reference_sets(reference, resolution, num_channels, seed=seed)
        self.sets = reference
        self.seed = seed
        # Features of a named extractor are a pure function of the images: a scorer built again on the same
        # reference in this process (FID during training, then `evaluate`, every family of `compare`) reuses them.
        key = None
        if isinstance(features, str) and ":" not in features:  # the shipped extractors only: a PATH's file may change
            key = (features, _fingerprint(self.sets.reference), _fingerprint(self.sets.floor), seed)
        cached = _SCORER_CACHE.get(key)
        if cached is None:
            cached = {"reference_features": extract_features(self.extractor, self.sets.reference)[0], "floors": {}}
            if key is not None:
                _SCORER_CACHE[key] = cached
                while len(_SCORER_CACHE) > _SCORER_CACHE_SIZE:
                    _SCORER_CACHE.pop(next(iter(_SCORER_CACHE)))
        self.reference_features = cached["reference_features"]
        self._floors: dict[int, dict] = cached["floors"]

    def floor(self, count: int) -> dict:
        """Every metric for ``count`` real floor images (capped at the floor set size) against the reference (a
        copy: computed once per reference, features, seed and count in this process)."""
        count = min(count, len(self.sets.floor))
        if count not in self._floors:
            index = torch.randperm(len(self.sets.floor), generator=torch.Generator().manual_seed(self.seed))[:count]
            floor_features, floor_logits = extract_features(self.extractor, self.sets.floor[index])
            floor = compute_metrics(self.reference_features, floor_features, floor_logits, seed=self.seed)
            floor["num_images"] = count
            self._floors[count] = floor
        return copy.deepcopy(self._floors[count])

    def score(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> dict:
        """Metrics of ``images`` (``(N, C, H, W)`` in [0, 1]) with bookkeeping and ``real_data_floor``; with the
        ``class_labels`` `(N,)` a class-conditional model was asked for, also `conditional_scores`."""
        if images.ndim != 4 or len(images) == 0:
            raise NotEnoughSamplesError(
                f"expected generated images of shape (N, C, H, W) with N > 0, got {tuple(images.shape)}"
            )
        fake_features, fake_logits = extract_features(self.extractor, images.clamp(0, 1))
        metrics = compute_metrics(self.reference_features, fake_features, fake_logits, seed=self.seed)
        if class_labels is not None:
            metrics.update(self.conditional_scores(fake_features, fake_logits, class_labels))
        metrics.update(
            num_images=len(images),
            num_reference_images=len(self.sets.reference),
            features=self.features_name,
            num_features=int(self.reference_features.shape[1]),
            reference=self.sets.name,
            real_data_floor=self.floor(len(images)),
        )
        return metrics

    def conditional_scores(
        self, fake_features: torch.Tensor, fake_logits: torch.Tensor | None, class_labels: torch.Tensor
    ) -> dict:
        """How well a class-conditional model follows its labels.

        Args:
            fake_features (`torch.Tensor` of shape `(N, D)`), fake_logits (`torch.Tensor` of shape `(N, K)` or
                None): the generated images' features and class logits (`extract_features`).
            class_labels (`torch.Tensor` of shape `(N,)`): the class each image was generated for.

        Returns:
            ``class_accuracy``: the share of images that the features' classifier assigns to the requested class
            (only when the classifier's K classes cover the labels: digits, MNIST, CIFAR-10; labels are assumed to
            use the classifier's class order, as the shipped data sets do); ``per_class_fid``: ``{class: FID}``
            against the reference images of that class, for classes with at least `minimum_samples` ("fid", D)
            images on both sides, and ``mean_per_class_fid``; ``num_classes_scored``.
        """
        class_labels = torch.as_tensor(class_labels).long().cpu()
        scores: dict = {}
        if fake_logits is not None and fake_logits.shape[1] > int(class_labels.max()):
            predicted = fake_logits.argmax(dim=1).cpu()
            scores["class_accuracy"] = float((predicted == class_labels).double().mean())
            scores["per_class_accuracy"] = {
                str(c): float((predicted[class_labels == c] == c).double().mean())
                for c in sorted(set(class_labels.tolist()))
            }
        reference_labels = self.sets.reference_labels
        if reference_labels is not None:
            need = minimum_samples("fid", int(fake_features.shape[1]))
            per_class = {}
            for c in sorted(set(class_labels.tolist())):
                real, fake = self.reference_features[reference_labels == c], fake_features[class_labels == c]
                if len(real) >= need and len(fake) >= need:
                    per_class[str(c)] = frechet_distance(real, fake)
            if per_class:
                scores["per_class_fid"] = per_class
                scores["mean_per_class_fid"] = sum(per_class.values()) / len(per_class)
        scores["num_classes_scored"] = len(set(class_labels.tolist()))
        return scores


def evaluate_images(
    images: torch.Tensor,
    reference: str | ReferenceSets = "digits",
    features: str | nn.Module = "digits",
    seed: int = 0,
) -> dict:
    """Metrics of generated ``images`` against a real reference, with the real-data floor.

    Args:
        images (`torch.Tensor` of shape `(N, C, H, W)`): generated images, floats in [0, 1].
        reference (`str` or `ReferenceSets`): ``"digits"`` or a path (see `load_reference_sets`).
        features (`str` or `nn.Module`): ``"digits"``, ``"clip:PATH"`` or a feature module.
        seed (`int`): seeds KID's subsets and the floor's subsample.

    Returns:
        dict: the `compute_metrics` keys for the generated images, plus ``num_images``, ``num_reference_images``,
        ``features``, ``reference`` and ``real_data_floor`` (the same keys for real images, with its ``num_images``).

    Raises:
        NotEnoughSamplesError: too few images for a metric (the message says how many are needed).
    """
    if images.ndim != 4:
        raise NotEnoughSamplesError(f"expected generated images of shape (N, C, H, W), got {tuple(images.shape)}")
    return MetricScorer(reference, features, images.shape[-1], images.shape[1], seed=seed).score(images)


def format_metrics_table(metrics: dict) -> str:
    """A markdown table of the generated metrics next to the real-data floor (and their ratio for FID/KID/CMMD)."""
    floor = metrics.get("real_data_floor", {})
    rows = ["| metric | generated | real-data floor |", "|---|---:|---:|"]
    keys = [
        "fid", "kid_mean", "kid_std", "cmmd", "precision", "recall", "density", "coverage",
        "confident_share", "class_entropy_bits", "classes_covered",
    ]  # fmt: skip
    for key in keys:
        if key in metrics:
            value, base = metrics[key], floor.get(key, float("nan"))
            rows.append(f"| {key} | {_fmt(value)} | {_fmt(base)} |")
    rows.append(f"| images | {metrics.get('num_images')} | {floor.get('num_images')} |")
    for key in (
        "negative_elbo_nats", "nll_nats", "bits_per_dim", "png_bits_per_dim", "png_tiled_bits_per_dim",
        "class_accuracy", "mean_per_class_fid", "guidance_scale", "images_per_second", "nfe",
    ):  # fmt: skip
        if key in metrics:
            rows.append(f"| {key} | {_fmt(metrics[key])} | |")
    return "\n".join(rows)


def _fmt(value) -> str:
    if isinstance(value, int):
        return str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


__all__ = [
    "MetricScorer",
    "NotEnoughSamplesError",
    "ReferenceSets",
    "classifier_scores",
    "cmmd",
    "compute_metrics",
    "evaluate_images",
    "extract_features",
    "format_metrics_table",
    "frechet_distance",
    "kernel_inception_distance",
    "load_reference_sets",
    "minimum_samples",
    "precision_recall_density_coverage",
]
