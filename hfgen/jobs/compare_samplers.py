"""`hfgen compare-samplers OUTPUT_DIR`: sample one diffusion model with several schedulers (same seed, same count) and
compare quality and speed next to the real-data floor."""

from __future__ import annotations

import json
import os

import torch

from hfgen.errors import HfgenError, UnknownNameError
from hfgen.jobs.evaluate import make_scorer, sample_timed

SHOWN_PER_SAMPLER = 16  # images per sampler in sampler_samples.png
FLOOR_KEYS = ("fid", "kid_mean", "kid_std", "precision", "recall", "coverage")
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


def _sampler_configs(configs, extra_configs, trained_steps: int) -> list[tuple[str, int]]:
    """The ``(scheduler, steps)`` pairs to run: ``configs`` (default: `DEFAULT_SAMPLER_CONFIGS` with DDPM at
    ``trained_steps`` and without step counts of ``trained_steps`` or more), then ``extra_configs``, with DDPM at
    ``trained_steps`` first when no DDPM entry is there.

    Raises:
        HfgenError: for a given entry with more steps than ``trained_steps``.
    """
    chosen = list(configs or []) + list(extra_configs or [])
    too_many = [f"{n}:{s}" for n, s in chosen if s > trained_steps]
    if too_many:
        raise HfgenError(
            f"{', '.join(too_many)}: more steps than the {trained_steps} the model was trained with; "
            f"use at most {trained_steps}"
        )
    if not configs:  # the defaults, without the step counts a short schedule does not have
        defaults = [(n, trained_steps if n == "ddpm" else s) for n, s in DEFAULT_SAMPLER_CONFIGS]
        configs = [(n, s) for n, s in defaults if n == "ddpm" or s < trained_steps]  # fewer steps than trained
    configs = list(configs) + list(extra_configs or [])
    if not any(name == "ddpm" for name, _ in configs):
        configs.insert(0, ("ddpm", trained_steps))
    return configs


def compare_samplers(
    output_dir: str,
    num_images: int = 500,
    configs: list[tuple[str, int]] | None = None,
    extra_configs: list[tuple[str, int]] | None = None,
    reference: str = "auto",
    features: str = "auto",
    batch_size: int = 250,
    seed: int = 0,
    mixed_precision: str = "no",
    scheduler_config: dict | None = None,
) -> list[dict]:
    """Sample a diffusion folder with several schedulers (same seed, same count) and compare quality and speed.

    Writes ``sampler_comparison.md``, ``sampler_comparison.json`` (a list of rows), ``sampler_comparison.png``
    (FID against network evaluations, log x axis) and ``sampler_samples.png`` (the first 16 samples of each sampler,
    one row each) into ``output_dir``. DDPM with the trained number of steps is
    always the first row: ``speedup_vs_ddpm`` is measured against it.

    Returns:
        the rows: dicts with ``scheduler``, ``num_inference_steps``, ``nfe``, ``fid``, ``kid_mean``, ``kid_std``,
        ``cmmd``, ``precision``, ``recall``, ``coverage``, ``images_per_second``, ``seconds``, ``speedup_vs_ddpm`` and
        ``real_data_floor`` (the metrics of ``num_images`` real held-out images; the same in every row).

    ``mixed_precision="bf16"`` samples every row with the denoiser in bf16 autocast
    (`hfgen.pipelines.sampling.sample_images`); each row records it. ``scheduler_config`` (e.g.
    ``{"timestep_spacing": "trailing", "clip_sample": False}``) replaces those config options in every row's
    scheduler that has them (`hfgen.pipelines.scheduling.make_scheduler`; DPM-Solver has no ``clip_sample``); each
    row records the ones it applied.

    Raises:
        HfgenError: for a folder that is not a diffusion model (no scheduler to swap).
        UnknownNameError: for a ``scheduler_config`` option that none of the schedulers has.
    """
    from tqdm.auto import tqdm

    from hfgen.pipelines import load_pipeline
    from hfgen.pipelines.scheduling import check_num_inference_steps, make_scheduler

    pipeline = load_pipeline(output_dir)
    if "scheduler" not in getattr(pipeline, "components", {}):
        raise HfgenError(f"{output_dir} is not a diffusion model: compare-samplers needs a scheduler to swap")
    configs = _sampler_configs(configs, extra_configs, pipeline.scheduler.config.num_train_timesteps)
    overrides = _overrides_by_sampler(configs, scheduler_config or {})
    for name, steps in configs:  # every step count checked before the first sampler runs
        check_num_inference_steps(make_scheduler(name, pipeline.scheduler.config, **overrides[name]), steps)
    scorer = None
    rows, shown = [], []
    for name, steps in tqdm(configs, desc="Samplers", unit="sampler"):
        result, seconds = sample_timed(pipeline, num_images, name, steps, batch_size, seed,
                                       mixed_precision=mixed_precision, scheduler_config=overrides[name])  # fmt: skip
        shown.append(result.images[:SHOWN_PER_SAMPLER].cpu())
        if scorer is None:
            scorer = make_scorer(output_dir, reference, features, result.images, seed)
        rows.append(_row(name, steps, result, seconds, scorer.score(result.images), mixed_precision))
    baseline = next(row for row in rows if row["scheduler"] == "ddpm")
    for row in rows:
        row["speedup_vs_ddpm"] = baseline["seconds"] / row["seconds"]
    floor = scorer.floor(num_images)
    for row in rows:  # the same floor (same count of real images) for every row, so the JSON stands on its own
        row["real_data_floor"] = {k: floor[k] for k in FLOOR_KEYS}
    _write_comparison(output_dir, rows, floor, scorer.features_name)
    from hfgen.plotting import plot_image_rows

    plot_image_rows(
        torch.cat(shown),
        len(shown[0]),
        os.path.join(output_dir, "sampler_samples.png"),
        title=f"The first {len(shown[0])} samples of each sampler (same seed, so the same starting noise)",
        row_labels=[f"{row['scheduler']}-{row['num_inference_steps']}" for row in rows],
    )
    return rows


