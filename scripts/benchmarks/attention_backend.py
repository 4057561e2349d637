"""Benchmark: seconds per training step in fp32, in bf16 autocast with PyTorch's fused (flash) CPU attention, and in
bf16 with the math attention kernel that `hfgen.training.trainer.attention_backend` picks for bf16 on a CPU.

    python scripts/benchmarks/attention_backend.py [--steps 40]

Two DDPM UNets, both trained through `hfgen.train` on the embedded digits (batch 64, EMA off):
the `make demo` model (16x16, attention at 8x8 and in the middle block) and the `mnist-ddpm` recipe's UNet
(16 32 64, attention only in the middle block) at 28x28. Prints the median step time of each (the first 5 steps are
left out) and the speed-up of the math kernel. Run it alone: a second busy process on 2 cores slows PyTorch's CPU
kernels by an order of magnitude.
"""

import argparse
import contextlib
import os
import statistics
import tempfile

import torch

MNIST_RECIPE_UNET = {
    "resolution": 28,
    "block_out_channels": [16, 32, 64],
    "attention_levels": [],
    "layers_per_block": 1,
    "ddpm_beta_schedule": "squaredcos_cap_v2",
}


def step_seconds(flags: dict, steps: int, mixed_precision: str, fused_attention: bool) -> float:
    """Median seconds per optimiser step of ``hfgen.train("ddpm", **flags)``; with ``fused_attention`` the trainer's
    choice of attention kernel is switched off (PyTorch's default kernels)."""
    import hfgen
    from hfgen.training import trainer

    chosen = trainer.attention_backend
    if fused_attention:
        trainer.attention_backend = lambda device, precision: contextlib.nullcontext()
    try:
        with tempfile.TemporaryDirectory(prefix="hfgen-bench-attention-") as folder:
            result = hfgen.train(
                "ddpm", output_dir=folder, max_train_steps=steps, mixed_precision=mixed_precision, report_to="none",
                save_images_steps=10**9, checkpointing_steps=10**9, seed=0, **flags,
            )  # fmt: skip
    finally:
        trainer.attention_backend = chosen
    return statistics.median(result.step_seconds[5:] or result.step_seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps per measurement (at least 10)")
    args = parser.parse_args()
    if args.steps < 10:
        parser.error(f"--steps must be at least 10, got {args.steps}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    print(f"{'model':<34}{'fp32':>9}{'bf16 fused':>12}{'bf16 math':>11}{'math vs fused':>15}")
    for name, flags in [("digits DDPM (make demo), 16x16", {}), ("mnist-ddpm recipe UNet, 28x28", MNIST_RECIPE_UNET)]:
        fp32 = step_seconds(flags, args.steps, "no", fused_attention=False)
        fused = step_seconds(flags, args.steps, "bf16", fused_attention=True)
        plain = step_seconds(flags, args.steps, "bf16", fused_attention=False)
        print(f"{name:<34}{fp32 * 1000:>7.0f}ms{fused * 1000:>10.0f}ms{plain * 1000:>9.0f}ms{fused / plain:>14.2f}x")


if __name__ == "__main__":
    main()
