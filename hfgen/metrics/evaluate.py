"""Evaluate a trained hfgen folder: sample, time, score against real data (with the floor), record the results.

`evaluate_pipeline` powers `hfgen evaluate OUTPUT_DIR`; `compare_samplers` powers `hfgen compare-samplers OUTPUT_DIR`.
Results go to ``OUTPUT_DIR/metrics.json`` (merged with earlier evaluations) and into the model card (YAML
``model-index`` and an "Evaluation" section).
"""

from __future__ import annotations

import json
import os
import time

import torch

from hfgen.errors import HfgenError
from hfgen.metrics.image_quality import MetricScorer, format_metrics_table

DEFAULT_SAMPLER_CONFIGS = [
    ("ddpm", 1000),
    ("ddim", 100),
    ("ddim", 50),
    ("ddim", 20),
    ("ddim", 10),
    ("dpmsolver++", 20),
    ("dpmsolver++", 10),
    ("sde-dpmsolver++", 20),
]
CARD_START = "<!-- hfgen:evaluation:start -->"
CARD_END = "<!-- hfgen:evaluation:end -->"


def _sample(pipeline, num_images, scheduler, num_inference_steps, batch_size, seed, pipeline_kwargs=None):
    from hfgen.pipelines.sampling import sample_images

    start = time.perf_counter()
    result = sample_images(
        pipeline,
        num_images=num_images,
        scheduler=scheduler,
        num_inference_steps=num_inference_steps,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
        pipeline_kwargs=pipeline_kwargs,
    )
    return result, time.perf_counter() - start


def evaluate_pipeline(
    output_dir: str,
    num_images: int = 1000,
    scheduler: str | None = None,
    num_inference_steps: int | None = None,
    reference: str = "digits",
    features: str = "digits",
    batch_size: int = 250,
    seed: int = 0,
    write: bool = True,
    pipeline_kwargs: dict | None = None,
) -> dict:
    """Sample ``num_images`` from a trained folder, time it and compute every metric with its real-data floor.

    Args:
        output_dir (`str`): a trained hfgen folder (or Hub repo id; results are then not written).
        num_images (`int`): images to generate (FID with 64-d digits features needs at least 65).
        scheduler (`str`, *optional*), num_inference_steps (`int`, *optional*): diffusion sampler (see
            `hfgen sample`); default: as trained.
        reference (`str`): ``"digits"`` or a path of real images. features (`str`): ``"digits"``, ``"clip:PATH"`` or
            ``"inception:PATH"``.
        batch_size (`int`): images per network batch. seed (`int`): sampling noise, KID subsets, floor subsample.
        write (`bool`): merge the result into ``metrics.json`` and the model card.
        pipeline_kwargs (`dict`, *optional*): extra arguments for the pipeline's own sampler (e.g. NCSN's
            ``{"denoise": False}``); recorded in the result and its ``metrics.json`` key.

    Returns:
        dict with ``fid``, ``kid_mean``, ``kid_std``, ``cmmd``, ``precision``, ``recall``, ``density``,
        ``coverage`` (+ classifier scores with digits features), ``images_per_second``, ``nfe``, ``scheduler``,
        ``num_inference_steps``, ``real_data_floor`` and bookkeeping fields. Pipelines with a
        ``likelihood_metrics(images, generator)`` method (VAE) add its figures on the held-out reference images,
        e.g. ``negative_elbo_nats`` and ``bits_per_dim``.

    Raises:
        NotEnoughSamplesError, CheckpointError, UnknownNameError, DatasetError: with a message naming the fix.
    """
    from hfgen.pipelines import load_pipeline

    if num_images <= 0:
        raise HfgenError(f"--num_images must be positive, got {num_images}")
    pipeline = load_pipeline(output_dir)
    result, seconds = _sample(pipeline, num_images, scheduler, num_inference_steps, batch_size, seed, pipeline_kwargs)
    scorer = MetricScorer(reference, features, result.images.shape[-1], result.images.shape[1], seed)
    metrics = scorer.score(result.images)
    if callable(getattr(pipeline, "likelihood_metrics", None)):  # VAE (negative ELBO), flows (exact likelihood)
        held_out = scorer.sets.reference * 2 - 1
        metrics.update(pipeline.likelihood_metrics(held_out, generator=torch.Generator().manual_seed(seed)))
        metrics["likelihood_data"] = scorer.sets.name
        if "nll_nats" in metrics:  # exact likelihood (flows): next to what PNG spends on the same images
            from hfgen.metrics.likelihood import png_bits_per_dim

            metrics.update(png_bits_per_dim(held_out))
    metrics.update(
        scheduler=result.scheduler_name,
        num_inference_steps=result.num_inference_steps,
        nfe=result.network_evaluations,
        images_per_second=num_images / seconds,
        sampling_seconds=seconds,
        seed=seed,
    )
    if pipeline_kwargs:
        metrics["pipeline_kwargs"] = dict(pipeline_kwargs)
    if write and os.path.isdir(output_dir):
        write_metrics(output_dir, metrics)
        update_model_card(output_dir)
    return metrics


