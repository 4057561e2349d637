"""The `hfgen` command line: thin wrappers that parse arguments and call the library.

    hfgen train MODEL [flags]        train through the one loop (`hfgen train ddpm --help` lists every flag)
    hfgen sample OUTPUT_DIR [flags]  sample a trained folder with any diffusers scheduler, write a grid PNG

Errors hfgen raises on purpose (bad paths, empty data, unknown names, corrupt checkpoints, NaN loss) are printed as
one line ``hfgen: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

from hfgen.command_line import ArgumentParser, fail, hf_argument_parser
from hfgen.errors import CommandLineError

USAGE = """usage: hfgen <command> [args]

commands:
  train MODEL [flags]        train a model (models: {models}); `hfgen train MODEL --help` lists the flags
  sample OUTPUT_DIR [flags]  sample a trained folder; `hfgen sample --help` lists the flags
  evaluate OUTPUT_DIR        FID/KID/CMMD/precision/recall/density/coverage + speed, next to the real-data floor
  compare [--models vae,dcgan,...] [--budget_minutes M | --max_train_steps N] [data flags]
                             train every family on the same data and budget; quality, coverage, speed and
                             likelihood side by side (compare.md/.json, trilemma.png, samples.png)
  compare-samplers OUTPUT_DIR
                             quality and speed of DDPM, DDIM and DPM-Solver++ step counts on one model
  ood OUTPUT_DIR --out SET   out-of-distribution detection with a flow's likelihood (AUROC of 3 scores)
  explore OUTPUT_DIR         latent-space figures of an autoencoder or VAE (reconstructions, latent map,
                             manifold, traversal, morphing, attribute vector) into OUTPUT_DIR/figures/
  demo OUTPUT_DIR [...]      a local Gradio app, one tab per folder (pip install 'hfgen[demo]')
  space OUTPUT_DIR --to DIR  a Space-ready folder (app.py, requirements.txt, README, model) for the demo
  push OUTPUT_DIR --hub_model_id ID
                             upload a trained folder (card made Hub-ready, checkpoints left out)
  vqa make-dataset|finetune|evaluate
                             PaliGemma CLEVR VQA: offline CLEVR-format data, LoRA fine-tuning, ROUGE evaluation
