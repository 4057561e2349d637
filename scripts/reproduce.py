"""Reproduce the published experiments on real data and write the tables and figures the README shows.

    python scripts/reproduce.py [--only NAME ...] [--data_dir ../shared/data] [--output_dir outputs/reproduce]

Each recipe trains through `hfgen.train`, measures with hfgen's own evaluation code, prints its markdown table and
its wall time, and writes ``OUTPUT_DIR/NAME/table.md`` plus its figures (copied to ``docs/figures/NAME/`` with
``--update_docs``, the files the README links). Seed 0 everywhere; run alone on the machine (2 CPU cores: a second
busy process slows PyTorch 10-50x).

Recipes (``--only``):
- ``mnist-autoencoder``: a 2-D-code autoencoder on MNIST's 8,000 train images: the held-out latent map coloured by
  digit, the decoded manifold, and which digits overlap in the code (k-NN confusions of the held-out codes).
- ``mnist-vae``: VAEs with ``--latent_dim 2`` and ``--latent_dim 100``: prior samples side by side, FID and coverage
  (``mnist`` features, 1,000 samples against the 2,000 held-out images, with the real-data floor) and held-out
  negative ELBO.
- ``celeba-smile``: VAE and β-VAE (β = 4) on the 9,000 CelebA train faces (64x64 centre crops): held-out
  reconstructions and prior samples, the smile vector added to held-out non-smiling faces (α from -1.5 to 2), the
  latent dimension that best separates smiling from non-smiling faces and its traversal, and the attribute-transfer
  rate: the share of held-out non-smiling faces the ``celeba`` classifier calls smiling after +v (and the reverse),
  against its rate on the unedited reconstructions, with the share of the other 39 predicted attributes that changed.
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


def train(model: str, output_dir: str, **flags) -> float:
    """Train with hfgen's one loop (seed 0, no tensorboard); returns the training seconds."""
    import hfgen

    if SMOKE:
        flags.update(train_batch_size=16, save_images_steps=1000, checkpointing_steps=1000, num_sample_images=4)
        flags.update(max_train_samples=64)
    result = hfgen.train(model, output_dir=output_dir, overwrite_output_dir=True, logger="none", seed=0, **flags)
    return result.train_seconds


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
    from hfgen.explore import explore, load_held_out_images

    folder = os.path.join(out, "model")
    count = steps(3000)
    seconds = train("autoencoder", folder, train_data_dir=mnist_path(data_dir), latent_dim=2, max_train_steps=count)
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
    from hfgen.metrics.evaluate import evaluate_pipeline
    from hfgen.plotting import plot_image_rows

    rows, grids = [], []
    count = steps(3000)
    for latent_dim in (2, 100):
        folder = os.path.join(out, f"latent-{latent_dim}")
        seconds = train(
            "vae", folder, train_data_dir=mnist_path(data_dir), latent_dim=latent_dim, max_train_steps=count
        )
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
        )  # fmt: skip
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
    with open(os.path.join(args.output_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
