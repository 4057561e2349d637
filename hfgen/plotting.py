"""Image grids and loss curves saved as PNG (matplotlib with the Agg backend; no display needed)."""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np
import torch
from PIL import Image


def save_figure(fig, path: str) -> str:
    """``tight_layout``, create the parent folders, save ``fig`` as PNG at ``path`` and close it. Returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pyplot():
    """`matplotlib.pyplot` with the non-interactive ``Agg`` backend: every hfgen figure is written to a PNG file, so
    nothing needs a display (the one place hfgen sets matplotlib up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def make_image_grid(images, nrow: int | None = None, padding: int = 1, scale: int | None = None) -> Image.Image:
    """Tile images into one PIL image.

    Args:
        images: a `torch.Tensor` or `np.ndarray` of shape `(B, C, H, W)` (tensor) or `(B, H, W, C)` (array) with
            values in [0, 1], or a list of PIL images of one size.
        nrow (`int`, *optional*): images per row; default ``ceil(sqrt(B))``.
        padding (`int`): pixels of white between images (in the unscaled image).
        scale (`int`, *optional*): nearest-neighbour upscaling factor; default makes each tile at least 64 px.

    Returns:
        `PIL.Image.Image` in mode ``L`` (one channel) or ``RGB``.

    Raises:
        ValueError: for an empty batch or an unsupported shape.
    """
    if isinstance(images, list):
        if not images:
            raise ValueError("make_image_grid needs at least one image")
        array = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])
    elif isinstance(images, torch.Tensor):
        array = images.detach().float().cpu().numpy()
        if array.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(array.shape)}")
        array = array.transpose(0, 2, 3, 1)
    else:
        array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[0] == 0 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected a non-empty batch of 1- or 3-channel images, got shape {array.shape}")
    array = array[..., :3]
    count, height, width, channels = array.shape
    nrow = nrow or math.ceil(math.sqrt(count))
    rows = math.ceil(count / nrow)
    grid = np.ones((rows * (height + padding) + padding, nrow * (width + padding) + padding, channels), np.float32)
    for index in range(count):
        r, c = divmod(index, nrow)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top : top + height, left : left + width] = array[index]
    grid = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    image = Image.fromarray(grid[..., 0] if channels == 1 else grid)
    scale = scale or max(1, math.ceil(64 / max(height, width)))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_image_grid(images, path: str, nrow: int | None = None, scale: int | None = None) -> str:
    """`make_image_grid` then save as PNG at ``path`` (parent folders created). Returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    make_image_grid(images, nrow=nrow, scale=scale).save(path)
    return path


def plot_loss_curves(
    history: dict[str, list[tuple[int, float]]], path: str, title: str = "Training loss", ylabel: str = "loss"
) -> str:
    """Plot each named series of ``(step, value)`` pairs (raw, faint, and a moving average) into a PNG.

    Returns ``path``. Series with no points are skipped; an empty history still writes an (empty) figure.
    """
    plt = pyplot()

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, points in history.items():
        if not points:
            continue
        steps = np.array([p[0] for p in points])
        values = np.array([p[1] for p in points], dtype=np.float64)
        line = ax.plot(steps, values, alpha=0.25, linewidth=0.8)[0]
        window = max(1, len(values) // 50)
        if window > 1:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, color=line.get_color(), label=f"{name} (moving average, {window})")
        else:
            line.set_alpha(1.0)
            line.set_label(name)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel)
    values_all = [v for points in history.values() for _, v in points]
    if values_all and all(v > 0 for v in values_all):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_image_rows(
    images,
    ncols: int,
    path: str,
    title: str | None = None,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
) -> str:
    """Save a grid of images with optional row/column labels and a title (matplotlib), as PNG.

    Args:
        images: `(R * ncols, C, H, W)` tensor in [0, 1] (row-major), or anything `make_image_grid` takes.
        ncols (`int`): images per row.
        path (`str`): output PNG path (parent folders created).
        title (`str`, *optional*), row_labels (`list[str]`, *optional*, one per row), col_labels (`list[str]`,
            *optional*, one per column).

    Returns:
        ``path``.
    """
    plt = pyplot()

    grid = make_image_grid(images, nrow=ncols, padding=1, scale=1)
    array = np.asarray(grid)
    count = len(images)
    nrows = math.ceil(count / ncols)
    height, width = array.shape[0], array.shape[1]
    tile_h, tile_w = (height - 1) / nrows, (width - 1) / ncols
    scale = 0.45 if max(tile_h, tile_w) <= 32 else 0.9
    fig_w = max(3.0, ncols * scale + (1.2 if row_labels else 0.2))
    if title:  # wrapped to the figure's width (about 13 characters of the 9-point title per inch)
        title = textwrap.fill(title, width=max(20, int(fig_w * 13)))
    title_lines = title.count("\n") + 1 if title else 0
    fig_h = max(1.5, nrows * scale + (0.45 + 0.15 * title_lines if title else 0.1) + (0.3 if col_labels else 0))
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=110)
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([1 + tile_w * (c + 0.5) for c in range(ncols)] if col_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=7)
        ax.xaxis.tick_top()
    ax.set_yticks([1 + tile_h * (r + 0.5) for r in range(nrows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_gan_training_curves(
    history: dict[str, list[tuple[int, float]]],
    eval_history: dict[str, list[tuple[int, float]]],
    path: str,
    title: str = "GAN",
) -> str:
    """GAN diagnostics in one PNG: the critic/discriminator and generator losses; the Wasserstein estimate (WGAN)
    or the discriminator's accuracy on real and fake images (BCE); the gradient penalty and the critic's mean
    gradient norm (WGAN-GP); MSGAN's mode-seeking ratio (with ``--mode_seeking_weight``); FID over training (with
    ``--eval_steps``). Panels without data are left out.

    Args:
        history: series name -> ``[(step, value)]`` as the training loop records it.
        eval_history: ``{"fid": [(step, value)], ...}``.

    Returns:
        ``path``.
    """
    plt = pyplot()

    panels = [
        (
            "losses",
            [
                k
                for k in ("discriminator_loss", "critic_loss", "generator_loss", "generator_adversarial_loss")
                if history.get(k)
            ],
            None,
        ),
        ("Wasserstein estimate E[D(x)] - E[D(G(z))]", [k for k in ("wasserstein_estimate",) if history.get(k)], None),
        (
            "discriminator accuracy",
            [k for k in ("discriminator_accuracy_real", "discriminator_accuracy_fake") if history.get(k)],
            (0, 1.02),
        ),
        (
            "gradient penalty and critic gradient norm",
            [k for k in ("gradient_penalty", "critic_gradient_norm") if history.get(k)],
            None,
        ),  # fmt: skip
        (
            "mode seeking: mean |G(z1) - G(z2)| / mean |z1 - z2|",
            [k for k in ("mode_seeking_ratio",) if history.get(k)],
            None,
        ),  # fmt: skip
    ]
    panels = [(name, keys, ylim, history) for name, keys, ylim in panels if keys]
    if eval_history.get("fid"):
        panels.append(("FID during training (--eval_steps)", ["fid"], None, eval_history))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(7, 2.6 * max(1, len(panels))), dpi=100, squeeze=False)
    for ax, (name, keys, ylim, source) in zip(axes[:, 0], panels):
        for key in keys:
            steps = np.array([p[0] for p in source[key]])
            values = np.array([p[1] for p in source[key]], dtype=np.float64)
            window = max(1, len(values) // 50)
            line = ax.plot(steps, values, alpha=0.25 if window > 1 else 1.0, linewidth=0.8)[0]
            if window > 1:
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                ax.plot(steps[window - 1 :], smooth, color=line.get_color(), label=key)
            else:
                line.set_label(key)
        ax.set_title(name, fontsize=9)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("generator step")
    fig.suptitle(f"{title} training curves", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_langevin_convergence(
    pipeline, path: str, num_images: int = 8, seed: int = 0, steps_per_level: int | None = None
) -> str:
    """How annealed Langevin samples converge through the noise levels: the same ``num_images`` chains at the end
    of each level σ_1 > ... > σ_L (one row per level), then after the final denoising step (last row).

    Args:
        pipeline (`AnnealedLangevinPipeline`): a trained NCSN pipeline.
        path (`str`): output PNG path. seed (`int`): the sampling seed. steps_per_level (`int`, *optional*): T.

    Returns:
        ``path``.
    """
    pipeline.set_progress_bar_config(disable=True)
    out = pipeline(
        batch_size=num_images,
        generator=torch.Generator().manual_seed(seed),
        steps_per_level=steps_per_level,
        denoise=True,
        return_intermediates=True,
        output_type="pt",
    )
    rows = torch.cat([out.intermediates.flatten(0, 1), out.images.cpu()])
    labels = [f"σ={sigma:.3g}" for sigma in out.sigmas] + ["denoised"]
    steps = pipeline.scheduler.steps_per_level
    return plot_image_rows(
        rows,
        ncols=num_images,
        path=path,
        title=f"Annealed Langevin dynamics, {steps} steps per level:\nthe same samples at the end of each level",
        row_labels=labels,
    )


def plot_guidance_sweep(rows: list[dict], path: str, title: str = "Classifier-free guidance") -> str:
    """The guidance sweep of a class-conditional diffusion model in one PNG: FID (with the real-data floor),
    precision and recall, and class accuracy against the guidance scale w.

    Args:
        rows: one dict per w with ``guidance_scale``, ``fid``, ``precision``, ``recall``, optionally
            ``class_accuracy`` and ``real_data_floor`` (``{"fid": ...}``), as `hfgen evaluate` returns them.
        path (`str`): the PNG to write (parent folders created).

    Returns:
        ``path``.
    """
    plt = pyplot()

    rows = sorted(rows, key=lambda row: row["guidance_scale"])
    w = [row["guidance_scale"] for row in rows]
    accuracy = [row.get("class_accuracy") for row in rows]
    panels = 3 if any(a is not None for a in accuracy) else 2
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.4), dpi=100)
    axes[0].plot(w, [row["fid"] for row in rows], "o-", label="generated")
    floors = [row.get("real_data_floor", {}).get("fid") for row in rows]
    if all(f is not None for f in floors):
        axes[0].plot(w, floors, "--", color="grey", label="real-data floor")
    axes[0].set_title("FID (lower is better)", fontsize=9)
    for key, marker in (("precision", "o-"), ("recall", "s-")):
        axes[1].plot(w, [row[key] for row in rows], marker, label=key)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("precision (fidelity) and recall (diversity)", fontsize=9)
    if panels == 3:
        axes[2].plot(w, [a if a is not None else np.nan for a in accuracy], "o-", color="tab:green")
        axes[2].set_ylim(0, 1.02)
        axes[2].set_title("class accuracy (the classifier agrees)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("guidance scale w (1 = no guidance)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
