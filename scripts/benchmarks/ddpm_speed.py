"""Benchmark: DDPM training speed and sampling speed per scheduler on this machine (CPU by default).

    python scripts/benchmarks/ddpm_speed.py [--train_steps 200] [--num_images 64] [--output_dir /tmp/bench-ddpm]
        [--model_dir FOLDER] [--mixed_precision bf16]

Prints optimiser steps per second for the default digits DDPM (the `make demo` model, batch 64, EMA on) and, for a
few schedulers, network evaluations per image, seconds and images per second. ``--model_dir`` times the sampling of
a trained folder instead (no training). ``--mixed_precision bf16`` times DDIM-50, DPM-Solver++-20 and UniPC-10 in
float32 and with the denoiser in bf16 autocast (`hfgen.pipelines.sampling.bf16_network`), twice each in turns, and
prints the faster run of each and the speed-up. Run it on a quiet machine: a second busy process on 2 cores slows
PyTorch's CPU kernels by an order of magnitude.
"""

import argparse
import os
import time

import torch


def main():
    from hfgen.pipelines.sampling import SAMPLING_PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_steps", type=int, default=200)
    parser.add_argument("--num_images", type=int, default=64)
    parser.add_argument("--output_dir", default="/tmp/hfgen-bench-ddpm")
    parser.add_argument("--model_dir", default=None, help="time the sampling of this trained folder (no training)")
    parser.add_argument("--mixed_precision", choices=SAMPLING_PRECISIONS, default="no")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import hfgen

    if args.model_dir:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; sampling {args.model_dir}")
        return sampling_table(hfgen.load_pipeline(args.model_dir), args.num_images, args.mixed_precision)
    result = hfgen.train(
        "ddpm",
        output_dir=args.output_dir,
        max_train_steps=args.train_steps,
        use_ema=True,
        report_to="none",
        save_images_steps=10**9,
        checkpointing_steps=10**9,
        overwrite_output_dir=True,
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"training: {result.global_step} steps in {result.train_seconds:.1f} s = "
        f"{result.global_step / result.train_seconds:.2f} steps/s (batch 64, 16x16, EMA); "
        f"2000 steps ~ {2000 * result.train_seconds / result.global_step / 60:.1f} min"
    )
    sampling_table(hfgen.load_pipeline(args.output_dir), args.num_images, args.mixed_precision)


def sampling_table(pipeline, num_images: int, mixed_precision: str) -> None:
    """Print NFE, seconds and images/s of a few schedulers (float32; with "bf16" also bf16, best of 2 in turns)."""
    from hfgen.pipelines.sampling import sample_images

    def timed(name, steps, precision):
        start = time.perf_counter()
        out = sample_images(pipeline, num_images, scheduler_name=name, num_inference_steps=steps,
                            generator=torch.Generator().manual_seed(0), mixed_precision=precision)  # fmt: skip
        return out.network_evaluations, time.perf_counter() - start

    schedulers = [("ddpm", 1000), ("ddim", 50), ("dpmsolver++", 20), ("unipc", 10), ("heun", 25)]
    if mixed_precision == "no":
        print(f"{'scheduler':<22}{'steps':>6}{'NFE/image':>11}{'seconds':>9}{'images/s':>10}")
        for name, steps in schedulers:
            nfe, seconds = timed(name, steps, "no")
            print(f"{name:<22}{steps:>6}{nfe:>11}{seconds:>9.2f}{num_images / seconds:>10.1f}")
        return
    print(f"{'scheduler':<22}{'steps':>6}{'NFE/image':>11}{'fp32 images/s':>15}{'bf16 images/s':>15}{'speed-up':>10}")
    for name, steps in schedulers[1:4]:  # not DDPM-1000 and Heun: four runs of each would take minutes
        runs = {"no": [], "bf16": []}
        for precision in ("no", "bf16", "bf16", "no"):
            nfe, seconds = timed(name, steps, precision)
            runs[precision].append(seconds)
        fp32, bf16 = min(runs["no"]), min(runs["bf16"])
        print(f"{name:<22}{steps:>6}{nfe:>11}{num_images / fp32:>15.1f}{num_images / bf16:>15.1f}{fp32 / bf16:>9.2f}x")


if __name__ == "__main__":
    main()
