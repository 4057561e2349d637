"""The report of `hfgen compare`: the Markdown table, the trilemma scores and figure, and the files written into
``OUTPUT_DIR`` (split from `hfgen.jobs.compare`, which trains and measures)."""

from __future__ import annotations

import json
import math
import os

SPEED_BATCH = 64  # images/s are measured sampling batches of this size
SHOWN_PER_MODEL = 12  # samples per row of samples.png
SPEED_DECADES = 4.0  # trilemma.png: speed score falls from 1 (fastest) to 0 over this many factors of 10


def _fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def compare_markdown(rows: list[dict], header: dict) -> str:
    """The comparison table (one row per family and sampler, failures included) with the real-data floor."""
    lines = [
        f"# The trilemma, measured: {header['data']} ({header['budget']}, {header['num_images']} images per "
        f"sampler, seed {header['seed']})",
        "",
        f"Command: `{header['command']}`",
        "",
        "| model (sampler) | FID (x floor) | precision | recall | coverage | classes / entropy (bits) | NFE | "
        f"images/s (batch {SPEED_BATCH}) | training | parameters | bits/dim |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    floor = None
    for row in rows:
        label = f"{row['model']} ({row['sampler']})" if row.get("sampler") else row["model"]
        if row["status"] != "ok":
            lines.append(f"| {label} | failed: {row['error']} | | | | | | | | | |")
            continue
        floor = floor or row
        classes = ("n/a" if row["classes_covered"] is None
                   else f"{row['classes_covered']} / {row['class_entropy_bits'] + 0.0:.2f}")  # fmt: skip
        bpd = _fmt(row["bits_per_dim"], ".3f") + (
            " (ELBO bound)" if row["likelihood"] == "negative ELBO bound" else ""
        )
        lines.append(
            f"| {label} | {row['fid']:.2f} ({row['fid'] / row['fid_floor']:.1f}x) | {row['precision']:.3f} | "
            f"{row['recall']:.3f} | {row['coverage']:.3f} | {classes} | {row['nfe']} | "
            f"{row['images_per_second']:.1f} | {_fmt(row['train_seconds'] and row['train_seconds'] / 60, '.1f')} min, "
            f"{row['train_steps']} steps | {row['num_parameters']:,} | {bpd} |"
        )
    if floor is not None:
        lines.append(
            f"| real-data floor ({floor['floor_num_images']} held-out images) | {floor['fid_floor']:.2f} | "
            f"{floor['precision_floor']:.3f} | {floor['recall_floor']:.3f} | {floor['coverage_floor']:.3f} "
            "| | | | | | |"
        )
    return "\n".join(lines) + "\n"


def trilemma_scores(rows: list[dict]) -> dict[str, tuple[float, float, float]]:
    """``"model (sampler)"`` -> ``(quality, coverage, speed)`` in [0, 1], 1 being the outer edge.

    quality = floor FID / FID; coverage = coverage / floor coverage (capped at 1); speed = 1 at the fastest
    sampler, minus 1 / `SPEED_DECADES` per factor of 10 slower (at least 0.02 so that the triangle stays visible).
    """
    ok = [row for row in rows if row["status"] == "ok"]
    fastest = max((row["images_per_second"] for row in ok), default=1.0)
    scores = {}
    for row in ok:
        quality = min(1.0, row["fid_floor"] / max(row["fid"], 1e-9))
        coverage = min(1.0, row["coverage"] / max(row["coverage_floor"], 1e-9))
        speed = max(0.02, 1 - math.log10(fastest / row["images_per_second"]) / SPEED_DECADES)
        scores[f"{row['model']} ({row['sampler']})"] = (quality, coverage, speed)
    return scores


def plot_trilemma(rows: list[dict], path: str, title: str) -> str:
    """One triangle per family and sampler: quality, coverage and speed, normalised by `trilemma_scores`."""
    from hfgen.plotting import pyplot

    plt = pyplot()
    import numpy as np

    scores = trilemma_scores(rows)
    failed = [row for row in rows if row["status"] != "ok"]
    count = len(scores) + len(failed)
    ncols = min(4, max(1, count))
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.3 * nrows + 1.0), dpi=100, squeeze=False)
    angles = np.deg2rad([90, 210, 330])
    corners = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    names = ("quality", "coverage", "speed")
    by_label = {f"{row['model']} ({row['sampler']})": row for row in rows if row["status"] == "ok"}
    for ax, (label, values) in zip(axes.flat, scores.items()):
        ax.fill(*corners.T, color="0.93", edgecolor="0.6", linestyle="--")
        for corner, name in zip(corners, names):
            ax.plot([0, corner[0]], [0, corner[1]], color="0.8", linewidth=0.8)
            ax.text(*(corner * 1.17), name, ha="center", va="center", fontsize=9)
        points = corners * np.maximum(np.asarray(values), 0.02)[:, None]
        ax.fill(*points.T, alpha=0.55, color="tab:blue", edgecolor="tab:blue", linewidth=1.5)
        for corner, value in zip(corners, values):
            ax.text(*(corner * 0.5 + np.array([0.0, -0.1])), f"{value:.2f}", ha="center", fontsize=8, color="0.25")
        row = by_label[label]
        ax.set_title(label, fontsize=10, fontweight="bold")
        ax.text(0, -0.72, f"FID {row['fid']:.1f} ({row['fid'] / row['fid_floor']:.1f}x floor)\ncoverage "
                f"{row['coverage']:.2f}, {row['images_per_second']:.3g} images/s", ha="center", va="top",
                fontsize=8)  # fmt: skip
    for ax, row in zip(list(axes.flat)[len(scores) :], failed):
        ax.set_title(row["model"], fontsize=10, fontweight="bold")
        ax.text(0, 0, "failed:\n" + "\n".join(_wrap(row["error"] or "", 34)[:6]), ha="center", va="center",
                fontsize=8, color="tab:red")  # fmt: skip
    for ax in axes.flat:
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-1.25, 1.3)
        ax.set_aspect("equal")
        ax.axis("off")
    explanation = (
        "Dashed outer edge: the real-data floor (quality = floor FID / FID; coverage = coverage / floor coverage) "
        f"and the fastest sampler (speed: -1/{SPEED_DECADES:g} per 10x slower). Bigger is better on every axis."
    )
    fig.suptitle(title + "\n" + "\n".join(_wrap(explanation, int(42 * ncols))), fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def write_outputs(
    output_dir: str, rows: list[dict], header: dict, shown: list, shown_labels: list[str], versions: dict
) -> None:
    """``compare.md``, ``compare.json`` (every number, the command and ``versions``), ``trilemma.png`` and
    ``samples.png`` (``shown``: one `(N, C, H, W)` tensor in [0, 1] per family, labelled ``shown_labels``)."""
    import torch

    with open(os.path.join(output_dir, "compare.md"), "w") as handle:
        handle.write(compare_markdown(rows, header))
    payload = {**header, "versions": versions, "rows": rows}
    tmp = os.path.join(output_dir, "compare.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, os.path.join(output_dir, "compare.json"))
    title = f"The trilemma on {header['data']} ({header['budget']})"
    plot_trilemma(rows, os.path.join(output_dir, "trilemma.png"), title)
    if shown:
        from hfgen.plotting import plot_image_rows

        plot_image_rows(
            torch.cat([images.float() for images in shown]),
            SHOWN_PER_MODEL,
            os.path.join(output_dir, "samples.png"),
            title=f"The first {SHOWN_PER_MODEL} samples of every family ({header['data']}, seed {header['seed']})",
            row_labels=shown_labels,
        )


def equivalent_command(
    names, budget_minutes, max_train_steps, num_images, output_dir, seed, data_flags, mixed_precision="no"
) -> str:
    """The `hfgen compare` line that repeats a Python `hfgen.compare(...)` call, for the outputs' "Command:"."""
    parts = ["hfgen compare", f"--models {','.join(names)}"]
    parts.append(f"--max_train_steps {max_train_steps}" if max_train_steps else f"--budget_minutes {budget_minutes:g}")
    parts += [f"--num_images {num_images}", f"--output_dir {output_dir}", f"--seed {seed}"]
    parts += [f"--mixed_precision {mixed_precision}"] if mixed_precision != "no" else []
    parts += [f"--{key} {value}" for key, value in data_flags.items() if value is not None]
    return " ".join(parts)
