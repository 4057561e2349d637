"""Reproduce the published experiments on real data and write the tables and figures the README shows.

    python scripts/reproduce.py [--only NAME ...] [--data_dir ../shared/data] [--output_dir outputs/reproduce]

Each recipe trains through `hfgen.train`, measures with hfgen's own evaluation code, prints its markdown table and
its wall time, and writes ``OUTPUT_DIR/NAME/table.md`` plus its figures (copied to ``docs/reproduce/NAME/`` with
``--update_docs``, the files the README links). Seed 0 everywhere; run alone on the machine (2 CPU cores: a second
busy process slows PyTorch 10-50x).

Recipes (``--only``), each within 15 minutes on 2 CPU cores:
- ``mnist-autoencoder``: a 2-D-code autoencoder on MNIST's 8,000 train images: the held-out latent map coloured by
  digit, the decoded manifold, and which digits overlap in the code (k-NN confusions of the held-out codes).
- ``mnist-vae``: VAEs with ``--latent_dim 2`` and ``--latent_dim 100``: prior samples side by side, FID and coverage
  (``mnist`` features, 1,000 samples against the 2,000 held-out images, with the real-data floor) and held-out
  negative ELBO.
- ``mnist-dcgan``: DCGAN without and with label smoothing + instance noise: classes covered, class entropy and FID
  over training (``--eval_steps``), the discriminator's accuracy, final FID and coverage.
- ``mnist-wgan``: WGAN (clipping) and WGAN-GP: the Wasserstein estimate beside FID over training, and how well
  they agree (rank correlation).
- ``mnist-ddpm``: a CPU-sized DDPM sampled with DDPM-1000, DDIM-50 and <= 25-step samplers: FID, precision,
  coverage and images/s on the same seed and count, against the floor.
- ``celeba-smile``: VAE and β-VAE (β = 4) on the 9,000 CelebA train faces (64x64 centre crops): held-out
  reconstructions and prior samples, the smile vector added to held-out non-smiling faces (α from -1.5 to 2), the
  latent dimension that best separates smiling from non-smiling faces and its traversal, and the attribute-transfer
  rate: the share of held-out non-smiling faces the ``celeba`` classifier calls smiling after +v (and the reverse),
  against its rate on the unedited reconstructions, with the share of the other 39 predicted attributes that changed.
- ``flow-ood-mnist`` / ``flow-ood-cifar``: Real NVP trained on MNIST (CIFAR-10), scored on its held-out part and on
  CIFAR-10 (MNIST), constant and noise images: likelihood histograms and AUROC of the NLL, typicality and
  complexity scores; for CIFAR-10 also held-out bits/dim next to PNG's.
- ``clevr-vqa``: real CLEVR split by image (217 / 50); the tiny PaliGemma + LoRA before and after fine-tuning
  against the majority answer per question type (ROUGE-1/L, exact match); real CLEVR's question-type, answer, object
  and material distributions next to the offline generator's.

- ``compare-digits`` / ``compare-mnist``: `hfgen compare` (issue 15's trilemma) with its default families on the
  digits and on MNIST; these two take longer than 15 minutes (the time is printed and put in the README).

With ``--update_docs`` each recipe's table also replaces the one between its ``<!-- reproduce:NAME -->`` markers in
README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch

SMOKE = False  # --smoke: 2 training steps and few images per recipe (the tests' setting; numbers meaningless)
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RECIPES = {}
# Training budgets, chosen so that each recipe fits in 15 minutes on 2 CPU cores (measured; see the README).
DDPM_BUDGET = {"steps": 3700, "images": 150}
FLOW_BUDGET = {"mnist": 220, "cifar": 200}  # 2.5 and 3.4 s per step
# hfgen compare: minutes of training per family and images per sampler (digits: the command's defaults)
COMPARE_BUDGET = {"digits": (3.0, 300), "mnist": (3.0, 150)}
VQA_STEPS = 6000  # 2,000 steps (2.9 min) left the tiny model below the majority baseline (0.28 vs 0.38 exact match)


def recipe(name: str):
    def register(function):
        RECIPES[name] = function
        return function

    return register


def markdown(header: list[str], rows: list[list]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def steps(count: int) -> int:
    """``count`` training steps (2 with ``--smoke``)."""
    return 2 if SMOKE else count


def train(model: str, output_dir: str, **flags):
    """Train with hfgen's one loop (seed 0, no tensorboard); returns the `hfgen.TrainingResult`."""
    import hfgen

    if SMOKE:
        flags.update(train_batch_size=16, save_images_steps=1000, checkpointing_steps=1000, num_sample_images=4)
        flags.update(max_train_samples=64)
        if "block_out_channels" in flags:  # the smallest UNet of the same depth: the tests wait for its sampling
            flags.update(block_out_channels=[8] * len(flags["block_out_channels"]), norm_num_groups=4)
        if flags.get("eval_steps"):
            flags.update(eval_steps=1, eval_num_images=150)  # FID with 128 mnist features needs > 128
    return hfgen.train(model, output_dir=output_dir, overwrite_output_dir=True, report_to="none", seed=0, **flags)


# ----------------------------------------------------------------------------------------------------------- MNIST
def mnist_path(data_dir: str) -> str:
    return os.path.join(data_dir, "mnist", "mnist_test_images.npy")


def knn_confusions(codes: torch.Tensor, labels: torch.Tensor, k: int = 10, top: int = 3) -> tuple[float, list]:
    """Leave-one-out k-NN accuracy of the codes and the ``top`` most confused digit pairs (share of each pair's
    images whose neighbours vote for the other digit)."""
    distances = torch.cdist(codes, codes)
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.topk(k, largest=False).indices
    votes = torch.nn.functional.one_hot(labels[neighbours], 10).sum(1)
    predicted = votes.argmax(1)
    accuracy = float((predicted == labels).float().mean())
    confusion = torch.zeros(10, 10)
    for truth, guess in zip(labels.tolist(), predicted.tolist()):
        confusion[truth, guess] += 1
    pairs = []
    for a in range(10):
        for b in range(a + 1, 10):
            share = float((confusion[a, b] + confusion[b, a]) / (confusion[a].sum() + confusion[b].sum()))
            pairs.append((share, a, b))
    return accuracy, sorted(pairs, reverse=True)[:top]


@recipe("mnist-autoencoder")
def mnist_autoencoder(data_dir: str, out: str) -> tuple[str, list[str]]:
    import hfgen
    from hfgen.jobs.explore import explore, load_held_out_images

    folder = os.path.join(out, "model")
    count = steps(3000)
    seconds = train(
        "autoencoder", folder, train_data_dir=mnist_path(data_dir), latent_dim=2, max_train_steps=count
    ).train_seconds
    paths = explore(folder, figures_dir=out)
    pipeline = hfgen.load_pipeline(folder)
    pipeline.set_progress_bar_config(disable=True)
    from hfgen.metrics.image_quality import training_data_spec

    images, labels = load_held_out_images(pipeline, training_data_spec(folder))
    with torch.no_grad():
        codes = pipeline.encode(images)
        reconstructions = pipeline.reconstruct(images, output_type="pt").images
    mse = float((((images + 1) / 2 - reconstructions) ** 2).mean())
    accuracy, pairs = knn_confusions(codes, labels)
    table = markdown(
        ["autoencoder, 2-D code, MNIST", "value"],
        [
            ["training", f"{count} steps, {seconds / 60:.1f} min"],
            [f"held-out reconstruction MSE ({len(images)} images, [0, 1] pixels)", f"{mse:.4f}"],
            ["10-NN digit accuracy of the held-out 2-D codes", f"{accuracy:.3f}"],
            *[
                [f"overlap {a} / {b} (share of their codes voting for the other)", f"{share:.3f}"]
                for share, a, b in pairs
            ],
        ],
    )
    return table, [paths["latent_map"], paths["latent_manifold"], paths["reconstructions"]]


