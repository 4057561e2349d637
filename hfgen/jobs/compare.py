"""`hfgen compare`: train every model family on the same data and budget, then measure the generative-model trilemma.

The trilemma (quality, mode coverage, sampling speed; e.g. Xiao et al. 2022, "Tackling the Generative Learning
Trilemma with Denoising Diffusion GANs") is usually drawn by hand. `compare` measures it: each family is trained with
its recipe defaults (`RECIPE_FLAGS`) into ``OUTPUT_DIR/<model>/`` (a normal hfgen output folder), sampled with its
default sampler (DDPM also with DDIM-50 and the best of `FAST_SAMPLERS`), and scored by `evaluate_pipeline` against
the real-data floor. Results: ``compare.md``, ``compare.json``, ``trilemma.png`` and ``samples.png`` in
``OUTPUT_DIR``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
import typing
from dataclasses import dataclass, field

from hfgen.errors import HfgenError, UnknownNameError
from hfgen.jobs.compare_report import (
    SHOWN_PER_MODEL,
    SPEED_BATCH,
    compare_markdown,
    equivalent_command,
    plot_trilemma,
    trilemma_scores,
    write_outputs,
)
from hfgen.output_folder.layout import MODEL_INDEX

# families that sample images (the autoencoder has no prior to sample from)
FAMILIES = ("vae", "gan", "dcgan", "wgan", "wgan-gp", "realnvp", "ncsn", "ddpm")
DEFAULT_MODELS = ("vae", "dcgan", "wgan-gp", "realnvp", "ncsn", "ddpm")
# the flags each family's README recipe adds to the family defaults
RECIPE_FLAGS = {
    "ddpm": {"use_ema": True},
    "ncsn": {"use_ema": True},
    "dcgan": {"label_smoothing": 0.1, "instance_noise": 0.2},
}
# what "the family's default sampler" is, as labelled in the outputs
DEFAULT_SAMPLERS = {"vae": "prior", "gan": "generator", "dcgan": "generator", "wgan": "generator",
                    "wgan-gp": "generator", "realnvp": "inverse flow", "ncsn": "annealed Langevin"}  # fmt: skip
FAST_SAMPLERS = [("ddim", 25), ("dpmsolver++", 20), ("unipc", 20), ("dpmsolver++", 10)]  # the best <= 25 steps
DEFAULT_BUDGET_MINUTES = 3.0
CALIBRATION_STEPS = 12  # optimiser steps timed to turn a wall-clock budget into a step count
TRAINING_RECORD = "compare_training.json"
MEASURES = (
    "fid", "kid_mean", "precision", "recall", "density", "coverage", "classes_covered", "class_entropy_bits",
)  # fmt: skip


@dataclass
class CompareArguments:
    """Flags of `hfgen compare` (the data flags are those of `hfgen train`)."""

    models: str = field(
        default=",".join(DEFAULT_MODELS),
        metadata={"help": f"Comma-separated families to compare; valid: {', '.join(FAMILIES)}."},
    )
    budget_minutes: float | None = field(
        default=None,
        metadata={
            "help": f"Wall-clock training budget per family in minutes (default {DEFAULT_BUDGET_MINUTES:g} unless "
            "--max_train_steps is given). The step count is set from the timed first steps of each family."
        },
    )
    max_train_steps: int | None = field(
        default=None, metadata={"help": "Train every family for this many optimiser steps instead of a time budget."}
    )
    num_images: int = field(
        default=300,
        metadata={
            "help": "Images sampled per family and sampler for the metrics (the 1,000-step samplers of NCSN and DDPM "
            "cost about 1.5 ms per image and step on 2 CPU cores at 16x16)."
        },
    )
    output_dir: str | None = field(default=None, metadata={"help": "Default: outputs/compare-<data>."})
    retrain: bool = field(default=False, metadata={"help": "Train again even where OUTPUT_DIR/<model> is trained."})
    strict: bool = field(default=False, metadata={"help": "Exit with code 1 when any family failed."})
    seed: int = field(default=0, metadata={"help": "Seed of training and of the sampling noise."})
    mixed_precision: str = field(
        default="no",
        metadata={
            "help": "'bf16': sample the diffusion families (DDPM, NCSN) with the UNet in bf16 autocast, as `hfgen "
            "sample --mixed_precision bf16` does (their 1,000-step samplers run faster on a CPU with avx512_bf16; "
            "the images differ by rounding). Training is not affected. Default: 'no'."
        },
    )
    features: str = field(default="auto", metadata={"help": "Feature extractor of the metrics (see hfgen evaluate)."})
    family_flags: str | None = field(
        default=None,
        metadata={
            "help": "Extra `hfgen train` flags for single families, e.g. 'ddpm.learning_rate=2e-4;vae.latent_dim=8' "
            "(lists with commas: 'ddpm.block_out_channels=16,32,64')."
        },
    )

    def __post_init__(self):
        parse_models(self.models)
        if self.budget_minutes is not None and self.max_train_steps is not None:
            raise ValueError("give either --budget_minutes or --max_train_steps, not both")
        if self.budget_minutes is not None and not (self.budget_minutes > 0 and math.isfinite(self.budget_minutes)):
            raise ValueError(f"--budget_minutes must be a positive number of minutes, got {self.budget_minutes:g}")
        if self.max_train_steps is not None and self.max_train_steps <= 0:
            raise ValueError(f"--max_train_steps must be a positive integer, got {self.max_train_steps}")
        if self.num_images < 2:
            raise ValueError(f"--num_images must be at least 2, got {self.num_images}")
        from hfgen.pipelines.sampling import SAMPLING_PRECISIONS

        if self.mixed_precision not in SAMPLING_PRECISIONS:
            raise ValueError(
                f"--mixed_precision must be one of {', '.join(SAMPLING_PRECISIONS)}, got {self.mixed_precision!r}"
            )
        parse_family_flags(self.family_flags, parse_models(self.models))


def parse_models(spec: str) -> list[str]:
    """``"vae, dcgan"`` -> ``["vae", "dcgan"]``.

    Raises:
        UnknownNameError: for a name that is not in `FAMILIES` (the message lists them), or an empty list.
    """
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        what = f"unknown model family {unknown[0]!r}" if unknown else "--models is empty"
        raise UnknownNameError(f"{what}; valid families: {', '.join(FAMILIES)}")
    return list(dict.fromkeys(names))


def parse_family_flags(spec: str | None, models: list[str]) -> dict[str, dict[str, str]]:
    """``"ddpm.learning_rate=2e-4;vae.latent_dim=8"`` -> ``{"ddpm": {"learning_rate": "2e-4"}, "vae": {...}}``.

    Values stay strings here; `_typed_flags` converts them with the family's argument types.

    Raises:
        ValueError: for an entry that is not ``MODEL.FLAG=VALUE`` or names a model that is not compared.
    """
    flags: dict[str, dict[str, str]] = {}
    for item in (spec or "").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        model, dot, flag = key.strip().rpartition(".")
        if not sep or not dot or not model or not flag:
            raise ValueError(
                f"--family_flags entries look like MODEL.FLAG=VALUE (e.g. vae.latent_dim=8), got {item!r}"
            )
        if model not in models:
            raise ValueError(f"--family_flags names {model!r}, which is not in --models ({', '.join(models)})")
        flags.setdefault(model, {})[flag.strip().lstrip("-")] = value.strip()
    return flags


def _convert(value: str, hint, flag: str):
    """Convert one flag value to its dataclass annotation (``int``, ``float``, ``bool``, lists, Optional)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):
        if value.lower() == "none":
            return None
        hint = args[0] if len(args) == 1 else str
    origin = typing.get_origin(hint)
    if origin is list:
        inner = typing.get_args(hint)[0] if typing.get_args(hint) else str
        return [_convert(part, inner, flag) for part in value.split(",") if part.strip()]
    if hint is bool:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"--{flag} takes true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    if hint in (int, float):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(f"--{flag} takes a {hint.__name__}, got {value!r}") from None
    return value


