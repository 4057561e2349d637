"""Benchmark: real data at real resolutions — memory of the training store, lazy loading, seconds per step.

    python scripts/benchmarks/real_data.py [--only memory|lazy|steps] [--data_dir ../shared/data] [--steps 6]

Three figures, each printed as a table (run alone: a second busy process on 2 cores slows PyTorch 10-50x):

- **memory**: resident memory added by holding the CIFAR-10 test set (10,000 x 32 x 32 x 3) and the 10,000 CelebA
  faces at 64 x 64 (centre crop) as hfgen's uint8 training store, next to their uint8 size (goal: <= 1.1x).
  Anonymous memory (``RssAnon`` of /proc/self/status) is measured: pages of a memory-mapped ``.npy`` file are page
  cache the kernel can drop, not memory the store holds.
- **lazy**: seconds per training step with ``--lazy_loading --dataloader_num_workers 2`` against the in-memory path,
  DCGAN (the fastest step, where data loading weighs most) and DDPM on CIFAR-10, batch 64 (goal: within 15 %).
- **steps**: seconds per training step of every family at 32 x 32 x 3, batch 64, on CIFAR-10 (the README's table).

Step times are the median over ``--steps`` steps after one warm-up step (`TrainingResult.step_seconds`).
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

import torch

FAMILIES = ("ddpm", "ncsn", "autoencoder", "vae", "dcgan", "wgan", "wgan-gp", "realnvp")


def rss_anon_bytes() -> int:
    """Anonymous resident memory of this process (bytes), from /proc/self/status."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


def memory(data_dir: str) -> None:
    from hfgen.data.images import ImageDecoder, decode_images, open_image_source

    rows = []
    cases = [
        ("CIFAR-10 test set", os.path.join(data_dir, "cifar10", "cifar10_test_images.npy"), 32),
        ("CelebA faces, 64x64 centre crops", os.path.join(data_dir, "celeba", "img_align_celeba"), 64),
    ]
    for name, path, resolution in cases:
        source = open_image_source(train_data_dir=path, split="all")
        decoder = ImageDecoder(source, resolution, 3, center_crop=True)
        gc.collect()
        before = rss_anon_bytes()
        start = time.perf_counter()
        images, _ = decode_images(decoder, show_progress=True)
        seconds = time.perf_counter() - start
        gc.collect()
        added = rss_anon_bytes() - before
        size = images.numel() * images.element_size()
        rows.append((name, tuple(images.shape), size, added, seconds))
        del images, decoder, source
        gc.collect()
    print("\n| data | store shape (uint8) | uint8 size | resident memory added | ratio | decode time |")
    print("|---|---|---:|---:|---:|---:|")
    for name, shape, size, added, seconds in rows:
        print(
            f"| {name} | {' x '.join(map(str, shape))} | {size / 2**20:.1f} MiB | {added / 2**20:.1f} MiB | "
            f"{added / size:.2f}x | {seconds:.1f} s |"
        )


def step_seconds(model: str, train_data_dir: str, steps: int, **kwargs) -> float:
    """Median seconds per training step (after a warm-up step) of ``model`` on ``train_data_dir``."""
    import hfgen

    with tempfile.TemporaryDirectory() as output_dir:
        result = hfgen.train(
            model,
            train_data_dir=train_data_dir,
            output_dir=output_dir,
            max_train_steps=steps + 1,
            train_batch_size=64,
            report_to="none",
            save_images_steps=10**9,
            checkpointing_steps=10**9,
            num_sample_images=4,
            **kwargs,
        )
    return statistics.median(result.step_seconds[1:])


def lazy(data_dir: str, steps: int) -> None:
    cifar = os.path.join(data_dir, "cifar10", "cifar10_test_images.npy")
    print(
        "\n| model (CIFAR-10, 32x32x3, batch 64) | in memory (s/step) | lazy, 2 workers (s/step) | lazy / in memory |"
    )
    print("|---|---:|---:|---:|")
    for model in ("dcgan", "ddpm"):
        memory_time = step_seconds(model, cifar, steps)
        lazy_time = step_seconds(model, cifar, steps, lazy_loading=True, dataloader_num_workers=2)
        print(f"| {model} | {memory_time:.3f} | {lazy_time:.3f} | {lazy_time / memory_time:.2f} |")


def steps_table(data_dir: str, steps: int) -> None:
    cifar = os.path.join(data_dir, "cifar10", "cifar10_test_images.npy")
    print("\n| family (defaults at 32x32x3) | seconds per training step (batch 64) |")
    print("|---|---:|")
    for model in FAMILIES:
        print(f"| {model} | {step_seconds(model, cifar, steps):.3f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("memory", "lazy", "steps"), default=None)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    parser.add_argument("--data_dir", default=os.path.normpath(os.path.join(root, "..", "shared", "data")))
    parser.add_argument("--steps", type=int, default=6, help="Timed steps per run (after one warm-up step).")
    args = parser.parse_args()
    if not os.path.isdir(args.data_dir):
        print(
            f"hfgen: error: {args.data_dir} does not exist; pass --data_dir with the real data sets", file=sys.stderr
        )
        sys.exit(2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.only in (None, "memory"):
        memory(args.data_dir)
    if args.only in (None, "lazy"):
        lazy(args.data_dir, args.steps)
    if args.only in (None, "steps"):
        steps_table(args.data_dir, args.steps)


if __name__ == "__main__":
    main()