@recipe("mnist-vae")
def mnist_vae(data_dir: str, out: str) -> tuple[str, list[str]]:
    import hfgen
    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.plotting import plot_image_rows

    rows, grids = [], []
    count = steps(3000)
    for latent_dim in (2, 100):
        folder = os.path.join(out, f"latent-{latent_dim}")
        seconds = train(
            "vae", folder, train_data_dir=mnist_path(data_dir), latent_dim=latent_dim, max_train_steps=count
        ).train_seconds
        metrics = evaluate_pipeline(folder, num_images=200 if SMOKE else 1000, seed=0)
        floor = metrics["real_data_floor"]
        rows.append(
            [
                f"`--latent_dim {latent_dim}`",
                f"{seconds / 60:.1f} min",
                f"{metrics['fid']:.2f} (floor {floor['fid']:.2f})",
                f"{metrics['coverage']:.3f} (floor {floor['coverage']:.3f})",
                f"{metrics.get('classes_covered', '')} / {metrics.get('class_entropy_bits', float('nan')):.2f}",
                f"{metrics['negative_elbo_nats']:.1f} nats ({metrics['bits_per_dim']:.3f} bits/dim)",
            ]
        )
        pipeline = hfgen.load_pipeline(folder)
        pipeline.set_progress_bar_config(disable=True)
        grids.append(pipeline(batch_size=32, generator=torch.Generator().manual_seed(0), output_type="pt").images)
    figure = plot_image_rows(
        torch.cat([grids[0][:16], grids[1][:16], grids[0][16:], grids[1][16:]]),
        16,
        os.path.join(out, "prior_samples_2_vs_100.png"),
        title="VAE prior samples on MNIST: latent_dim 2 (rows 1, 3) vs 100 (rows 2, 4)",
        row_labels=["d=2", "d=100", "d=2", "d=100"],
    )
    table = markdown(
        [
            f"VAE on MNIST ({count} steps)",
            "training",
            "FID (mnist features)",
            "coverage",
            "classes / entropy (bits)",
            "held-out negative ELBO",
        ],
        rows,
    )
    return table, [figure]


def smoothed(series: list, window: int) -> tuple[list, list]:
    """``(steps, moving averages)`` of a ``[(step, value)]`` series over ``window`` points."""
    import numpy as np

    steps_, values = [p[0] for p in series], np.array([p[1] for p in series], dtype=float)
    window = max(1, min(window, len(values)))
    means = np.convolve(values, np.ones(window) / window, mode="valid")
    return steps_[window - 1 :], means.tolist()


def mean_before(series: list, step: int, window: int) -> float:
    """Mean of the last ``window`` values of ``series`` recorded at or before ``step``."""
    values = [value for s, value in series if s <= step][-window:]
    return sum(values) / max(1, len(values))


def final_samples(folder: str, count: int = 16) -> torch.Tensor:
    import hfgen

    pipeline = hfgen.load_pipeline(folder)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        return pipeline(batch_size=count, generator=torch.Generator().manual_seed(0), output_type="pt").images


@recipe("mnist-dcgan")
def mnist_dcgan(data_dir: str, out: str) -> tuple[str, list[str]]:
    """DCGAN on MNIST without and with the stabilising tricks (one-sided label smoothing 0.1, instance noise 0.1
    annealed to 0): classes covered and class entropy over training, the discriminator's accuracy, FID."""
    from hfgen.plotting import pyplot

    plt = pyplot()

    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.plotting import plot_image_rows, save_figure

    count, every = steps(1500), 150
    variants = {
        "without tricks": {},
        "with tricks": {"label_smoothing": 0.1, "instance_noise": 0.1},
    }
    results, rows, samples = {}, [], []
    for name, tricks in variants.items():
        folder = os.path.join(out, name.replace(" ", "-"))
        result = train(
            "dcgan", folder, train_data_dir=mnist_path(data_dir), max_train_steps=count, eval_steps=every,
            eval_num_images=500, **tricks,
        )  # fmt: skip
        results[name] = result
        metrics = evaluate_pipeline(folder, num_images=200 if SMOKE else 1000, seed=0)
        floor = metrics["real_data_floor"]
        history, evals = result.loss_history, result.eval_history
        fewest = min(evals["classes_covered"], key=lambda p: p[1])
        tail = max(1, len(history["discriminator_accuracy_real"]) // 10)
        accuracy = [mean_before(history[f"discriminator_accuracy_{k}"], count, tail) for k in ("real", "fake")]
        rows.append(
            [
                name + (f" ({', '.join(f'--{k} {v:g}' for k, v in tricks.items())})" if tricks else ""),
                f"{count} steps, {result.train_seconds / 60:.1f} min",
                f"{metrics['fid']:.2f} (floor {floor['fid']:.2f})",
                f"{metrics['coverage']:.3f} (floor {floor['coverage']:.3f})",
                f"{metrics['classes_covered']} / {metrics['class_entropy_bits']:.2f}",
                f"{int(fewest[1])} (step {fewest[0]})",
                f"{accuracy[0]:.2f} / {accuracy[1]:.2f}",
            ]
        )
        samples.append(final_samples(folder, 32))
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), dpi=100)
    for name, result in results.items():
        evals, history = result.eval_history, result.loss_history
        axes[0, 0].plot(*zip(*evals["classes_covered"]), marker="o", label=name)
        axes[0, 1].plot(*zip(*evals["class_entropy_bits"]), marker="o", label=name)
        axes[1, 1].plot(*zip(*evals["fid"]), marker="o", label=name)
        window = max(1, len(history["discriminator_accuracy_real"]) // 30)
        for key, style in (("discriminator_accuracy_real", "-"), ("discriminator_accuracy_fake", "--")):
            axes[1, 0].plot(*smoothed(history[key], window), style, label=f"{name}: {key.rsplit('_', 1)[1]}")
    titles = [
        ("digits the mnist classifier sees in 500 samples", "classes covered", (0, 10.5)),
        ("class entropy of the samples (log2 10 = 3.32 is uniform)", "bits", (0, 3.4)),
        ("discriminator accuracy on real (solid) and fake (dashed) batches", "accuracy", (0, 1.02)),
        ("FID (mnist features, 500 samples)", "FID", None),
    ]
    for ax, (title, label, ylim) in zip(axes.flat, titles):
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(label)
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        if ylim:
            ax.set_ylim(*ylim)
    fig.suptitle("DCGAN on MNIST: without and with label smoothing + instance noise", fontsize=10)
    curves = save_figure(fig, os.path.join(out, "dcgan_training.png"))
    grid = plot_image_rows(
        torch.cat([samples[0][:16], samples[1][:16], samples[0][16:], samples[1][16:]]),
        16,
        os.path.join(out, "dcgan_samples.png"),
        title="DCGAN samples after training: without tricks (rows 1, 3), with tricks (rows 2, 4)",
        row_labels=["without", "with", "without", "with"],
    )
    table = markdown(
        [
            "DCGAN on MNIST",
            "training",
            "FID (mnist features, 1,000 samples)",
            "coverage",
            "classes / entropy (bits)",
            "fewest classes during training",
            "final D accuracy real / fake",
        ],
        rows,
    )
    return table, [curves, grid]


def rank_correlation(first: list[float], second: list[float]) -> float:
    """Spearman's rank correlation of two equally long lists (nan for fewer than 3 points)."""
    if len(first) < 3:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(first, second).statistic)


