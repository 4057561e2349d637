"""The guidance sweep of a class-conditional diffusion model (`hfgen evaluate --guidance_scales 0,1,2,3,5`).

Classifier-free guidance (Ho & Salimans 2022) trades diversity for fidelity with one number, w. For each w the
folder is evaluated as `hfgen evaluate` does (equal numbers of every class, the same seed), and the results are
written as ``guidance_sweep.md``, ``guidance_sweep.json`` and ``guidance_sweep.png`` (FID, precision, recall and class
accuracy against w) into the folder; each evaluation is also merged into ``metrics.json``.
"""

from __future__ import annotations

import json
import os

from hfgen.errors import HfgenError

SWEEP_NAME = "guidance_sweep"


def parse_guidance_scales(text: str) -> list[float]:
    """``"0,1,2,3,5"`` -> ``[0.0, 1.0, 2.0, 3.0, 5.0]``.

    Raises:
        ValueError: an empty list, or a value that is not a finite number >= 0.
    """
    import math

    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"not a number: {part!r} (pass e.g. 0,1,2,3,5)") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"guidance scales must be finite numbers >= 0, got {part!r}")
        values.append(value)
    if not values:
        raise ValueError("pass at least one guidance scale, e.g. 0,1,2,3,5")
    return values


def format_sweep_table(rows: list[dict]) -> str:
    """A markdown table: w, FID (floor), precision, recall, class accuracy, coverage, images/s."""
    lines = [
        "| guidance w | FID (floor) | precision | recall | coverage | class accuracy | images/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        accuracy = row.get("class_accuracy")
        lines.append(
            f"| {row['guidance_scale']:g} | {row['fid']:.2f} ({row['real_data_floor']['fid']:.2f}) | "
            f"{row['precision']:.3f} | {row['recall']:.3f} | {row['coverage']:.3f} | "
            f"{'n/a' if accuracy is None else f'{accuracy:.3f}'} | {row['images_per_second']:.1f} |"
        )
    return "\n".join(lines)


def guidance_sweep(
    output_dir: str,
    guidance_scales: list[float],
    num_images: int = 1000,
    scheduler_name: str | None = None,
    num_inference_steps: int | None = None,
    reference: str = "auto",
    features: str = "auto",
    batch_size: int = 250,
    seed: int = 0,
    pipeline_kwargs: dict | None = None,
    mixed_precision: str = "no",
    scheduler_config: dict | None = None,
) -> list[dict]:
    """Evaluate a class-conditional DDPM/NCSN folder at each guidance scale and write the sweep.

    Args:
        output_dir (`str`): a trained ``--class_conditional`` DDPM or NCSN folder (written into).
        guidance_scales (`list[float]`): the w values, each >= 0 (0: unconditional, 1: conditional, > 1: guided).
        num_images, scheduler_name, num_inference_steps, reference, features, batch_size, seed, pipeline_kwargs,
            mixed_precision, scheduler_config: as in `hfgen.jobs.evaluate.evaluate_pipeline`, the same for every w.

    Returns:
        One metrics dict per w (in the order given), as `evaluate_pipeline` returns them.

    Raises:
        HfgenError: a folder that is not a local class-conditional diffusion model.
    """
    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.pipelines import load_pipeline
    from hfgen.plotting import plot_guidance_sweep

    if not os.path.isdir(output_dir):
        raise HfgenError(f"{output_dir} is not a local folder; the guidance sweep writes its results there")
    pipeline = load_pipeline(output_dir)
    if not getattr(pipeline, "num_classes", None) or not hasattr(pipeline, "unet"):
        raise HfgenError(
            f"{output_dir} holds a {type(pipeline).__name__}; --guidance_scales needs a class-conditional DDPM or "
            "NCSN (hfgen train ddpm --class_conditional)"
        )
    del pipeline
    rows = []
    for w in guidance_scales:
        print(f"guidance scale {w:g}:")
        metrics = evaluate_pipeline(
            output_dir,
            num_images=num_images,
            scheduler_name=scheduler_name,
            num_inference_steps=num_inference_steps,
            reference=reference,
            features=features,
            batch_size=batch_size,
            seed=seed,
            pipeline_kwargs=pipeline_kwargs,
            guidance_scale=w,
            mixed_precision=mixed_precision,
            scheduler_config=scheduler_config,
        )
        accuracy = metrics.get("class_accuracy")
        print(
            f"  FID {metrics['fid']:.2f}, precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}"
            + ("" if accuracy is None else f", class accuracy {accuracy:.3f}")
        )
        rows.append(metrics)
    title = (
        f"Guidance sweep of {os.path.basename(os.path.normpath(os.path.abspath(output_dir)))}: {rows[0]['scheduler']} "
        f"{rows[0]['num_inference_steps']} steps, {num_images} images, seed {seed}"
    )
    plot_guidance_sweep(rows, os.path.join(output_dir, f"{SWEEP_NAME}.png"), title=title)
    with open(os.path.join(output_dir, f"{SWEEP_NAME}.md"), "w") as handle:
        handle.write(f"# {title}\n\n{format_sweep_table(rows)}\n")
    with open(os.path.join(output_dir, f"{SWEEP_NAME}.json"), "w") as handle:
        json.dump(rows, handle, indent=2, sort_keys=True)
    return rows


__all__ = ["format_sweep_table", "guidance_sweep", "parse_guidance_scales"]