def evaluation_key(metrics: dict) -> str:
    """The key of one evaluation in ``metrics.json["evaluations"]``, e.g. ``DDIMScheduler-50steps-1000images``
    (``-denoise=False`` and the like appended for ``pipeline_kwargs``)."""
    extra = "".join(f"-{k}={v}" for k, v in sorted(metrics.get("pipeline_kwargs", {}).items()))
    return f"{metrics['scheduler']}-{metrics['num_inference_steps']}steps-{metrics['num_images']}images{extra}"


def write_metrics(output_dir: str, metrics: dict) -> str:
    """Merge ``metrics`` into ``OUTPUT_DIR/metrics.json``: its keys at the top level (the latest evaluation) and
    under ``evaluations[<key>]`` next to earlier ones. Written atomically. Returns the path."""
    path = os.path.join(output_dir, "metrics.json")
    existing = {}
    if os.path.isfile(path):
        try:
            with open(path) as handle:
                existing = json.load(handle)
        except ValueError:
            existing = {}
    evaluations = existing.get("evaluations", {})
    evaluations[evaluation_key(metrics)] = metrics
    merged = {**{k: v for k, v in existing.items() if k != "evaluations"}, **metrics, "evaluations": evaluations}
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(merged, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def update_model_card(output_dir: str) -> None:
    """Put every evaluation of ``metrics.json`` into the model card: YAML ``model-index`` and an Evaluation section.

    Does nothing when the folder has no ``README.md``.
    """
    from huggingface_hub import EvalResult, ModelCard

    card_path = os.path.join(output_dir, "README.md")
    metrics_path = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(card_path) or not os.path.isfile(metrics_path):
        return
    with open(metrics_path) as handle:
        evaluations = json.load(handle).get("evaluations", {})
    card = ModelCard.load(card_path)
    name = card.data.model_name or os.path.basename(os.path.normpath(output_dir))
    card.data.model_name = name
    dataset = (card.data.datasets or ["digits"])[0]
    results = []
    lines = [
        CARD_START,
        "## Evaluation",
        "",
        "Measured with `hfgen evaluate` against real images; the real-data floor is the same metric between two real "
        "sets of the same size (what a perfect model would score).",
        "",
        "| sampler | steps | images | FID (floor) | KID (floor) | CMMD (floor) | precision | recall | coverage | "
        "images/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for metrics in evaluations.values():
        floor = metrics.get("real_data_floor", {})
        config = f"{metrics['scheduler']} {metrics['num_inference_steps']} steps, {metrics['features']} features"
        for key, label in (("fid", "FID"), ("kid_mean", "KID"), ("cmmd", "CMMD"), ("coverage", "coverage")):
            results.append(
                EvalResult(
                    task_type="unconditional-image-generation",
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type=key,
                    metric_value=round(float(metrics[key]), 5),
                    metric_name=f"{label} ({config})",
                )
            )
        lines.append(
            f"| {metrics['scheduler']} | {metrics['num_inference_steps']} | {metrics['num_images']} | "
            f"{metrics['fid']:.3f} ({floor.get('fid', float('nan')):.3f}) | "
            f"{metrics['kid_mean']:.3f} ({floor.get('kid_mean', float('nan')):.3f}) | "
            f"{metrics['cmmd']:.4f} ({floor.get('cmmd', float('nan')):.4f}) | {metrics['precision']:.3f} | "
            f"{metrics['recall']:.3f} | {metrics['coverage']:.3f} | {metrics['images_per_second']:.1f} |"
        )
    for metrics in evaluations.values():
        if "negative_elbo_nats" in metrics:
            results.append(
                EvalResult(
                    task_type="unconditional-image-generation",
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type="negative_elbo",
                    metric_value=round(float(metrics["negative_elbo_nats"]), 3),
                    metric_name="negative ELBO on held-out images (nats per image)",
                )
            )
            lines += [
                "",
                f"Negative ELBO on {metrics['num_likelihood_images']} held-out images ({metrics['likelihood']} "
                f"likelihood): **{metrics['negative_elbo_nats']:.2f} nats per image**, "
                f"{metrics['bits_per_dim']:.3f} bits per dimension.",
            ]
            break
    lines.append(CARD_END)
    card.data.eval_results = results
    text = str(card.content)
    section = "\n".join(lines)
    if CARD_START in text and CARD_END in text:
        before, rest = text.split(CARD_START, 1)
        text = before + section + rest.split(CARD_END, 1)[1]
    else:
        marker = "\n## Training"
        text = text.replace(marker, "\n" + section + "\n" + marker, 1) if marker in text else text + "\n" + section
    card.content = text
    card.save(card_path)


def parse_sampler_configs(spec: str | None) -> list[tuple[str, int]]:
    """``"ddim:50,euler:30"`` -> ``[("ddim", 50), ("euler", 30)]``.

    Raises:
        HfgenError: for an entry that is not ``NAME:STEPS`` with positive STEPS.
    """
    if not spec:
        return []
    configs = []
    for item in spec.split(","):
        name, _, steps = item.strip().rpartition(":")
        if not name or not steps.isdigit() or int(steps) <= 0:
            raise HfgenError(f"--schedulers entries must look like NAME:STEPS (e.g. euler:30), got {item!r}")
        configs.append((name, int(steps)))
    return configs


def compare_samplers(
    output_dir: str,
    num_images: int = 500,
    configs: list[tuple[str, int]] | None = None,
    extra_configs: list[tuple[str, int]] | None = None,
    reference: str = "digits",
    features: str = "digits",
    batch_size: int = 250,
    seed: int = 0,
) -> list[dict]:
    """Sample a diffusion folder with several schedulers (same seed, same count) and compare quality and speed.

    Writes ``sampler_comparison.md``, ``sampler_comparison.json`` (a list of rows) and ``sampler_comparison.png``
    (FID against network evaluations, log x axis) into ``output_dir``. DDPM with the trained number of steps is
    always the first row: ``speedup_vs_ddpm`` is measured against it.

    Returns:
        the rows: dicts with ``scheduler``, ``num_inference_steps``, ``nfe``, ``fid``, ``kid_mean``, ``kid_std``,
        ``cmmd``, ``precision``, ``recall``, ``coverage``, ``images_per_second``, ``seconds``, ``speedup_vs_ddpm``.

    Raises:
        HfgenError: for a folder that is not a diffusion model (no scheduler to swap).
    """
    from tqdm.auto import tqdm

    from hfgen.pipelines import load_pipeline

    pipeline = load_pipeline(output_dir)
    if "scheduler" not in getattr(pipeline, "components", {}):
        raise HfgenError(f"{output_dir} is not a diffusion model: compare-samplers needs a scheduler to swap")
    trained_steps = pipeline.scheduler.config.num_train_timesteps
    configs = list(configs or [(n, trained_steps if n == "ddpm" else s) for n, s in DEFAULT_SAMPLER_CONFIGS])
    configs += extra_configs or []
    if not any(name == "ddpm" for name, _ in configs):
        configs.insert(0, ("ddpm", trained_steps))
    scorer = None
    rows = []
    for name, steps in tqdm(configs, desc="Samplers", unit="sampler"):
        result, seconds = _sample(pipeline, num_images, name, steps, batch_size, seed)
        if scorer is None:
            scorer = MetricScorer(reference, features, result.images.shape[-1], result.images.shape[1], seed)
        metrics = scorer.score(result.images)
        rows.append(
            {
                "scheduler": name,
                "scheduler_class": result.scheduler_name,
                "num_inference_steps": steps,
                "nfe": result.network_evaluations,
                "num_images": num_images,
                **{k: metrics[k] for k in ("fid", "kid_mean", "kid_std", "cmmd", "precision", "recall", "coverage")},
                "images_per_second": num_images / seconds,
                "seconds": seconds,
            }
        )
    baseline = next(row for row in rows if row["scheduler"] == "ddpm")
    for row in rows:
        row["speedup_vs_ddpm"] = baseline["seconds"] / row["seconds"]
    floor = scorer.floor(num_images)
    _write_comparison(output_dir, rows, floor, scorer.features_name)
    return rows


def comparison_markdown(rows: list[dict], floor: dict) -> str:
    """The sampler comparison as a markdown table, with the real-data floor as the last line."""
    lines = [
        "| sampler | steps | NFE | FID | KID | coverage | images/s | speed-up vs DDPM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['scheduler']} | {row['num_inference_steps']} | {row['nfe']} | {row['fid']:.3f} | "
            f"{row['kid_mean']:.3f} ± {row['kid_std']:.3f} | {row['coverage']:.3f} | {row['images_per_second']:.1f} | "
            f"{row['speedup_vs_ddpm']:.1f}x |"
        )
    lines.append(
        f"| real-data floor | | | {floor['fid']:.3f} | {floor['kid_mean']:.3f} ± {floor['kid_std']:.3f} | "
        f"{floor['coverage']:.3f} | | |"
    )
    return "\n".join(lines)


def _write_comparison(output_dir: str, rows: list[dict], floor: dict, features: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_images = rows[0]["num_images"]
    with open(os.path.join(output_dir, "sampler_comparison.md"), "w") as handle:
        handle.write(
            f"# Sampler comparison ({num_images} images each, same seed, {features} features)\n\n"
            + comparison_markdown(rows, floor)
            + "\n"
        )
    with open(os.path.join(output_dir, "sampler_comparison.json"), "w") as handle:
        json.dump(rows, handle, indent=2)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for name in dict.fromkeys(row["scheduler"] for row in rows):
        points = sorted((r["nfe"], r["fid"]) for r in rows if r["scheduler"] == name)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.axhline(floor["fid"], color="grey", linestyle="--", label=f"real-data floor ({floor['fid']:.2f})")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per image (log scale)")
    ax.set_ylabel(f"FID ({features} features; lower is better)")
    ax.set_title(f"Sample quality vs sampling cost ({num_images} images)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, "sampler_comparison.png"))
    plt.close(fig)


__all__ = [
    "DEFAULT_SAMPLER_CONFIGS",
    "compare_samplers",
    "comparison_markdown",
    "evaluate_pipeline",
    "format_metrics_table",
    "parse_sampler_configs",
    "update_model_card",
    "write_metrics",
]