@recipe("mnist-wgan")
def mnist_wgan(data_dir: str, out: str) -> tuple[str, list[str]]:
    """WGAN (weight clipping) and WGAN-GP on MNIST: the critic's Wasserstein estimate beside FID over training."""
    from hfgen.plotting import pyplot

    plt = pyplot()

    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.plotting import plot_image_rows, save_figure

    budgets = {"wgan": steps(800), "wgan-gp": steps(500)}
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), dpi=100, sharex="col")
    rows, samples = [], []
    for column, (model, count) in enumerate(budgets.items()):
        folder = os.path.join(out, model)
        every = max(1, count // 8)
        result = train(
            model, folder, train_data_dir=mnist_path(data_dir), max_train_steps=count, eval_steps=every,
            eval_num_images=500,
        )  # fmt: skip
        history, evals = result.loss_history["wasserstein_estimate"], result.eval_history["fid"]
        metrics = evaluate_pipeline(folder, num_images=200 if SMOKE else 1000, seed=0)
        window = max(1, len(history) // 40)
        axes[0, column].plot([p[0] for p in history], [p[1] for p in history], alpha=0.2, linewidth=0.6)
        axes[0, column].plot(*smoothed(history, window), color="C0")
        axes[0, column].set_title(f"{model}: Wasserstein estimate E[D(x)] − E[D(G(z))]", fontsize=9)
        axes[1, column].plot(*zip(*evals), marker="o", color="C1")
        axes[1, column].set_title(f"{model}: FID (mnist features, 500 samples)", fontsize=9)
        axes[1, column].set_xlabel("generator step")
        for ax in axes[:, column]:
            ax.grid(alpha=0.3)
        # the estimate at each evaluation: the mean over the generator steps since the previous evaluation
        estimates = [mean_before(history, step, window=every) for step, _ in evals]
        fids = [fid for _, fid in evals]
        peak = max(range(len(estimates)), key=estimates.__getitem__)
        rows.append(
            [
                model,
                f"{count} steps, {result.train_seconds / 60:.1f} min",
                f"{estimates[0]:.3f} → {estimates[peak]:.3f} (step {evals[peak][0]}) → {estimates[-1]:.3f}",
                f"{fids[0]:.1f} → {fids[peak]:.1f} → {fids[-1]:.1f}",
                f"{rank_correlation(estimates, fids):+.2f} / {rank_correlation(estimates[peak:], fids[peak:]):+.2f}",
                f"{metrics['fid']:.2f} (floor {metrics['real_data_floor']['fid']:.2f})",
                f"{metrics['coverage']:.3f}",
            ]
        )
        samples.append(final_samples(folder, 16))
    fig.suptitle("WGAN (clipping) and WGAN-GP on MNIST: does the Wasserstein estimate fall as FID falls?", fontsize=10)
    figure = save_figure(fig, os.path.join(out, "wasserstein_vs_fid.png"))
    grid = plot_image_rows(
        torch.cat(samples), 16, os.path.join(out, "wgan_samples.png"),
        title="Samples after training", row_labels=list(budgets),
    )  # fmt: skip
    table = markdown(
        [
            "MNIST",
            "training",
            "Wasserstein estimate: first → peak → last evaluation window",
            "FID (500 samples) at those evaluations",
            "rank correlation estimate vs FID: all evaluations / from the peak on",
            "final FID (1,000 samples)",
            "coverage",
        ],
        rows,
    )
    return table, [figure, grid]


# 0.19 s per training step in bf16 autocast without the mid block's attention (0.30 in fp32 with it) on 2 cores, run
# alone (the default [32, 64, 64] with attention: about 3x that), so that 3,700 training steps and DDPM-1000 on 150
# images (bf16 UNet, below) fit in 15 minutes. The cosine schedule (Nichol & Dhariwal 2021) spends fewer steps
# on near-pure noise than the linear one at 28x28: a first run with the linear schedule and 200 images took 16.2 min
# and reached DDIM-50 FID 64.4 (35x the floor).
DDPM_UNET = {
    "block_out_channels": [16, 32, 64], "attention_levels": [], "layers_per_block": 1,
    "ddpm_beta_schedule": "squaredcos_cap_v2",
}  # fmt: skip


# v-prediction (Salimans & Ho 2022) instead of epsilon: at 1,300 steps DDIM-50 reached FID 16.3 on 500 images
# where epsilon scored 83-86 (the few-step samplers divide epsilon's error by sqrt(alpha_bar) at high noise), and
# 2e-3 instead of 1e-3 gave 13.8. Min-SNR-5, batch 32 (same time) and 4e-3 did not help (17.7; 11.6 at 2,600 steps
# against 10.8 at 1,800; 15.8). bf16 autocast (the CPU has avx512_bf16) trains 1.38x faster: at 2e-3, this recipe
# with 1,800 fp32 steps scored 11.05 (150 images), with 2,300 bf16 steps in the same time 8.86. 3,100 steps (bf16
# training now runs attention with the math kernel, `hfgen.training.trainer.attention_backend`) scored 7.98 but took
# the recipe to 16.5 min when this shared machine ran slowly. The saved weights stay fp32. Sampling runs the UNet in
# bf16 autocast (`hfgen sample --mixed_precision bf16`): 1.8x faster DDPM-1000 on this model, FID 6.03 against 6.05
# and DDIM-50 9.503 against 9.505 on the 2,300-step model; the 2.1 minutes saved train 500 more steps.
# Without the mid block's attention (`add_attention=False`) 2,800 steps took 503 s instead of 642 and scored DDIM-50
# 7.01 instead of 7.58 (150 images, bf16 sampling), so the recipe drops it and trains 3,400 steps in that time.
# The samplers start at the last trained timestep (``timestep_spacing="trailing"``, Lin et al. 2024) and do not
# clip the predicted x0 (DDIM clips x0 but keeps the unclipped noise estimate): on the 3,400-step model DDIM-50 went
# from 6.77 to 5.02 with both (6.09 trailing alone, 5.84 no clipping alone), UniPC-20 from 7.45 to 4.67, DDPM-1000 from
# 3.01 to 2.83; 300 more steps (about a minute) use part of the 1.6 minutes that recipe (13.4 min) left.
DDPM_TRAINING = {
    "prediction_type": "v_prediction", "learning_rate": 2e-3, "mixed_precision": "bf16", "add_attention": False,
    "ddpm_timestep_spacing": "trailing", "ddpm_clip_sample": False,
}  # fmt: skip
DDPM_SAMPLING_PRECISION = "bf16"


@recipe("mnist-ddpm")
def mnist_ddpm(data_dir: str, out: str) -> tuple[str, list[str]]:
    """DDPM on MNIST (a CPU-sized UNet, EMA), sampled with DDPM-1000, DDIM-50 and <= 25-step samplers: FID,
    coverage and images/s on the same seed and count, against the real-data floor."""
    from hfgen.jobs.compare_samplers import compare_samplers

    folder = os.path.join(out, "model")
    count, num_images = steps(DDPM_BUDGET["steps"]), 150 if SMOKE else DDPM_BUDGET["images"]
    trained = 50 if SMOKE else 1000  # the smoke test trains 50 noise levels so that DDPM sampling stays short
    result = train(
        "ddpm", folder, train_data_dir=mnist_path(data_dir), max_train_steps=count, use_ema=True,
        save_images_steps=count, ddpm_num_steps=trained, **DDPM_UNET, **DDPM_TRAINING,
    )  # fmt: skip
    few = [("ddim", 25), ("dpmsolver++", 20), ("unipc", 20), ("dpmsolver++", 10)]
    few = few[::3] if SMOKE else few  # the tests: one of each kind of row, sampled quickly
    configs = [("ddpm", trained), ("ddim", 50), *few]
    rows = compare_samplers(folder, num_images=num_images, configs=configs, seed=0,
                            mixed_precision=DDPM_SAMPLING_PRECISION)  # fmt: skip
    floor = rows[0]["real_data_floor"]
    best = min((row for row in rows if row["num_inference_steps"] <= 25), key=lambda row: row["fid"])
    figures = []
    for name in ("sampler_samples.png", "sampler_comparison.png"):
        shutil.copy(os.path.join(folder, name), os.path.join(out, name))
        figures.append(os.path.join(out, name))
    table_rows = [
        [
            f"{row['scheduler']}-{row['num_inference_steps']}" + (" (best ≤ 25 steps)" if row is best else ""),
            row["nfe"],
            f"{row['fid']:.2f} ({row['fid'] / floor['fid']:.1f}x floor)",
            f"{row['precision']:.3f}",
            f"{row['coverage']:.3f}",
            f"{row['images_per_second']:.2f}",
        ]
        for row in rows
    ]
    table_rows.append(
        [f"real-data floor ({num_images} held-out images)", "", f"{floor['fid']:.2f}", f"{floor['precision']:.3f}",
         f"{floor['coverage']:.3f}", ""]
    )  # fmt: skip
    table = markdown(
        [
            f"DDPM on MNIST ({count} steps, {result.train_seconds / 60:.1f} min; {num_images} samples each)",
            "NFE",
            "FID (mnist features)",
            "precision",
            "coverage",
            "images/s (bf16 UNet)" if DDPM_SAMPLING_PRECISION == "bf16" else "images/s",
        ],
        table_rows,
    )
    return table, figures


# ---------------------------------------------------------------------------------------------------------- CelebA
def celeba_flags(data_dir: str) -> dict:
    return {
        "train_data_dir": os.path.join(data_dir, "celeba", "img_align_celeba"),
        "resolution": 64,
        "center_crop": True,
        "attribute_file": os.path.join(data_dir, "celeba", "list_attr_celeba.txt"),
        "attribute": "Smiling",
    }


def celeba_images(data_dir: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The CelebA train (9,000) or held-out (1,000) part as 64x64 centre crops in [-1, 1], with Smiling 0/1 labels."""
    from hfgen.data.images import images_to_tensor, open_image_source

    flags = celeba_flags(data_dir)
    source = open_image_source(
        train_data_dir=flags["train_data_dir"],
        split=split,
        attribute_file=flags["attribute_file"],
        attribute="Smiling",
    )
    return images_to_tensor(
        source, resolution=64, num_channels=3, center_crop=True, max_samples=200 if SMOKE else None
    )


@torch.no_grad()
def attribute_predictions(classifier, images: torch.Tensor) -> torch.Tensor:
    """0/1 predictions ``(N, 40)`` of the ``celeba`` attribute classifier for images in [0, 1]."""
    return torch.cat([(classifier.classify(chunk) > 0).long() for chunk in images.split(250)])


@recipe("celeba-smile")
def celeba_smile(data_dir: str, out: str) -> tuple[str, list[str]]:
    """VAE and beta-VAE (beta = 4) on 9,000 CelebA faces: reconstructions, prior samples, the smile vector, the most
    smile-separating latent dimension, and the attribute-transfer rate judged by the `celeba` classifier."""
    import hfgen
    from hfgen.metrics.features import load_feature_extractor
    from hfgen.plotting import plot_image_rows

    count, latent_dim = steps(400), 64  # 0.75 s per step on 2 cores: two models in the 15-minute budget
    train_x, train_y = celeba_images(data_dir, "train")
    test_x, test_y = celeba_images(data_dir, "test")
    classifier = load_feature_extractor("celeba")
    smiling = list(classifier.output_names).index("Smiling")
    others = [i for i in range(len(classifier.output_names)) if i != smiling]
    rows, figures = [], []
    for beta in (1.0, 4.0):
        name = "vae" if beta == 1 else "beta-vae"
        folder = os.path.join(out, name)
        seconds = train(
            "vae", folder, **celeba_flags(data_dir), latent_dim=latent_dim, beta=beta, likelihood="gaussian",
            max_train_steps=count, block_out_channels=[32, 64, 128, 256],
        ).train_seconds  # fmt: skip
        vae = hfgen.load_pipeline(folder)
        vae.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            reconstructions = vae.reconstruct(test_x, output_type="pt").images
            mse = float((((test_x + 1) / 2 - reconstructions) ** 2).mean())
            likelihood = vae.likelihood_metrics(test_x, generator=generator)
            prior = vae(batch_size=16, generator=torch.Generator().manual_seed(0), output_type="pt").images
            train_codes = vae.encode(train_x)
            vector = train_codes[train_y == 1].mean(0) - train_codes[train_y == 0].mean(0)
            # the dimension that best separates smiling from non-smiling training faces (difference of means / std)
            separation = vector / train_codes.std(0).clamp_min(1e-6)
            best_dim = int(separation.abs().argmax())
            rates = {}
            for source_label, sign in ((0, 1.0), (1, -1.0)):
                faces = test_x[test_y == source_label]
                codes = vae.encode(faces)
                before = attribute_predictions(classifier, vae.decode(codes, output_type="pt").images)
                after = attribute_predictions(classifier, vae.decode(codes + sign * vector, output_type="pt").images)
                originals = attribute_predictions(classifier, (faces + 1) / 2)
                rates[source_label] = {
                    "count": len(faces),
                    "original": float(originals[:, smiling].float().mean()),
                    "reconstructed": float(before[:, smiling].float().mean()),
                    "edited": float(after[:, smiling].float().mean()),
                    "others_changed": float((after[:, others] != before[:, others]).float().mean()),
                }
        alphas = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
        non_smiling = test_x[test_y == 0][:6]
        with torch.no_grad():
            edit_rows = [
                vae.apply_attribute(face, vector, alphas=alphas, output_type="pt").images for face in non_smiling
            ]
            traversal = vae.traverse(
                non_smiling[0], dims=[best_dim], values=torch.linspace(-3, 3, 8), output_type="pt"
            )
        figures.append(
            plot_image_rows(
                torch.cat([(test_x[:8] + 1) / 2, reconstructions[:8], prior[:8], prior[8:16]]),
                8,
                os.path.join(out, f"{name}_reconstructions_and_prior.png"),
                title=f"{name} (β = {beta:g}): held-out faces, their reconstructions, prior samples",
                row_labels=["held out", "reconstructed", "prior", "prior"],
            )
        )
        figures.append(
            plot_image_rows(
                torch.cat(edit_rows + [traversal.images]),
                len(alphas),
                os.path.join(out, f"{name}_smile_vector.png"),
                title=f"{name}: non-smiling held-out faces + α·v (v = mean smiling − mean non-smiling code); "
                f"last row: dimension {best_dim} from -3 to 3",
                col_labels=[f"α={a:g}" for a in alphas],
            )
        )
        forward, reverse = rates[0], rates[1]
        rows.append(
            [
                f"{name} (β = {beta:g}, {count} steps, {seconds / 60:.1f} min)",
                f"{mse:.4f}",
                f"{likelihood['bits_per_dim']:.3f}",
                f"{forward['edited']:.1%} (reconstructed {forward['reconstructed']:.1%}, original "
                f"{forward['original']:.1%}; n = {forward['count']})",
                f"{1 - reverse['edited']:.1%} (reconstructed {1 - reverse['reconstructed']:.1%}, original "
                f"{1 - reverse['original']:.1%}; n = {reverse['count']})",
                f"{forward['others_changed']:.1%} / {reverse['others_changed']:.1%}",
                f"{best_dim} ({float(separation[best_dim]):+.2f} σ)",
            ]
        )
    table = markdown(
        [
            "CelebA 64x64, latent 64",
            "held-out MSE ([0, 1] pixels)",
            "held-out −ELBO (bits/dim)",
            "non-smiling → called smiling after +v (α = 1)",
            "smiling → called not smiling after −v",
            "other 39 attributes changed (+v / −v)",
            "most smile-separating dimension",
        ],
        rows,
    )
    return table, figures


# ----------------------------------------------------------------------------------------------------------- Flows
def data_images(path: str, split: str, resolution: int, channels: int, limit: int | None = None) -> torch.Tensor:
    """A part (``train``, ``test`` = the fixed held-out part, ``all``) of a data set as `(N, C, R, R)` in [-1, 1]."""
    from hfgen.data.images import images_to_tensor, open_image_source

    source = open_image_source(train_data_dir=path, split=split)
    limit = min(limit or len(source), 64 if SMOKE else len(source))
    return images_to_tensor(source, resolution=resolution, num_channels=channels, max_samples=limit)[0]


def random_subset(images: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` images drawn without replacement (seed 0): CIFAR-10's file is ordered by class."""
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:count]]


def cifar_path(data_dir: str) -> str:
    return os.path.join(data_dir, "cifar10", "cifar10_test_images.npy")


def flow_ood(folder: str, train_images: torch.Tensor, held_out: torch.Tensor, out_sets: dict, title: str, out: str):
    """Score held-out and OOD sets with the flow in ``folder``; return the table rows and the histogram figure."""
    import hfgen
    from hfgen.jobs.ood import SCORES, auroc, ood_scores, plot_ood_histograms

    pipeline = hfgen.load_pipeline(folder)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        train_mean = float(torch.cat([pipeline.bits_per_dim(c, generator=torch.Generator().manual_seed(0))
                                      for c in train_images.split(500)]).mean())  # fmt: skip
        in_scores = ood_scores(pipeline, held_out, train_mean)
        scores = {f"{title} held out": in_scores}
        for name, images in out_sets.items():
            scores[name] = ood_scores(pipeline, images, train_mean)
    in_mean = f"{float(in_scores['nll'].mean()):.3f}"
    rows = [[f"{title} held out (in-distribution)", len(held_out), in_mean, "", "", ""]]
    for name, images in out_sets.items():
        rows.append(
            [name, len(images), f"{float(scores[name]['nll'].mean()):.3f}"]
            + [f"{auroc(in_scores[key], scores[name][key]):.3f}" for key in SCORES]
        )
    path = plot_ood_histograms(scores, os.path.join(out, f"ood_histograms_{title.lower().replace('-', '')}.png"))
    return rows, path, train_mean


OOD_HEADER = ["data", "images", "mean bits/dim", "AUROC NLL", "AUROC typicality", "AUROC complexity (Serrà)"]


@recipe("flow-ood-mnist")
def flow_ood_mnist(data_dir: str, out: str) -> tuple[str, list[str]]:
    """Real NVP trained on MNIST's 8,000 train images, scored on the 2,000 held-out ones and on CIFAR-10
    (greyscale, resized to 28), constant and noise images."""
    from hfgen.jobs.ood import load_ood_images

    folder = os.path.join(out, "model")
    count = steps(FLOW_BUDGET["mnist"])
    result = train("realnvp", folder, train_data_dir=mnist_path(data_dir), max_train_steps=count)
    train_images = data_images(mnist_path(data_dir), "train", 28, 1, limit=2000)
    held_out = data_images(mnist_path(data_dir), "test", 28, 1)
    cifar = random_subset(data_images(cifar_path(data_dir), "all", 28, 1), len(held_out))
    out_sets = {
        "CIFAR-10 (greyscale, 28x28)": cifar,
        "constant": load_ood_images("constant", held_out),
        "noise": load_ood_images("noise", held_out),
    }
    rows, histogram, _ = flow_ood(folder, train_images, held_out, out_sets, "MNIST", out)
    table = markdown(
        [f"Real NVP on MNIST ({count} steps, {result.train_seconds / 60:.1f} min)"] + OOD_HEADER[1:], rows
    )
    return table, [histogram]


@recipe("flow-ood-cifar")
def flow_ood_cifar(data_dir: str, out: str) -> tuple[str, list[str]]:
    """Real NVP trained on CIFAR-10's 9,000 train images, scored on the 1,000 held-out ones and on MNIST (padded to
    32, repeated to 3 channels), constant and noise images; held-out bits/dim next to PNG's."""
    from hfgen.jobs.ood import load_ood_images
    from hfgen.metrics.likelihood import png_bits_per_dim

    folder = os.path.join(out, "model")
    count = steps(FLOW_BUDGET["cifar"])
    result = train("realnvp", folder, train_data_dir=cifar_path(data_dir), max_train_steps=count)
    train_images = data_images(cifar_path(data_dir), "train", 32, 3, limit=2000)
    held_out = data_images(cifar_path(data_dir), "test", 32, 3)
    digits = random_subset(data_images(mnist_path(data_dir), "all", 28, 1), len(held_out))
    digits = torch.nn.functional.pad(digits, (2, 2, 2, 2), value=-1.0).expand(-1, 3, -1, -1).contiguous()
    out_sets = {
        "MNIST (padded to 32, 3 channels)": digits,
        "constant": load_ood_images("constant", held_out),
        "noise": load_ood_images("noise", held_out),
    }
    rows, histogram, _ = flow_ood(folder, train_images, held_out, out_sets, "CIFAR-10", out)
    png = png_bits_per_dim(held_out)
    table = markdown(
        [f"Real NVP on CIFAR-10 ({count} steps, {result.train_seconds / 60:.1f} min)"] + OOD_HEADER[1:], rows
    )
    table += "\n\n" + markdown(
        ["held-out CIFAR-10 (1,000 images)", "bits/dim"],
        [
            [f"Real NVP, {count} steps ({result.train_seconds / 60:.1f} min on 2 CPU cores)", rows[0][2]],
            ["PNG, each image its own file (headers included)", f"{png['png_bits_per_dim']:.3f}"],
            ["PNG, all images tiled into one file", f"{png['png_tiled_bits_per_dim']:.3f}"],
            ["Real NVP paper (Dinh et al. 2017, full training set, long GPU training)", "3.49"],
        ],
    )
    return table, [histogram]


# ----------------------------------------------------------------------------------------------------------- CLEVR
def clevr_statistics(root: str, split: str) -> dict:
    """Question-type and answer shares, objects per scene and materials of a CLEVR-layout split."""
    from collections import Counter

    from hfgen.data.clevr import load_clevr

    dataset = load_clevr(root, split)
    base = os.path.join(root, "CLEVR_v1.0") if os.path.isdir(os.path.join(root, "CLEVR_v1.0")) else root
    with open(os.path.join(base, "scenes", f"CLEVR_{split}_scenes.json")) as handle:
        scenes = json.load(handle)["scenes"]
    objects = [len(scene["objects"]) for scene in scenes]
    materials = Counter(obj.get("material", "?") for scene in scenes for obj in scene["objects"])
    return {
        "questions": len(dataset),
        "images": len(scenes),
        "types": Counter(dataset["question_type"]),
        "answers": Counter(dataset["answer"]),
        "objects": (min(objects), sum(objects) / len(objects), max(objects)),
        "materials": materials,
    }


@recipe("clevr-vqa")
def clevr_vqa(data_dir: str, out: str) -> tuple[str, list[str]]:
    """Real CLEVR (267 renders, 2,670 questions) split by image 217 / 50; the tiny PaliGemma + LoRA fine-tuned on
    the 217 and scored per question type against the majority answer, before and after; and the offline
    CLEVR-style generator's question and answer distributions next to real CLEVR's."""
    from hfgen.data.clevr import make_clevr_dataset, split_clevr_by_image
    from hfgen.vqa.evaluation import run_evaluation
    from hfgen.vqa.finetune import VQAFinetuneArguments, finetune

    real = os.path.join(data_dir, "clevr")
    split_dir = os.path.join(out, "clevr-split")
    shutil.rmtree(split_dir, ignore_errors=True)
    parts = split_clevr_by_image(real, split_dir, num_held_out_images=50, seed=0)
    adapter = os.path.join(out, "adapter")
    count = steps(VQA_STEPS)
    start = time.perf_counter()
    finetune(
        VQAFinetuneArguments(
            clevr_dir=split_dir, output_dir=adapter, tiny=True, max_train_steps=count, logger="none",
            overwrite_output_dir=True, checkpointing_steps=max(count, 1),
        )
    )  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    result = run_evaluation(
        split_dir, tiny=True, adapter=adapter, split="val", compare_to_base=True, output_dir=os.path.join(out, "eval"),
        max_questions=40 if SMOKE else None,
    )  # fmt: skip
    models = result["models"]
    names = {"base": "tiny PaliGemma, untrained", "fine-tuned": f"+ LoRA, {count} steps ({minutes:.1f} min)",
             "majority answer per kind": "majority answer per question type (train part)"}  # fmt: skip
    overall = markdown(
        [f"real CLEVR, {parts['val']['questions']} held-out questions of {parts['val']['images']} images",
         "ROUGE-1", "ROUGE-L", "exact match"],
        [[names[n], f"{s['rouge1']:.3f}", f"{s['rougeL']:.3f}", f"{s['exact_match']:.3f}"] for n, s in models.items()],
    )  # fmt: skip
    kinds = sorted({kind for scores in models.values() for kind in scores["per_type"]})
    per_type = markdown(
        ["question type", "questions"] + [f"{names[n].split(',')[0]}: EM / R-1 / R-L" for n in models],
        [
            [kind, next(s["per_type"][kind]["count"] for s in models.values() if kind in s["per_type"])]
            + [
                "{exact_match:.2f} / {rouge1:.2f} / {rougeL:.2f}".format(**s["per_type"][kind])
                if kind in s["per_type"] else ""
                for s in models.values()
            ]
            for kind in kinds
        ],
    )  # fmt: skip
    generated = os.path.join(out, "generated")
    shutil.rmtree(generated, ignore_errors=True)
    make_clevr_dataset(generated, num_images=27 if SMOKE else 267, seed=0, val_fraction=0.0)
    real_stats, fake_stats = clevr_statistics(real, "train"), clevr_statistics(generated, "train")
    rows = [["images / questions", f"{real_stats['images']} / {real_stats['questions']}",
             f"{fake_stats['images']} / {fake_stats['questions']}"]]  # fmt: skip
    for kind in sorted(set(real_stats["types"]) | set(fake_stats["types"])):
        rows.append([f"question type `{kind}`"] + [
            f"{stats['types'].get(kind, 0) / stats['questions']:.1%}" for stats in (real_stats, fake_stats)
        ])  # fmt: skip
    top = [answer for answer, _ in real_stats["answers"].most_common(8)]
    for answer in top + sorted(a for a, _ in fake_stats["answers"].most_common(8) if a not in top):
        rows.append([f"answer `{answer}`"] + [
            f"{stats['answers'].get(answer, 0) / stats['questions']:.1%}" for stats in (real_stats, fake_stats)
        ])  # fmt: skip
    rows.append(["distinct answers"] + [str(len(stats["answers"])) for stats in (real_stats, fake_stats)])
    rows.append(["objects per scene (min / mean / max)"] + [
        "{} / {:.1f} / {}".format(*stats["objects"]) for stats in (real_stats, fake_stats)
    ])  # fmt: skip
    rows.append(["materials"] + [
        ", ".join(f"{m} {c / sum(stats['materials'].values()):.0%}" for m, c in sorted(stats["materials"].items()))
        for stats in (real_stats, fake_stats)
    ])  # fmt: skip
    distribution = markdown(["", "real CLEVR (all 267 images)", "hfgen's offline generator (seed 0)"], rows)
    figure = clevr_side_by_side(real, generated, os.path.join(out, "real_vs_generated.png"))
    return overall + "\n\n" + per_type + "\n\n" + distribution, [figure]


def clevr_side_by_side(real: str, generated: str, path: str) -> str:
    """Four real CLEVR renders above four generated scenes, with one question and answer each."""
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    from hfgen.data.clevr import load_clevr
    from hfgen.plotting import save_figure

    fig, axes = plt.subplots(2, 4, figsize=(14, 6.2), dpi=100)
    for row, (root, label) in enumerate(((real, "real CLEVR"), (generated, "generated"))):
        dataset = load_clevr(root, "train")
        for column, ax in enumerate(axes[row]):
            item = dataset[column * 10]
            ax.imshow(item["image"])
            question = textwrap.fill(f"{label}: {item['question']}", 48)
            ax.set_title(f"{question}\n→ {item['answer']}", fontsize=7)
            ax.axis("off")
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------- the trilemma, measured
def run_compare(out: str, label: str, data_flags: dict) -> tuple[str, list[str]]:
    """`hfgen compare` with its default families on ``data_flags`` (every family trained afresh)."""
    from hfgen.jobs.compare import DEFAULT_MODELS, compare

    minutes, num_images = COMPARE_BUDGET[label]
    models, budget = (
        (("vae", "dcgan"), {"max_train_steps": 2}) if SMOKE else (DEFAULT_MODELS, {"budget_minutes": minutes})
    )
    compare(models=models, num_images=100 if SMOKE else num_images, output_dir=out, retrain=True, **budget,
            **data_flags)  # fmt: skip
    with open(os.path.join(out, "compare.md")) as handle:
        table = handle.read().split("\n", 2)[2].strip()  # without the title line
    # paths in the command as a reader types them from the repository root
    table = table.replace(os.path.dirname(ROOT) + os.sep, ".." + os.sep).replace(
        ".." + os.sep + os.path.basename(ROOT) + os.sep, ""
    )
    return table, [os.path.join(out, "trilemma.png"), os.path.join(out, "samples.png")]


@recipe("compare-digits")
def compare_digits(data_dir: str, out: str) -> tuple[str, list[str]]:
    """`hfgen compare` on the embedded digits (16x16) with its defaults: 3 minutes of training per family, 300 images
    per sampler."""
    return run_compare(out, "digits", {})


@recipe("compare-mnist")
def compare_mnist(data_dir: str, out: str) -> tuple[str, list[str]]:
    """`hfgen compare` on MNIST (8,000 train / 2,000 held-out, 28x28), 3 minutes per family, 150 images per sampler
    (FID with the 128-d ``mnist`` features needs more than 128)."""
    return run_compare(out, "mnist", {"train_data_dir": mnist_path(data_dir)})


# ---------------------------------------------------------------------------------------- class-conditional
CONDITIONAL_SCALES = [0.0, 1.0, 2.0, 3.0, 5.0]  # the guidance sweep (w = 1: no guidance)
# images: samples per evaluation of the DDPMs (each w of the sweep); one_shot_images: of the VAE and GANs (MNIST:
# 1,300 = 130 per class, enough for the per-class FID with 128-d features)
# The GANs with the mode-seeking regulariser (without it the conditional generators ignore z: recall 0); MNIST: a
# 4-d VAE code (with 16 or 8 dimensions z carries the class too and prior samples often show another digit).
CONDITIONAL_BUDGET = {
    "digits": {"images": 1000, "one_shot_images": 1000, "gan_flags": {"mode_seeking_weight": 1.0}},
    "mnist": {
        "images": 500, "one_shot_images": 1300, "ddpm_steps": 5000, "gan_steps": {"dcgan": 5000, "wgan-gp": 1000},
        "gan_flags": {"mode_seeking_weight": 1.0}, "vae_latent_dim": 4,
    },
}  # fmt: skip


def class_rows(folder: str, title: str, path: str, per_class: int = 8, guidance_scale: float | None = None) -> str:
    """A figure with one row per class of a conditional model (``per_class`` samples each, seed 0)."""
    import hfgen
    from hfgen.pipelines.sampling import sample_images
    from hfgen.plotting import plot_image_rows

    pipeline = hfgen.load_pipeline(folder)
    names = pipeline.id2label
    labels = torch.arange(len(names)).repeat_interleave(per_class)
    kwargs = {"scheduler_name": "ddim", "num_inference_steps": 50} if hasattr(pipeline, "unet") else {}
    images = sample_images(
        pipeline, len(labels), generator=torch.Generator().manual_seed(0), class_labels=labels,
        guidance_scale=guidance_scale, show_progress=False, **kwargs,
    ).images  # fmt: skip
    return plot_image_rows(images, per_class, path, title=title, row_labels=[names[i] for i in range(len(names))])


def run_conditional(out: str, label: str, data_flags: dict) -> tuple[str, list[str]]:
    """Conditional VAE, DCGAN, WGAN-GP and DDPM (+ the unconditional DDPM at the same budget) on ``data_flags``:
    class accuracy, FID, precision, recall and coverage of each, and the DDPM's guidance sweep."""
    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.jobs.guidance_sweep import guidance_sweep

    budget = CONDITIONAL_BUDGET[label]
    num_images = 150 if SMOKE else budget["images"]
    one_shot_images = 150 if SMOKE else budget["one_shot_images"]
    ddpm_flags = dict(DDPM_UNET) if "ddpm_steps" in budget else {}
    if "ddpm_steps" in budget:
        ddpm_flags["max_train_steps"] = steps(budget["ddpm_steps"])
    elif SMOKE:
        ddpm_flags["max_train_steps"] = steps(2)
    if SMOKE:
        ddpm_flags["ddpm_num_steps"] = 50
    gan_flags = {name: dict(budget.get("gan_flags", {})) for name in ("dcgan", "wgan-gp")}
    for name, count in budget.get("gan_steps", {}).items():
        gan_flags[name]["max_train_steps"] = steps(count)
    if SMOKE:
        for flags in gan_flags.values():
            flags["max_train_steps"] = 2
    vae_flags = {"max_train_steps": 2} if SMOKE else {}
    sampler = {"scheduler_name": "ddim", "num_inference_steps": 10 if SMOKE else 50}
    mode_seeking = " + mode seeking" if budget.get("gan_flags", {}).get("mode_seeking_weight") else ""
    runs = [
        ("vae", "conditional VAE (Sohn et al. 2015)", {"latent_dim": budget.get("vae_latent_dim", 16), **vae_flags}),
        ("dcgan", f"conditional DCGAN + projection discriminator{mode_seeking}", gan_flags["dcgan"]),
        ("wgan-gp", f"conditional WGAN-GP + projection critic{mode_seeking}", gan_flags["wgan-gp"]),
        ("ddpm", "conditional DDPM (CFG, label dropout 0.1)", {"use_ema": True, **ddpm_flags}),
    ]
    rows, figures, minutes = [], [], {}
    for model, title, flags in runs:
        folder = os.path.join(out, f"conditional-{model}")
        result = train(model, folder, class_conditional=True, **flags, **data_flags)
        minutes[model] = result.train_seconds / 60
        if model != "ddpm":
            metrics = evaluate_pipeline(folder, num_images=one_shot_images, seed=0)
            rows.append((model, title, metrics))
            figures.append(class_rows(folder, f"{title}, one row per class", os.path.join(out, f"{model}.png")))
    folder = os.path.join(out, "conditional-ddpm")
    sweep = guidance_sweep(folder, CONDITIONAL_SCALES, num_images=num_images, seed=0, **sampler)
    shutil.copy(os.path.join(folder, "guidance_sweep.png"), os.path.join(out, "guidance_sweep.png"))
    figures.append(os.path.join(out, "guidance_sweep.png"))
    best = max(sweep, key=lambda row: (row.get("class_accuracy") or 0.0, -row["fid"]))
    for w in sorted({1.0, best["guidance_scale"], 3.0}):  # no guidance, the best, and strong guidance
        path = os.path.join(out, f"ddpm-w{w:g}.png")
        figures.append(class_rows(folder, f"conditional DDPM, DDIM-50, w = {w:g}", path, guidance_scale=w))
    unconditional = os.path.join(out, "unconditional-ddpm")
    result = train("ddpm", unconditional, **{"use_ema": True, **ddpm_flags}, **data_flags)
    minutes["unconditional"] = result.train_seconds / 60
    plain = evaluate_pipeline(unconditional, num_images=num_images, seed=0, **sampler)
    at_one = next(row for row in sweep if row["guidance_scale"] == 1.0)
    header = [
        "model (equal classes, seed 0)", "samples", "training", "class accuracy", "FID (floor)", "per-class FID",
        "precision", "recall", "coverage",
    ]  # fmt: skip

    def cells(name, minutes_, metrics):
        accuracy = metrics.get("class_accuracy")
        per_class = metrics.get("mean_per_class_fid")
        return [
            name, metrics["num_images"], f"{minutes_:.1f} min", "n/a" if accuracy is None else f"{accuracy:.3f}",
            f"{metrics['fid']:.2f} ({metrics['real_data_floor']['fid']:.2f})",
            "n/a" if per_class is None else f"{per_class:.2f} (mean of {len(metrics['per_class_fid'])})",
            f"{metrics['precision']:.3f}", f"{metrics['recall']:.3f}", f"{metrics['coverage']:.3f}",
        ]  # fmt: skip

    table_rows = [cells(title, minutes[model], metrics) for model, title, metrics in rows]
    table_rows.append(cells("conditional DDPM, DDIM-50, w = 1 (no guidance)", minutes["ddpm"], at_one))
    best_name = f"conditional DDPM, DDIM-50, w = {best['guidance_scale']:g} (best class accuracy)"
    table_rows.append(cells(best_name, minutes["ddpm"], best))
    table_rows.append(cells("unconditional DDPM, DDIM-50 (same budget)", minutes["unconditional"], plain))
    ratio = at_one["fid"] / plain["fid"]
    sweep_rows = [
        [f"{row['guidance_scale']:g}", f"{row['fid']:.2f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}",
         f"{row['coverage']:.3f}", f"{row.get('class_accuracy', float('nan')):.3f}", f"{row['images_per_second']:.1f}",
         row["nfe"]]
        for row in sweep
    ]  # fmt: skip
    table = (
        markdown(header, table_rows)
        + f"\n\nFID of the conditional DDPM at w = 1 over all classes / the unconditional DDPM's: **{ratio:.2f}**"
        + " (target: within 10 %).\n\nGuidance sweep of the conditional DDPM (DDIM-50, "
        + f"{num_images} samples per w, seed 0):\n\n"
        + markdown(["w", "FID", "precision", "recall", "coverage", "class accuracy", "images/s", "NFE"], sweep_rows)
    )
    return table, figures


@recipe("conditional-digits")
def conditional_digits(data_dir: str, out: str) -> tuple[str, list[str]]:
    """Class-conditional VAE, DCGAN, WGAN-GP (with the mode-seeking regulariser) and DDPM on the digits at their
    default budgets; the DDPM's guidance sweep; the unconditional DDPM at the same budget."""
    return run_conditional(out, "digits", {})


@recipe("conditional-mnist")
def conditional_mnist(data_dir: str, out: str) -> tuple[str, list[str]]:
    """The same on MNIST (8,000 train / 2,000 held-out, 28x28): the CPU-sized DDPM UNet of mnist-ddpm (5,000 steps),
    5,000 DCGAN and 1,000 WGAN-GP steps with the mode-seeking regulariser, the VAE's default 3,000 steps with a 4-d
    code."""
    return run_conditional(out, "mnist", {"train_data_dir": mnist_path(data_dir)})


def readme_markers(name: str) -> tuple[str, str]:
    """The HTML comments around recipe ``name``'s table in the README."""
    return f"<!-- reproduce:{name} -->", f"<!-- /reproduce:{name} -->"


def update_readme_table(readme: str, name: str, table: str, seconds: float) -> None:
    """Put ``table`` (and the measured wall time) between the recipe's markers in the README, so that the README
    shows exactly what the last ``--update_docs`` run printed. A README without the markers is left alone."""
    import re

    begin, end = readme_markers(name)
    with open(readme, encoding="utf-8") as handle:
        text = handle.read()
    if begin not in text or end not in text:
        print(f"README.md has no {begin} ... {end} markers; table not copied", file=sys.stderr)
        return
    block = f"{begin}\nWall time of the recipe: {seconds / 60:.1f} min.\n\n{table}\n{end}"
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    with open(readme, "w", encoding="utf-8") as handle:
        handle.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), default=None)
    parser.add_argument("--data_dir", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--output_dir", default=os.path.join(ROOT, "outputs", "reproduce"))
    parser.add_argument("--update_docs", action="store_true", help="Copy tables and figures into docs/reproduce/.")
    parser.add_argument("--smoke", action="store_true", help="2 training steps per model (for tests).")
    args = parser.parse_args()
    global SMOKE
    SMOKE = args.smoke
    if not os.path.isdir(args.data_dir):
        print(
            f"hfgen: error: {args.data_dir} does not exist; pass --data_dir with the real data sets", file=sys.stderr
        )
        sys.exit(2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    summary = {}
    for name in args.only or sorted(RECIPES):
        out = os.path.join(args.output_dir, name)
        os.makedirs(out, exist_ok=True)
        start = time.perf_counter()
        table, figures = RECIPES[name](args.data_dir, out)
        seconds = time.perf_counter() - start
        with open(os.path.join(out, "table.md"), "w") as handle:
            handle.write(table + "\n")
        print(f"\n## {name} (wall time {seconds / 60:.1f} min)\n\n{table}\n")
        for figure in figures:
            print(f"figure: {figure}")
        summary[name] = {"wall_seconds": round(seconds, 1), "figures": figures}
        if args.update_docs:
            docs = os.path.join(ROOT, "docs", "reproduce", name)
            os.makedirs(docs, exist_ok=True)
            shutil.copy(os.path.join(out, "table.md"), docs)
            for figure in figures:
                shutil.copy(figure, docs)
            update_readme_table(os.path.join(ROOT, "README.md"), name, table, seconds)
    with open(os.path.join(args.output_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
