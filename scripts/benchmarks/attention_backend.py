"""Benchmark: seconds per training step in fp32, in bf16 autocast with PyTorch's fused (flash) CPU attention, and in
bf16 with the math attention kernel that `hfgen.training.trainer.attention_backend` picks for bf16 on a CPU.

    python scripts/benchmarks/attention_backend.py [--steps 30] [--repeats 3]

Two DDPM UNets, both trained through `hfgen.train` on the embedded digits (batch 64, EMA off): the `make demo` model
(16x16, attention at 8x8 and in the middle block) and the `mnist-ddpm` recipe's UNet (16 32 64, attention only in the
middle block) at 28x28. Every measurement is a fresh process (a process's first run is slower than its later ones,
which would favour whatever runs last), the three settings take turns in a rotating order, and each is measured
``--repeats`` times: the table gives the median over repeats of each run's median step time (the first 5 steps left
out). Run it alone: a second busy process on 2 cores slows PyTorch's CPU kernels by an order of magnitude, and a
shared machine's speed drifts from minute to minute, which the repeats are there to show.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODELS = {
    "digits DDPM (make demo), 16x16": {},
    "mnist-ddpm recipe UNet, 28x28": {
        "resolution": 28,
        "block_out_channels": [16, 32, 64],
        "attention_levels": [],
        "layers_per_block": 1,
        "ddpm_beta_schedule": "squaredcos_cap_v2",
    },
}
SETTINGS = ["fp32", "bf16 fused", "bf16 math"]


def one_run(model: str, setting: str, steps: int) -> float:
    """Median seconds per optimiser step of ``hfgen.train("ddpm", ...)`` for ``model`` at ``setting``, in this
    process; "bf16 fused" switches the trainer's choice of attention kernel off (PyTorch's default kernels)."""
    import hfgen
    from hfgen.training import trainer

    if setting == "bf16 fused":
        trainer.attention_backend = lambda device, precision: contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="hfgen-bench-attention-") as folder:
        result = hfgen.train(
            "ddpm", output_dir=folder, max_train_steps=steps, mixed_precision="no" if setting == "fp32" else "bf16",
            report_to="none", save_images_steps=10**9, checkpointing_steps=10**9, seed=0, **MODELS[model],
        )  # fmt: skip
    return statistics.median(result.step_seconds[5:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per run (at least 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each model and setting (at least 1)")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SETTING"), help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.steps < 10 or args.repeats < 1:
        parser.error(f"--steps must be at least 10 and --repeats at least 1, got {args.steps} and {args.repeats}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.one:
        print(json.dumps(one_run(*args.one, args.steps)))
        return

    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {capability}; "
          f"{args.repeats} fresh processes per cell, {args.steps} steps each")  # fmt: skip
    print(f"{'model':<34}" + "".join(f"{s:>12}" for s in SETTINGS) + f"{'math vs fused':>15}{'math vs fp32':>14}")
    for model in MODELS:
        runs: dict[str, list[float]] = {s: [] for s in SETTINGS}
        for repeat in range(args.repeats):
            for setting in SETTINGS[repeat % len(SETTINGS) :] + SETTINGS[: repeat % len(SETTINGS)]:  # rotate the order
                child = [sys.executable, __file__, "--steps", str(args.steps), "--one", model, setting]
                done = subprocess.run(child, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"the run of {model} at {setting} failed:\n{done.stderr[-3000:]}")
                runs[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
        ms = {s: 1000 * statistics.median(v) for s, v in runs.items()}
        print(f"{model:<34}" + "".join(f"{ms[s]:>10.0f}ms" for s in SETTINGS)
              + f"{ms['bf16 fused'] / ms['bf16 math']:>14.2f}x{ms['fp32'] / ms['bf16 math']:>13.2f}x")  # fmt: skip
        spread = ", ".join(f"{s} {min(v) * 1000:.0f}-{max(v) * 1000:.0f}" for s, v in runs.items())
        print(f"{'':<34}range over the runs (ms): {spread}")


if __name__ == "__main__":
    main()