def _typed_flags(objective, flags: dict[str, str]) -> dict:
    from hfgen.training.arguments import DataArguments, TrainingArguments

    hints = {}
    for cls in (DataArguments, TrainingArguments, objective.arguments_class):
        if cls is not None:
            hints.update(typing.get_type_hints(cls))
    typed = {}
    for flag, value in flags.items():
        if flag not in hints:
            raise ValueError(f"`hfgen train {objective.name}` has no flag --{flag}")
        typed[flag] = _convert(value, hints[flag], flag)
    return typed


def _versions() -> dict:
    import diffusers
    import torch

    from hfgen import __version__

    return {"hfgen": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "python": platform.python_version()}  # fmt: skip


def _num_parameters(pipeline) -> dict:
    import torch

    counts = {name: sum(p.numel() for p in module.parameters())
              for name, module in pipeline.components.items() if isinstance(module, torch.nn.Module)}  # fmt: skip
    sampling = sum(n for name, n in counts.items() if name not in ("critic", "discriminator"))
    return {"num_parameters": sum(counts.values()), "num_sampling_parameters": sampling}


def _training_signature(name: str, data_args, steps: int | None, budget_minutes: float | None, flags: dict, seed: int):
    return {"model": name, "data": dataclasses.asdict(data_args), "max_train_steps": steps,
            "budget_minutes": budget_minutes, "family_flags": flags, "seed": seed}  # fmt: skip


