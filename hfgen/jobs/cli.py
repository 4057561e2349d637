"""`hfgen explore` and `hfgen ood`: argument parsing for `hfgen.jobs.explore` and `hfgen.jobs.ood` (called by
`hfgen.cli.main`)."""

from __future__ import annotations

import os

from hfgen.command_line import ArgumentParser


def explore_main(argv: list[str]) -> None:
    """``hfgen explore OUTPUT_DIR [flags]``: latent-space figures of an autoencoder or VAE."""
    from hfgen.jobs.explore import explore

    parser = ArgumentParser(
        prog="hfgen explore",
        description="Draw the latent space of a trained autoencoder or VAE: reconstructions, prior samples (VAE), "
        "latent map, decoded manifold, traversal, morphing and attribute vector, as PNGs in OUTPUT_DIR/figures/.",
    )
    parser.add_argument(
        "output_dir", help="A trained autoencoder or VAE folder (or a Hub repo id with --figures_dir)."
    )
    parser.add_argument("--figures_dir", default=None, help="Where to write the PNGs. Default: OUTPUT_DIR/figures.")
    parser.add_argument(
        "--dataset",
        default="auto",
        help="Held-out images: 'auto' (the held-out part of the training data, with its labels: digit classes or "
        "--attribute labels), 'digits' (test split) or a folder/.npy/save_to_disk path.",
    )
    parser.add_argument(
        "--source_class",
        type=int,
        default=None,
        help="Attribute vector: the label it starts from. Default: 1 for digits, 0 for 0/1 attribute labels.",
    )
    parser.add_argument(
        "--target_class",
        type=int,
        default=None,
        help="Attribute vector: the label it points to. Default: 7 for digits, 1 for 0/1 attribute labels.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the prior samples.")
    args = parser.parse_args(argv)
    paths = explore(
        args.output_dir,
        figures_dir=args.figures_dir,
        dataset=args.dataset,
        source_class=args.source_class,
        target_class=args.target_class,
        seed=args.seed,
    )
    for name, path in paths.items():
        print(f"{name:>17}: {path}")


def ood_main(argv: list[str]) -> None:
    """``hfgen ood OUTPUT_DIR --out SET [...]``: out-of-distribution detection with a flow."""
    from hfgen.jobs.ood import BUILT_IN_OOD, detect_ood

    parser = ArgumentParser(
        prog="hfgen ood",
        description="Score held-out in-distribution images and OOD sets with a trained flow: AUROC of the raw "
        "likelihood, the typicality distance and the input-complexity-corrected score (Serra et al. 2020); "
        "writes OUTPUT_DIR/ood/ood.md, ood.json and ood_histograms.png.",
    )
    parser.add_argument("output_dir", help="A trained realnvp folder.")
    parser.add_argument("--in", dest="in_dist", default="digits", help="In-distribution data: 'digits' or a path.")
    parser.add_argument(
        "--out",
        nargs="+",
        default=["noise", "constant", "flipped"],
        help=f"OOD sets: {', '.join(BUILT_IN_OOD)} or paths.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the dequantisation noise and noise images.")
    args = parser.parse_args(argv)
    detect_ood(args.output_dir, args.out, in_dist=args.in_dist, seed=args.seed)
    folder = os.path.join(args.output_dir, "ood")
    with open(os.path.join(folder, "ood.md")) as handle:
        print(handle.read())
    print(f"wrote ood.md, ood.json and ood_histograms.png into {folder}")