def _overrides_by_sampler(configs: list[tuple[str, int]], scheduler_config: dict) -> dict[str, dict]:
    """``{scheduler name: the options of scheduler_config it has}``.

    Raises:
        UnknownNameError: for an option none of the schedulers has.
    """
    from hfgen.pipelines.scheduling import scheduler_options

    overrides = {}
    for name, _ in configs:
        options = scheduler_options(name)
        overrides[name] = {key: value for key, value in scheduler_config.items() if key in options}
    unused = set(scheduler_config).difference(*overrides.values())
    if unused:
        raise UnknownNameError(
            f"no sampler of this comparison has the config option {', '.join(map(repr, sorted(unused)))}"
        )
    return overrides


def _row(name: str, steps: int, result, seconds: float, metrics: dict, mixed_precision: str) -> dict:
    """One sampler's row (before ``speedup_vs_ddpm`` and the floor are added)."""
    return {
        "scheduler": name,
        "scheduler_class": result.scheduler_name,
        "num_inference_steps": steps,
        "nfe": result.network_evaluations,
        "num_images": len(result.images),
        **{k: metrics[k] for k in ("fid", "kid_mean", "kid_std", "cmmd", "precision", "recall", "coverage")},
        "images_per_second": len(result.images) / seconds,
        "seconds": seconds,
        "mixed_precision": mixed_precision,
        "scheduler_config": dict(result.scheduler_config),  # as applied: each row its own
    }


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
    from hfgen.plotting import pyplot

    plt = pyplot()

    num_images = rows[0]["num_images"]
    overrides = {key: value for row in rows for key, value in row.get("scheduler_config", {}).items()}
    overrides_note = "".join(f", {key}={value}" for key, value in sorted(overrides.items()))
    if overrides and any(row.get("scheduler_config") != overrides for row in rows):
        overrides_note += " where the scheduler has it"
    with open(os.path.join(output_dir, "sampler_comparison.md"), "w") as handle:
        handle.write(
            f"# Sampler comparison ({num_images} images each, same seed, {features} features"
            + (", the UNet in bf16" if rows[0].get("mixed_precision") == "bf16" else "")
            + overrides_note
            + ")\n\n"
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


__all__ = ["DEFAULT_SAMPLER_CONFIGS", "compare_samplers", "comparison_markdown", "parse_sampler_configs"]
