"""Likelihood-based out-of-distribution detection with a trained flow (`hfgen ood OUTPUT_DIR`).

Three scores per image, each "higher = more out-of-distribution":

- ``nll``: the flow's negative log-likelihood in bits per dimension. Nalisnick et al. 2019 ("Do deep generative
  models know what they don't know?") showed that it often ranks OOD data as *more* likely (AUROC < 0.5).
- ``typicality``: |NLL(x) - mean NLL of the training images| (the per-sample form of the typicality test of
  Nalisnick et al. 2019b / Choi et al.): atypically *high* likelihood is suspicious too.
- ``complexity``: S(x) = NLL(x) - L(x), both in bits per dimension, with L the PNG length of the image (Serrà et
  al. 2020, "Input complexity and out-of-distribution detection with likelihood-based generative models").

AUROC (scikit-learn) for in-distribution held-out images against each OOD set; 0.5 is chance, 1 perfect.

Built-in OOD sets (offline): ``noise`` (uniform noise images), ``constant`` (one random grey level per image: the
simplest images, which likelihoods tend to over-rate), ``flipped`` (the held-out digits upside down),
``clevr`` (CLEVR-style scenes drawn by the VQA data generator), or a path (image folder, ``.npy``, ``save_to_disk``).
"""

from __future__ import annotations

import json
import os

import torch

from hfgen.errors import DatasetError, HfgenError

BUILT_IN_OOD = ("noise", "constant", "flipped", "clevr")
SCORES = ("nll", "typicality", "complexity")