def _calibrated_steps(name: str, data_args, flags: dict, budget_minutes: float, seed: int) -> tuple[int, float]:
    """Steps that fit ``budget_minutes``, from the median time of `CALIBRATION_STEPS` timed optimiser steps."""
    from hfgen.training.trainer import train

    with tempfile.TemporaryDirectory(prefix=f"hfgen-calibrate-{name}-") as folder:
        kwargs = {**dataclasses.asdict(copy.deepcopy(data_args)), **flags, "output_dir": folder,
                  "max_train_steps": CALIBRATION_STEPS, "seed": seed, "report_to": "none"}  # fmt: skip
        result = train(name, **kwargs)
    timed = sorted(result.step_seconds[2:] or result.step_seconds)
    per_step = timed[len(timed) // 2]
    return max(1, int(budget_minutes * 60 / per_step)), per_step


def _train_family(name, folder, data_args, flags, max_train_steps, budget_minutes, seed, retrain) -> dict:
    """Train ``name`` into ``folder`` unless it holds a comparison run with the same settings; return its record."""
    from hfgen.training.trainer import train

    record_path = os.path.join(folder, TRAINING_RECORD)
    signature = _training_signature(name, data_args, max_train_steps, budget_minutes, flags, seed)
    if not retrain and os.path.isfile(record_path) and os.path.isfile(os.path.join(folder, MODEL_INDEX)):
        with open(record_path) as handle:
            record = json.load(handle)
        if record.get("signature") != signature:
            raise HfgenError(
                f"{folder} was trained with other settings ({TRAINING_RECORD}); pass --retrain to train it again "
                "or choose another --output_dir"
            )
        record["reused"] = True
        return record
    if os.path.isfile(record_path):
        os.remove(record_path)  # the folder counts as trained again only once this run has finished
    steps, per_step = max_train_steps, None
    if steps is None:
        steps, per_step = _calibrated_steps(name, data_args, flags, budget_minutes, seed)
    kwargs = {**dataclasses.asdict(copy.deepcopy(data_args)), **flags, "output_dir": folder,
              "overwrite_output_dir": True, "max_train_steps": steps, "seed": seed}  # fmt: skip
    result = train(name, **kwargs)
    record = {"signature": signature, "train_steps": result.global_step, "train_seconds": result.train_seconds,
              "calibrated_seconds_per_step": per_step}  # fmt: skip
    tmp = record_path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(record, handle, indent=2)
    os.replace(tmp, record_path)  # written last: its presence means the folder is completely trained
    record["reused"] = False
    return record


def _row(name: str, sampler: str, metrics: dict, record: dict, params: dict) -> dict:
    floor = metrics.get("real_data_floor", {})
    row = {"model": name, "sampler": sampler, "status": "ok", "error": None}
    row.update({key: metrics.get(key) for key in MEASURES})
    row.update(
        fid_floor=floor.get("fid"), precision_floor=floor.get("precision"), recall_floor=floor.get("recall"),
        coverage_floor=floor.get("coverage"), floor_num_images=floor.get("num_images"), nfe=metrics["nfe"],
        images_per_second=metrics["images_per_second"], num_images=metrics["num_images"],
        features=metrics.get("features"), train_seconds=record.get("train_seconds"),
        train_steps=record.get("train_steps"), reused=record.get("reused"), **params,
        bits_per_dim=metrics.get("bits_per_dim"), mixed_precision=metrics.get("mixed_precision", "no"),
        likelihood=("exact" if "nll_nats" in metrics else "negative ELBO bound")
        if metrics.get("bits_per_dim") is not None else None,
    )  # fmt: skip
    return row


def _measure_family(name: str, folder: str, record: dict, num_images: int, features: str, seed: int,
                    mixed_precision: str = "no"):  # fmt: skip
    """Rows (one per sampler) and the `SHOWN_PER_MODEL` first samples of each, for a trained folder
    (``mixed_precision="bf16"``: the UNet of a diffusion family in bf16 autocast; one-shot generators stay fp32)."""
    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.pipelines import load_pipeline

    pipeline = load_pipeline(folder)
    params = _num_parameters(pipeline)
    precision = mixed_precision if "unet" in getattr(pipeline, "components", {}) else "no"
    configs: list[tuple[str | None, int | None, str]] = [(None, None, "default")]
    if name == "ddpm":
        trained = pipeline.scheduler.config.num_train_timesteps
        configs = [("ddpm", trained, f"ddpm-{trained}"), ("ddim", 50, "ddim-50")]
        configs += [(sampler, steps, f"{sampler}-{steps}") for sampler, steps in FAST_SAMPLERS]
    rows, shown = [], []
    for scheduler_name, steps, label in configs:
        metrics, samples = evaluate_pipeline(folder, num_images=num_images, scheduler_name=scheduler_name,
                                             num_inference_steps=steps, features=features, batch_size=SPEED_BATCH,
                                             seed=seed, return_samples=True, mixed_precision=precision)  # fmt: skip
        if label == "default":
            label = DEFAULT_SAMPLERS.get(name, "default")
            if metrics["nfe"] > 1:
                label += f", {metrics['nfe']} steps"
        if precision == "bf16":
            label += ", bf16 UNet"
        rows.append(_row(name, label, metrics, record, params))
        shown.append(samples.images[:SHOWN_PER_MODEL].cpu())  # the first of the images just scored
    if name == "ddpm":  # keep DDPM-1000, DDIM-50 and the best of the fast samplers
        fast = rows[2:]
        best = min(range(len(fast)), key=lambda i: fast[i]["fid"])
        fast[best]["sampler"] += " (best <= 25 steps)"
        rows, shown = rows[:2] + [fast[best]], shown[:2] + [shown[2 + best]]
    return rows, shown


def _flags_by_model(family_flags: str | dict | None, names: list[str]) -> dict[str, dict[str, str]]:
    """``family_flags`` as string values per family: a dict (values turned into strings) or a
    `parse_family_flags` spec.

    Raises:
        ValueError: for a family that is not in ``names``, or a malformed spec.
    """
    if not isinstance(family_flags, dict):
        return parse_family_flags(family_flags, names)
    flags_by_model = {model: {k: str(v) for k, v in flags.items()} for model, flags in family_flags.items()}
    unknown = [model for model in flags_by_model if model not in names]
    if unknown:
        raise ValueError(f"family_flags names {unknown[0]!r}, which is not in models ({', '.join(names)})")
    return flags_by_model


@dataclass(frozen=True)
class _FamilySettings:
    """What every family of one `compare` call is trained and measured with (see `compare`'s arguments)."""

    data_args: object  # hfgen.training.arguments.DataArguments
    max_train_steps: int | None
    budget_minutes: float | None
    seed: int
    retrain: bool
    num_images: int
    features: str
    mixed_precision: str = "no"


def _train_and_measure(name: str, output_dir: str, flags_by_model: dict, settings: _FamilySettings):
    """Train (or reuse) ``name`` in ``output_dir/<name>`` with its recipe and extra flags, then measure it:
    ``(record, rows, shown)`` (see `_train_family` and `_measure_family`)."""
    from hfgen.training.objectives import get_objective

    folder = os.path.join(output_dir, name)
    flags = {**RECIPE_FLAGS.get(name, {}), **_typed_flags(get_objective(name), flags_by_model.get(name, {}))}
    record = _train_family(
        name,
        folder,
        settings.data_args,
        flags,
        settings.max_train_steps,
        settings.budget_minutes,
        settings.seed,
        settings.retrain,
    )
    rows, shown = _measure_family(name, folder, record, settings.num_images, settings.features, settings.seed,
                                  settings.mixed_precision)  # fmt: skip
    return record, rows, shown


def _done_summary(record: dict, rows: list[dict]) -> str:
    """``trained N steps; <sampler> FID x.xx, ...`` (or ``reused; ...``) for the progress line of a family."""
    fids = ", ".join(f"{row['sampler']} FID {row['fid']:.2f}" for row in rows)
    what = "reused" if record["reused"] else f"trained {record['train_steps']} steps"
    return f"{what}; {fids}"


def _log(line: str) -> None:
    """One progress line on stderr, flushed at once."""
    print(line, file=sys.stderr, flush=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


def compare(
    models: str | list[str] = DEFAULT_MODELS,
    budget_minutes: float | None = None,
    max_train_steps: int | None = None,
    num_images: int = 300,
    output_dir: str | None = None,
    retrain: bool = False,
    seed: int = 0,
    features: str = "auto",
    family_flags: str | dict | None = None,
    command: str | None = None,
    mixed_precision: str = "no",
    **data_flags,
) -> list[dict]:
    """Train every family on the same data and budget, sample and score each, write the comparison.

    Args:
        models (`str` or `list[str]`): families from `FAMILIES` (``"vae,dcgan"`` or a list).
        budget_minutes (`float`, *optional*): wall-clock training minutes per family (default
            `DEFAULT_BUDGET_MINUTES` when ``max_train_steps`` is not given); the step count comes from the median time
            of `CALIBRATION_STEPS` timed steps, so the learning-rate schedule still ends on time.
        max_train_steps (`int`, *optional*): the same step count for every family instead.
        num_images (`int`): images per family and sampler for the metrics (FID needs more than the feature size).
        output_dir (`str`, *optional*): default ``outputs/compare-<data>``; each family trains into
            ``output_dir/<model>/`` and is reused on the next call when its settings are the same.
        retrain (`bool`): train every family again. seed (`int`): training seed and sampling noise.
        features (`str`): see `hfgen.jobs.evaluate.evaluate_pipeline`.
        family_flags (`str` or `dict`, *optional*): extra flags per family, ``"vae.latent_dim=8;ddpm.use_ema=false"``
            or ``{"vae": {"latent_dim": "8"}}``.
        command (`str`, *optional*): recorded in the outputs (default: the equivalent `hfgen compare` line).
        mixed_precision (`str`): ``"no"`` or ``"bf16"``: the diffusion families (DDPM, NCSN) sample with their UNet in
            bf16 autocast (`hfgen.pipelines.sampling.bf16_network`); recorded per row and in the header.
        **data_flags: any data flag of `hfgen train` (``train_data_dir``, ``resolution``, ...).

    Returns:
        rows (dicts): per family and sampler ``model``, ``sampler``, ``status`` (``"ok"`` or ``"failed"``), ``error``,
        ``fid``, ``fid_floor``, ``precision``, ``recall``, ``coverage`` (+ floors), ``classes_covered``,
        ``class_entropy_bits``, ``nfe``, ``images_per_second`` (batches of 64), ``train_seconds``, ``train_steps``,
        ``num_parameters`` (every network, critics included), ``num_sampling_parameters``, ``bits_per_dim`` (held-out,
        exact for flows, the negative-ELBO bound for the VAE, else None). A family that fails is one row with
        ``status="failed"`` and the first line of its error; the others still run.

    Raises:
        UnknownNameError: an unknown family. ValueError: bad budget, flags or data flags (before anything trains).
    """
    from tqdm.auto import tqdm

    names = parse_models(models if isinstance(models, str) else ",".join(models))
    flags_by_model = _flags_by_model(family_flags, names)
    arguments = CompareArguments(models=",".join(names), budget_minutes=budget_minutes,
                                 max_train_steps=max_train_steps, num_images=num_images, seed=seed,
                                 mixed_precision=mixed_precision)  # fmt: skip
    budget_minutes, data_args, output_dir, header = _settle(arguments, output_dir, command, data_flags)
    budget = header["budget"]
    settings = _FamilySettings(data_args, max_train_steps, budget_minutes, seed, retrain, num_images, features,
                               mixed_precision)  # fmt: skip
    rows, shown, shown_labels = [], [], []
    for index, name in enumerate(tqdm(names, desc="Families", unit="family", disable=len(names) < 2)):
        start = time.perf_counter()
        progress = f"compare [{index + 1}/{len(names)}] {name}"
        _log(f"{progress}: start ({budget})")
        try:
            record, family_rows, family_shown = _train_and_measure(name, output_dir, flags_by_model, settings)
        except Exception as err:  # noqa: BLE001 - one family failing must not stop the others
            rows.append({"model": name, "sampler": None, "status": "failed", "error": _first_line(err)})
            _log(f"{progress}: FAILED after {time.perf_counter() - start:.0f} s: {_first_line(err)}")
            continue
        rows.extend(family_rows)
        shown.extend(family_shown)
        shown_labels.extend(f"{row['model']} ({row['sampler']})" for row in family_rows)
        _log(f"{progress}: done in {time.perf_counter() - start:.0f} s ({_done_summary(record, family_rows)})")
    write_outputs(output_dir, rows, header, shown, shown_labels, _versions())
    return rows


def _settle(arguments: CompareArguments, output_dir: str | None, command: str | None, data_flags: dict):
    """The defaults filled in for one `compare` call: ``(budget_minutes, data_args, output_dir, header)``, with the
    output folder created and the header of compare.md/.json (data, budget, images, seed, command, precision)."""
    from hfgen.training.arguments import DataArguments, dataset_label

    budget_minutes, steps = arguments.budget_minutes, arguments.max_train_steps
    if budget_minutes is None and steps is None:
        budget_minutes = DEFAULT_BUDGET_MINUTES
    data_args = DataArguments(**data_flags)
    output_dir = output_dir or os.path.join("outputs", f"compare-{dataset_label(data_args)}")
    os.makedirs(output_dir, exist_ok=True)
    command = command or equivalent_command(
        arguments.models.split(","), budget_minutes, steps, arguments.num_images, output_dir, arguments.seed,
        data_flags, arguments.mixed_precision,
    )  # fmt: skip
    header = {"data": dataset_label(data_args), "num_images": arguments.num_images, "seed": arguments.seed,
              "budget": f"{steps} steps each" if steps else f"{budget_minutes:g} min of training each",
              "command": command, "mixed_precision": arguments.mixed_precision}  # fmt: skip
    return budget_minutes, data_args, output_dir, header


__all__ = [
    "DEFAULT_MODELS",
    "FAMILIES",
    "CompareArguments",
    "compare",
    "compare_markdown",
    "parse_family_flags",
    "parse_models",
    "plot_trilemma",
    "trilemma_scores",
]