"""


def _train(argv: list[str]) -> None:
    from hfgen.families import OBJECTIVES

    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: hfgen train MODEL [flags]\n\nmodels: {', '.join(sorted(OBJECTIVES))}\n"
            "`hfgen train MODEL --help` lists every flag of MODEL."
        )
        if not argv:
            sys.exit(2)
        return

    from hfgen.training.arguments import DataArguments, TrainingArguments
    from hfgen.training.objectives import get_objective
    from hfgen.training.trainer import train

    objective = get_objective(argv[0])
    classes = [DataArguments, TrainingArguments]
    if objective.arguments_class is not None:
        classes.append(objective.arguments_class)
    parser = hf_argument_parser(classes, prog=f"hfgen train {objective.name}")
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv[1:])
    except ValueError as err:  # raised by the dataclasses' __post_init__ checks
        raise CommandLineError(str(err)) from None
    model_args = parsed[2] if len(parsed) > 2 else None
    train(objective, parsed[0], parsed[1], model_args)


def _sample_parser() -> argparse.ArgumentParser:
    from hfgen.pipelines.scheduling import scheduler_names

    parser = ArgumentParser(
        prog="hfgen sample", description="Sample a trained hfgen folder (or Hub repo) and write an image grid."
    )
    parser.add_argument("output_dir", help="A trained output folder or a Hub repo id.")
    parser.add_argument("--num_images", type=int, default=16, help="Number of images to sample.")
    parser.add_argument(
        "--scheduler",
        default=None,
        help=f"Swap the scheduler: {', '.join(scheduler_names())}, or a diffusers class name. Default: as trained.",
    )
    parser.add_argument("--num_inference_steps", type=int, default=None, help="Sampling steps (diffusion models).")
    parser.add_argument("--batch_size", type=int, default=64, help="Images per network batch.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the sampling noise.")
    parser.add_argument(
        "--output", default=None, help="Grid PNG path. Default: OUTPUT_DIR/samples/<scheduler>-<K>.png"
    )
    parser.add_argument("--save_images", default=None, help="Also write each image as a PNG into this folder.")
    _conditioning_arguments(parser)
    _pipeline_kwargs_argument(parser)
    _sampling_precision_argument(parser)
    _scheduler_config_argument(parser)
    return parser


def _scheduler_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler_config",
        type=_json_object,
        default=None,
        help="Diffusion models: scheduler config options that replace the trained ones, as a JSON object (diffusers' "
        'from_config(config, **kwargs)), e.g. \'{"timestep_spacing": "trailing", "clip_sample": false}\' '
        "(start at the last trained timestep; no x0 clipping). Applied to --scheduler, or to the folder's own.",
    )


def _sampling_precision_argument(parser: argparse.ArgumentParser) -> None:
    from hfgen.pipelines.sampling import SAMPLING_PRECISIONS

    parser.add_argument(
        "--mixed_precision",
        choices=SAMPLING_PRECISIONS,
        default="no",
        help="'bf16': a diffusion model's denoiser in bf16 autocast (1.1-1.8x faster sampling on a CPU with "
        "avx512_bf16; the scheduler's arithmetic stays float32, the images differ by rounding). Default: 'no'.",
    )


def _conditioning_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class_labels",
        nargs="+",
        default=None,
        help="Class-conditional models: the class of the images (one for all, or one per image), as indices or names "
        "(e.g. 3, or 0 1 2). Default: every class in turn.",
    )
    parser.add_argument(
        "--guidance_scale",
        type=_guidance_scale,
        default=None,
        help="Classifier-free guidance w of a conditional DDPM/NCSN (1: none; >1: closer to the class, less diverse).",
    )


def _guidance_scales(text: str) -> list[float]:
    from hfgen.jobs.guidance_sweep import parse_guidance_scales

    try:
        return parse_guidance_scales(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _guidance_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _pipeline_kwargs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline_kwargs",
        type=_json_object,
        default=None,
        help="Extra arguments for the pipeline's own sampler as a JSON object, e.g. '{\"denoise\": false, "
        '"steps_per_level": 50}\' (NCSN) or \'{"temperature": 0.8}\' (VAE, flow).',
    )


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"name\": value}}', got {text}")
    return value


def _sample(argv: list[str]) -> None:
    import torch

    from hfgen.output_folder.layout import SAMPLES_DIR
    from hfgen.pipelines import load_pipeline
    from hfgen.pipelines.sampling import sample_images
    from hfgen.plotting import save_image_grid

    args = _sample_parser().parse_args(argv)
    if args.num_images <= 0:
        raise CommandLineError(f"--num_images must be positive, got {args.num_images}")
    if args.num_inference_steps is not None and args.num_inference_steps <= 0:
        raise CommandLineError(f"--num_inference_steps must be positive, got {args.num_inference_steps}")
    pipeline = load_pipeline(args.output_dir)
    start = time.perf_counter()
    result = sample_images(
        pipeline,
        num_images=args.num_images,
        scheduler_name=args.scheduler,
        num_inference_steps=args.num_inference_steps,
        batch_size=args.batch_size,
        generator=torch.Generator().manual_seed(args.seed),
        pipeline_kwargs=args.pipeline_kwargs,
        class_labels=args.class_labels,
        guidance_scale=args.guidance_scale,
        mixed_precision=args.mixed_precision,
        scheduler_config=args.scheduler_config,
    )
    seconds = time.perf_counter() - start
    output = args.output
    if output is None:
        folder = args.output_dir if os.path.isdir(args.output_dir) else "."
        output = os.path.join(folder, SAMPLES_DIR, f"{result.scheduler_name}-{result.num_inference_steps}steps.png")
    save_image_grid(result.images, output)
    if args.save_images:
        from hfgen.data.images.transforms import tensor_to_pil

        os.makedirs(args.save_images, exist_ok=True)
        for i, image in enumerate(tensor_to_pil(result.images * 2 - 1)):
            image.save(os.path.join(args.save_images, f"{i:05d}.png"))
    print(
        f"wrote {output}: {args.num_images} images, scheduler {result.scheduler_name}, "
        f"{result.num_inference_steps} steps"
    )
    print(f"network evaluations per image: {result.network_evaluations}")
    print(f"time: {seconds:.2f} s, {args.num_images / seconds:.2f} images per second")


def _evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", help="A trained output folder (or a Hub repo id).")
    parser.add_argument(
        "--reference",
        default="auto",
        help="'auto' (the held-out part of the data the folder was trained on: the digits' test split, MNIST's "
        "2,000, CIFAR-10's 1,000, CelebA's 1,000 or --held_out_size), 'digits' or a folder/.npy of real images "
        "(cut in two halves).",
    )
    parser.add_argument(
        "--features",
        default="auto",
        help="'auto' (the extractor of the training data: digits, mnist, cifar10 or celeba; else by shape), "
        "'digits', 'mnist', 'cifar10', 'celeba' (shipped classifiers), 'clip:PATH' (a local CLIP model folder) or "
        "'inception:PATH' (pytorch-fid weights converted to .safetensors).",
    )
    parser.add_argument("--batch_size", type=int, default=250, help="Images per network batch.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the sampling noise and KID subsets.")
    _sampling_precision_argument(parser)
    _scheduler_config_argument(parser)


def _evaluate(argv: list[str]) -> None:
    from hfgen.jobs.evaluate import evaluate_pipeline, format_metrics_table, save_metrics

    parser = ArgumentParser(
        prog="hfgen evaluate",
        description="Sample a trained folder, time it and score it against real data with the real-data floor; "
        "writes metrics.json and the model card's metrics.",
    )
    _evaluation_arguments(parser)
    parser.add_argument("--num_images", type=int, default=1000, help="Images to generate and score.")
    parser.add_argument("--scheduler", default=None, help="Diffusion sampler (see `hfgen sample --help`).")
    parser.add_argument("--num_inference_steps", type=int, default=None, help="Diffusion sampling steps.")
    parser.add_argument(
        "--guidance_scale",
        type=_guidance_scale,
        default=None,
        help="Classifier-free guidance w of a conditional DDPM/NCSN (1: none).",
    )
    parser.add_argument(
        "--guidance_scales",
        type=_guidance_scales,
        default=None,
        help="A guidance sweep, e.g. 0,1,2,3,5: one evaluation per w, written as guidance_sweep.md/.json/.png "
        "(FID, precision, recall and class accuracy against w).",
    )
    _pipeline_kwargs_argument(parser)
    parser.add_argument("--push_to_hub", action="store_true", help="Then upload the folder (see `hfgen push`).")
    parser.add_argument("--hub_model_id", default=None, help="The repository for --push_to_hub, namespace/name.")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        raise CommandLineError("--push_to_hub needs --hub_model_id namespace/name")
    options = {  # the same sampling and scoring for one evaluation and for each w of a sweep
        "num_images": args.num_images,
        "scheduler_name": args.scheduler,
        "num_inference_steps": args.num_inference_steps,
        "reference": args.reference,
        "features": args.features,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "pipeline_kwargs": args.pipeline_kwargs,
        "mixed_precision": args.mixed_precision,
        "scheduler_config": args.scheduler_config,
    }
    if args.guidance_scales is not None:
        from hfgen.jobs.guidance_sweep import format_sweep_table, guidance_sweep

        if args.guidance_scale is not None:
            raise CommandLineError("pass --guidance_scale or --guidance_scales, not both")
        rows = guidance_sweep(args.output_dir, args.guidance_scales, **options)
        print(format_sweep_table(rows))
        print(f"wrote guidance_sweep.md, .json and .png into {args.output_dir}")
        return
    metrics = evaluate_pipeline(args.output_dir, guidance_scale=args.guidance_scale, write=False, **options)
    print(
        f"{metrics['scheduler']}, {metrics['num_inference_steps']} steps, {metrics['num_images']} images, "
        f"{metrics['features']} features, reference: {metrics['reference']}"
    )
    print(format_metrics_table(metrics))  # printed before anything is written: a read-only folder loses nothing
    if os.path.isdir(args.output_dir):
        print(f"wrote {save_metrics(args.output_dir, metrics)}")
    if args.push_to_hub:
        from hfgen.output_folder.hub import push_folder

        print(
            f"pushed to https://huggingface.co/{args.hub_model_id} ({push_folder(args.output_dir, args.hub_model_id)})"
        )


def _compare_samplers(argv: list[str]) -> None:
    from hfgen.jobs.compare_samplers import compare_samplers, parse_sampler_configs

    parser = ArgumentParser(
        prog="hfgen compare-samplers",
        description="DDPM (trained steps), DDIM 100/50/20/10, DPM-Solver++ 20/10 and SDE-DPM-Solver++ 20 "
        "(+ --schedulers) on the same seed and sample count: FID, KID, coverage, images per second and speed-up "
        "over DDPM.",
    )
    _evaluation_arguments(parser)
    parser.add_argument("--num_images", type=int, default=500, help="Images per sampler.")
    parser.add_argument(
        "--schedulers", default=None, help="Extra samplers as NAME:STEPS,... (e.g. euler:30,unipc:10)."
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.output_dir):
        raise CommandLineError(f"{args.output_dir} is not a local folder; compare-samplers writes its results there")
    rows = compare_samplers(
        args.output_dir,
        num_images=args.num_images,
        extra_configs=parse_sampler_configs(args.schedulers),
        reference=args.reference,
        features=args.features,
        batch_size=args.batch_size,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        scheduler_config=args.scheduler_config,
    )
    with open(os.path.join(args.output_dir, "sampler_comparison.md")) as handle:
        print(handle.read())
    print(f"wrote sampler_comparison.md, .json and .png into {args.output_dir} ({len(rows)} samplers)")


def _compare(argv: list[str]) -> None:

    from hfgen.jobs.compare import CompareArguments, compare
    from hfgen.training.arguments import DataArguments

    parser = hf_argument_parser(
        [CompareArguments, DataArguments],
        prog="hfgen compare",
        description="Train every family on the same data and budget, then measure quality (FID, precision), "
        "coverage (recall, coverage, classes), speed (NFE, images/s) and likelihood side by side: compare.md, "
        "compare.json, trilemma.png, samples.png.",
    )
    try:
        args, data_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:  # the dataclasses' __post_init__ checks
        raise CommandLineError(str(err)) from None
    data_flags = {
        f.name: getattr(data_args, f.name)
        for f in dataclasses.fields(DataArguments)
        if getattr(data_args, f.name) != f.default
    }
    rows = compare(
        models=args.models,
        budget_minutes=args.budget_minutes,
        max_train_steps=args.max_train_steps,
        num_images=args.num_images,
        output_dir=args.output_dir,
        retrain=args.retrain,
        seed=args.seed,
        features=args.features,
        family_flags=args.family_flags,
        command="hfgen compare " + " ".join(argv),
        mixed_precision=args.mixed_precision,
        **data_flags,
    )
    failed = [row for row in rows if row["status"] != "ok"]
    folder = args.output_dir or _compare_default_dir(data_args)
    with open(os.path.join(folder, "compare.md")) as handle:
        print(handle.read())
    print(f"wrote compare.md, compare.json, trilemma.png and samples.png into {folder}")
    if failed and (args.strict or len(failed) == len(rows)):
        print(f"hfgen: {len(failed)} famil{'y' if len(failed) == 1 else 'ies'} failed: "
              + ", ".join(row["model"] for row in failed), file=sys.stderr)  # fmt: skip
        sys.exit(1)


def _compare_default_dir(data_args) -> str:
    from hfgen.training.arguments import dataset_label

    return os.path.join("outputs", f"compare-{dataset_label(data_args)}")


def _lazy(module: str, name: str):
    """A command whose parser lives in ``module`` (imported only when the command runs)."""

    def command(argv: list[str]) -> None:
        import importlib

        getattr(importlib.import_module(module), name)(argv)

    return command


def _vqa(argv: list[str]) -> None:
    from hfgen.vqa.cli import main as vqa_main

    try:
        vqa_main(argv)
    except ValueError as err:  # the argument dataclasses' __post_init__ checks
        from hfgen.errors import HfgenError

        if isinstance(err, HfgenError):
            raise
        raise CommandLineError(str(err)) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `hfgen` console script and `python -m hfgen`."""
    from hfgen.errors import HfgenError

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "train": _train,
        "sample": _sample,
        "evaluate": _evaluate,
        "compare-samplers": _compare_samplers,
        "compare": _compare,
        "explore": _lazy("hfgen.jobs.cli", "explore_main"),
        "ood": _lazy("hfgen.jobs.cli", "ood_main"),
        "demo": _lazy("hfgen.demo.cli", "demo_main"),
        "space": _lazy("hfgen.demo.cli", "space_main"),
        "push": _lazy("hfgen.hub_cli", "push_main"),
        "vqa": _vqa,
    }
    if not argv or argv[0] in ("-h", "--help"):
        from hfgen.families import OBJECTIVES

        print(USAGE.format(models=", ".join(sorted(OBJECTIVES))))
        sys.exit(0 if argv else 2)
    if argv[0] in ("-V", "--version"):
        from hfgen import __version__

        print(f"hfgen {__version__}")
        return
    if argv[0] not in commands:
        fail(f"unknown command {argv[0]!r}; commands: {', '.join(commands)}")
    try:
        commands[argv[0]](argv[1:])
    except (HfgenError, CommandLineError) as err:
        fail(str(err))
    except OSError as err:  # disk full, read-only folder, a file where a folder should be: the path and the cause
        where = f"{err.filename}: " if err.filename else ""
        fail(f"{where}{err.strerror or err} (check the path, its permissions and the free disk space)")
    except KeyboardInterrupt:
        print("hfgen: interrupted; the last complete checkpoint stays loadable.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