def load_ood_images(spec: str, in_images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The OOD images named by ``spec``, at the size and channels of ``in_images`` (`(N, C, H, W)` in [-1, 1]).

    Raises:
        DatasetError: for an unknown name, a missing path or an unreadable set.
    """
    from hfgen.data.images.decoding import images_to_tensor
    from hfgen.data.images.formats import load_image_dataset

    count, channels, size = len(in_images), in_images.shape[1], in_images.shape[-1]
    if spec == "noise":
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (count, channels, size, size), generator=generator).float() / 127.5 - 1
    if spec == "constant":  # the simplest images there are: one grey level each (8-bit values)
        generator = torch.Generator().manual_seed(seed)
        levels = torch.randint(0, 256, (count, 1, 1, 1), generator=generator).float() / 127.5 - 1
        return levels.expand(count, channels, size, size).clone()
    if spec == "flipped":
        return in_images.flip(-2)
    if spec == "clevr":  # CLEVR-style scenes from the VQA data generator, drawn in memory
        from datasets import Dataset

        from hfgen.data.clevr import draw_scenes

        scenes = Dataset.from_dict({"image": draw_scenes(count, seed=seed)})
        images, _ = images_to_tensor(scenes, resolution=size, num_channels=channels)
        return images
    if not os.path.exists(spec):
        raise DatasetError(f"OOD set {spec!r} is neither a built-in ({', '.join(BUILT_IN_OOD)}) nor an existing path")
    images, _ = images_to_tensor(load_image_dataset(train_data_dir=spec), resolution=size, num_channels=channels)
    return images


def ood_scores(pipeline, images: torch.Tensor, train_mean_nll: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """The three scores of ``images`` (`(N, C, H, W)` in [-1, 1]), each `(N,)`, bits per dimension."""
    from hfgen.metrics.likelihood import png_bits_per_image

    dims = images[0].numel()
    nll = pipeline.bits_per_dim(images, generator=torch.Generator().manual_seed(seed)).double().cpu()
    png = png_bits_per_image(images) / dims
    return {"nll": nll, "typicality": (nll - train_mean_nll).abs(), "complexity": nll - png}


def auroc(in_scores: torch.Tensor, out_scores: torch.Tensor) -> float:
    """Area under the ROC curve for telling ``out_scores`` (positives) from ``in_scores`` by thresholding."""
    from sklearn.metrics import roc_auc_score

    labels = [0] * len(in_scores) + [1] * len(out_scores)
    return float(roc_auc_score(labels, torch.cat([in_scores, out_scores]).numpy()))


def detect_ood(output_dir: str, out_specs: list[str], in_dist: str = "digits", seed: int = 0,
               results_dir: str | None = None) -> list[dict]:  # fmt: skip
    """Score held-out in-distribution images and each OOD set with a trained flow; write the AUROC table
    (``ood.md``, ``ood.json``) and the likelihood histograms (``ood_histograms.png``) into ``results_dir``
    (default ``OUTPUT_DIR/ood``).

    Args:
        output_dir (`str`): a trained ``realnvp`` folder.
        out_specs (`list[str]`): OOD sets (see `load_ood_images`).
        in_dist (`str`): ``"digits"`` (held-out test split; training mean NLL from the train split) or a path.

    Returns:
        one dict per OOD set: ``ood``, ``num_images``, ``auroc_nll``, ``auroc_typicality``, ``auroc_complexity``,
        ``mean_bits_per_dim``; plus a first row for the in-distribution set.

    Raises:
        HfgenError: for a folder without a likelihood (not a flow); DatasetError: unusable data.
    """
    from hfgen.data.images.decoding import images_to_tensor
    from hfgen.data.images.formats import load_image_dataset
    from hfgen.pipelines import load_pipeline

    pipeline = load_pipeline(output_dir)
    if not callable(getattr(pipeline, "bits_per_dim", None)):
        raise HfgenError(f"{output_dir} holds a {type(pipeline).__name__}, which has no exact likelihood; "
                         "`hfgen ood` needs a flow (hfgen train realnvp)")  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    if not out_specs:
        raise HfgenError("name at least one OOD set with --out (e.g. noise flipped PATH)")
    config = pipeline.flow.config
    size, channels = config.sample_size, config.in_channels
    if in_dist == "digits":
        held_out, _ = images_to_tensor(load_image_dataset("digits", split="test"), size, channels)
        train, _ = images_to_tensor(load_image_dataset("digits", split="train"), size, channels)
    else:
        images, _ = images_to_tensor(load_image_dataset(train_data_dir=in_dist), size, channels)
        half = len(images) // 2
        train, held_out = images[:half], images[half:]
    train_mean = float(pipeline.bits_per_dim(train, generator=torch.Generator().manual_seed(seed)).mean())
    in_scores = ood_scores(pipeline, held_out, train_mean, seed)
    rows = [{"ood": f"{in_dist} (in-distribution, held out)", "num_images": len(held_out),
             "mean_bits_per_dim": float(in_scores["nll"].mean())}]  # fmt: skip
    all_scores = {rows[0]["ood"]: in_scores}
    for spec in out_specs:
        images = load_ood_images(spec, held_out, seed)
        scores = ood_scores(pipeline, images, train_mean, seed)
        row = {"ood": spec, "num_images": len(images), "mean_bits_per_dim": float(scores["nll"].mean())}
        row.update({f"auroc_{name}": auroc(in_scores[name], scores[name]) for name in SCORES})
        rows.append(row)
        all_scores[spec] = scores
    results_dir = results_dir or os.path.join(output_dir, "ood")
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "ood.json"), "w") as handle:
        json.dump({"train_mean_bits_per_dim": train_mean, "rows": rows}, handle, indent=2)
    with open(os.path.join(results_dir, "ood.md"), "w") as handle:
        handle.write(ood_markdown(rows) + "\n")
    plot_ood_histograms(all_scores, os.path.join(results_dir, "ood_histograms.png"))
    return rows


def ood_markdown(rows: list[dict]) -> str:
    """The AUROC table (higher is better; 0.5 is chance) as markdown."""
    lines = ["| data | images | mean bits/dim | AUROC NLL | AUROC typicality | AUROC complexity (Serrà) |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        cells = [f"{row[f'auroc_{s}']:.3f}" if f"auroc_{s}" in row else "" for s in SCORES]
        lines.append(
            f"| {row['ood']} | {row['num_images']} | {row['mean_bits_per_dim']:.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def plot_ood_histograms(scores: dict[str, dict[str, torch.Tensor]], path: str) -> str:
    """Histograms of each set's bits/dim and complexity-corrected score, one panel per score. Returns ``path``."""
    from hfgen.plotting import pyplot

    plt = pyplot()

    from hfgen.plotting import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    titles = {
        "nll": "negative log-likelihood (bits/dim)",
        "complexity": "NLL − PNG length (bits/dim), Serrà et al. 2020",
    }
    for ax, key in zip(axes, ("nll", "complexity")):
        title = titles[key]
        reference = next(iter(scores.values()))[key]  # the in-distribution set sets the visible range
        low, high = torch.quantile(reference, 0.005).item(), torch.quantile(reference, 0.995).item()
        spread = max(high - low, 1e-6)
        low, high = low - 2 * spread, high + 2 * spread
        for name, values in scores.items():
            shown = values[key][(values[key] >= low) & (values[key] <= high)]
            outside = len(values[key]) - len(shown)
            label = name + (f" ({outside} outside the range)" if outside else "")
            ax.hist(shown.numpy(), bins=40, range=(low, high), alpha=0.5, density=bool(len(shown)), label=label)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
