"""Benchmark: DDPM training speed and sampling speed per scheduler on this machine (CPU by default).

    python scripts/benchmarks/ddpm_speed.py [--train_steps 200] [--num_images 64] [--output_dir /tmp/bench-ddpm]

Prints optimiser steps per second for the default digits DDPM (the `make demo` model, batch 64, EMA on) and, for a
few schedulers, network evaluations per image, seconds and images per second. Run it on a quiet machine: a second
busy process on 2 cores slows PyTorch's CPU kernels by an order of magnitude.
"""

import argparse
import os
import time

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_steps", type=int, default=200)
    parser.add_argument("--num_images", type=int, default=64)
    parser.add_argument("--output_dir", default="/tmp/hfgen-bench-ddpm")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import hfgen
    from hfgen.pipelines.sampling import sample_images

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
    pipeline = hfgen.load_pipeline(args.output_dir)
    print(f"{'scheduler':<22}{'steps':>6}{'NFE/image':>11}{'seconds':>9}{'images/s':>10}")
    for name, steps in [("ddpm", 1000), ("ddim", 50), ("dpmsolver++", 20), ("unipc", 10), ("heun", 25)]:
        start = time.perf_counter()
        out = sample_images(
            pipeline,
            args.num_images,
            scheduler_name=name,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(0),
        )
        seconds = time.perf_counter() - start
        print(f"{name:<22}{steps:>6}{out.network_evaluations:>11}{seconds:>9.2f}{args.num_images / seconds:>10.1f}")


if __name__ == "__main__":
    main()
