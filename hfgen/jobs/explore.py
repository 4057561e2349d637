"""Figures of a trained autoencoder's or VAE's latent space (`hfgen explore OUTPUT_DIR`).

`explore` writes every figure into ``OUTPUT_DIR/figures/``; each one is also a function of its own:

- `plot_reconstructions`: held-out images (top row) and their reconstructions (bottom row);
- `plot_prior_samples`: images decoded from z ~ N(0, I) (VAE only);
- `plot_latent_map`: the held-out codes, coloured by label (PCA projection when ``latent_dim > 2``);
- `plot_latent_manifold`: images decoded on a grid over the latent plane (Kingma & Welling 2014, Fig. 4);
- `plot_traversal`: one row per latent dimension (the largest mean KL first for a VAE, the largest variance for an
  autoencoder), that dimension swept while the others keep a held-out image's values (Higgins et al. 2017);
- `plot_morphing`: a row of images interpolated between two held-out digits;
- `plot_attribute_vector`: z + α·v with v = mean code of one class minus another's (White 2016's "smile vector").

Images are `(N, C, H, W)` tensors in [-1, 1] (as `hfgen.data.images.decoding.images_to_tensor` returns them).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from hfgen.errors import DatasetError, HfgenError


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.detach().cpu().float() + 1) / 2).clamp(0, 1)


def _is_vae(pipeline) -> bool:
    return callable(getattr(pipeline, "negative_elbo", None))


def folder_data(output_dir: str):
    """What `load_held_out_images` reads for a trained folder: the data arguments of its ``training_args.json``
    (`hfgen.metrics.image_quality.training_data_spec`), or ``"digits"`` for a folder without one (a Hub id)."""
    from hfgen.metrics.image_quality import training_data_spec

    return (training_data_spec(output_dir) if os.path.isdir(output_dir) else None) or "digits"


def load_held_out_images(
    pipeline, dataset="digits", max_images: int = 2000
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Held-out images for the figures, preprocessed to the model's size: ``(images in [-1, 1], labels or None)``.

    ``"digits"`` gives the 360-image test split with labels; a dict of training data arguments
    (`hfgen.metrics.image_quality.training_data_spec`) gives the held-out part of that data (all of it when it has
    none) with its labels (class labels, or the 0/1 ``--attribute`` labels); a path (image folder, ``.npy``,
    ``save_to_disk``) gives its images, with labels when it has them. At most ``max_images`` (the first ones).

    Raises:
        DatasetError: for a missing or unreadable data set.
    """
    from hfgen.data.images.decoding import images_to_tensor
    from hfgen.data.images.formats import load_image_dataset
    from hfgen.data.images.source import open_held_out_source, open_image_source

    config = next(  # the network's image size and channels (``vae``/``autoencoder``, ``flow``, ``unet``, ...)
        c.config
        for c in pipeline.components.values()
        if hasattr(getattr(c, "config", None), "get") and c.config.get("sample_size") and c.config.get("in_channels")
    )
    if isinstance(dataset, dict):
        spec = dict(dataset)
        center_crop = spec.pop("center_crop", True)
        if not spec.get("train_data_dir") and spec.get("dataset_name") in (None, "digits"):
            return load_held_out_images(pipeline, "digits", max_images)
        source = open_held_out_source(**spec)
        if source is None:  # no held-out part: the figures use all of the data
            source = open_image_source(split="all", **spec)
        return images_to_tensor(
            source,
            resolution=config.sample_size,
            num_channels=config.in_channels,
            center_crop=True if center_crop is None else center_crop,
            max_samples=max_images,
        )
    if dataset == "digits":
        data = load_image_dataset("digits", split="test")
    elif os.path.exists(dataset):
        data = load_image_dataset(train_data_dir=dataset)
    else:
        data = load_image_dataset(dataset_name=dataset, split="test")
    return images_to_tensor(data, resolution=config.sample_size, num_channels=config.in_channels)


def plot_reconstructions(pipeline, images: torch.Tensor, path: str, num_images: int = 16) -> str:
    """Originals (top) and reconstructions (bottom) of the first ``num_images`` images. Returns ``path``."""
    from hfgen.plotting import plot_image_rows

    originals = images[:num_images]
    reconstructions = pipeline.reconstruct(originals, output_type="pt").images.cpu()
    grid = torch.cat([_to_unit(originals), reconstructions])
    return plot_image_rows(
        grid,
        len(originals),
        path,
        title="Held-out images and their reconstructions",
        row_labels=["original", "reconstruction"],
    )


def plot_prior_samples(pipeline, path: str, num_images: int = 64, seed: int = 0, temperature: float = 1.0) -> str:
    """An 8-wide grid of images decoded from the prior (VAE only). Returns ``path``.

    Raises:
        UnsupportedOperationError: for an autoencoder (no prior).
    """
    from hfgen.plotting import plot_image_rows

    generator = torch.Generator().manual_seed(seed)
    samples = pipeline(batch_size=num_images, generator=generator, temperature=temperature, output_type="pt").images
    return plot_image_rows(
        samples.cpu(), 8, path, title=f"Samples from the prior N(0, I) (temperature {temperature:g})"
    )


def _projection(codes: np.ndarray):
    """(2-D coordinates of ``codes``, a function mapping 2-D coordinates back to codes, axis names)."""
    if codes.shape[1] == 1:
        return np.c_[codes, np.zeros(len(codes))], lambda xy: xy[:, :1], ("z1", "(none)")
    if codes.shape[1] == 2:
        return codes, lambda xy: xy, ("z1", "z2")
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(codes)
    ratio = pca.explained_variance_ratio_
    names = (f"PC1 ({ratio[0]:.0%} of variance)", f"PC2 ({ratio[1]:.0%})")
    return pca.transform(codes), pca.inverse_transform, names


def plot_latent_map(pipeline, images: torch.Tensor, labels: torch.Tensor | None, path: str) -> str:
    """Scatter of the codes of ``images`` (posterior means for a VAE) coloured by ``labels``. Returns ``path``."""
    from hfgen.plotting import pyplot

    plt = pyplot()

    from hfgen.plotting import save_figure

    codes = pipeline.encode(images).cpu().numpy()
    points, _, names = _projection(codes)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    if labels is not None:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, label in enumerate(classes):
            chosen = labels == label
            ax.scatter(*points[chosen].T, s=10, color=cmap(i % cmap.N), label=str(label), alpha=0.8)
        ax.legend(title="label", fontsize=7, markerscale=1.5, loc="best")
    else:
        ax.scatter(*points.T, s=10, alpha=0.8)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    kind = "posterior means" if _is_vae(pipeline) else "codes"
    how = "" if codes.shape[1] <= 2 else f", PCA of {codes.shape[1]} dimensions"
    ax.set_title(f"Latent map of {len(codes)} held-out images ({kind}{how})", fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_latent_manifold(pipeline, images: torch.Tensor, path: str, grid_size: int = 15) -> str:
    """Images decoded on a ``grid_size`` x ``grid_size`` grid over the latent plane. Returns ``path``.

    VAE with ``latent_dim == 2``: the grid is the prior's quantiles 5%..95% in each dimension (Kingma & Welling 2014,
    Fig. 4). Otherwise: the plane of the first two principal components of the held-out codes, ±2 standard
    deviations around their mean (or the 2nd-98th percentiles of each dimension for a 2-D autoencoder).
    """
    from hfgen.plotting import plot_image_rows

    codes = pipeline.encode(images).cpu().numpy()
    if _is_vae(pipeline) and codes.shape[1] == 2:
        quantiles = torch.linspace(0.05, 0.95, grid_size)
        axis = torch.distributions.Normal(0.0, 1.0).icdf(quantiles).numpy()
        xs, ys, back, how = axis, axis, (lambda xy: xy), "prior quantiles 5%-95%"
    else:
        points, back, _ = _projection(codes)
        if codes.shape[1] == 2:
            low, high = np.percentile(points, [2, 98], axis=0)
            how = "2nd-98th percentiles of the codes"
        else:
            mean, std = points.mean(0), points.std(0)
            low, high = mean - 2 * std, mean + 2 * std
            how = "first two principal components, ±2 std"
        xs, ys = np.linspace(low[0], high[0], grid_size), np.linspace(low[1], high[1], grid_size)
    grid = np.array([[x, y] for y in ys[::-1] for x in xs], dtype=np.float32)
    latents = torch.from_numpy(np.asarray(back(grid), dtype=np.float32))
    decoded = pipeline.decode(latents, output_type="pt").images.cpu()
    return plot_image_rows(decoded, grid_size, path, title=f"Decoded latent manifold ({how})")


def traversal_dimensions(pipeline, images: torch.Tensor, count: int = 6) -> tuple[list[int], list[float]]:
    """The ``count`` most used latent dimensions and their scores, largest first.

    VAE: the mean KL of each dimension over ``images`` (nats; an unused dimension has KL ≈ 0). Autoencoder: the
    variance of each dimension of the codes.
    """
    with torch.no_grad():
        batch = pipeline._images(images)
        if _is_vae(pipeline):
            scores = pipeline.model.encode(batch).kl_per_dim().mean(0)
        else:
            scores = pipeline.model.encode(batch).var(0)
    order = torch.argsort(scores, descending=True)[:count]
    return order.tolist(), scores[order].tolist()


def plot_traversal(
    pipeline, images: torch.Tensor, path: str, image_index: int = 0, num_dims: int = 6, num_values: int = 9
) -> str:
    """Latent traversal of ``images[image_index]`` over the most used dimensions. Returns ``path``.

    VAE: each dimension set to -3..3 (prior standard deviations). Autoencoder: each dimension swept over its mean
    ± 3 standard deviations over ``images``.
    """
    from hfgen.plotting import plot_image_rows

    dims, scores = traversal_dimensions(pipeline, images, num_dims)
    image = images[image_index : image_index + 1]
    if _is_vae(pipeline):
        values = torch.linspace(-3, 3, num_values)
        decoded = pipeline.traverse(image, dims=dims, values=values, output_type="pt").images.cpu()
        row_labels = [f"z{d + 1} (KL {s:.2f})" for d, s in zip(dims, scores)]
        col_labels = [f"{v:+.1f}" for v in values.tolist()]
    else:
        codes = pipeline.encode(images)
        rows = []
        for dim in dims:
            values = codes[:, dim].mean() + codes[:, dim].std() * torch.linspace(-3, 3, num_values)
            rows.append(pipeline.traverse(image, dims=[dim], values=values, output_type="pt").images.cpu())
        decoded = torch.cat(rows)
        row_labels = [f"z{d + 1} (var {s:.2f})" for d, s in zip(dims, scores)]
        col_labels = [f"{v:+.1f}σ" for v in torch.linspace(-3, 3, num_values).tolist()]
    return plot_image_rows(
        decoded,
        num_values,
        path,
        title="Latent traversal: one dimension swept, the others fixed",
        row_labels=row_labels,
        col_labels=col_labels,
    )


def _first_of(labels: torch.Tensor | None, label: int, default: int) -> int:
    if labels is None:
        return default
    found = (labels == label).nonzero()
    if len(found) == 0:
        raise DatasetError(f"no held-out image has label {label}; choose a label present in the data")
    return int(found[0])


def plot_morphing(
    pipeline,
    images: torch.Tensor,
    path: str,
    index_a: int = 0,
    index_b: int = 1,
    steps: int = 10,
    method: str = "slerp",
) -> str:
    """One row morphing ``images[index_a]`` into ``images[index_b]`` (their reconstructions at the ends)."""
    from hfgen.plotting import plot_image_rows

    row = pipeline.interpolate(images[index_a], images[index_b], steps=steps, method=method, output_type="pt")
    row = torch.cat(
        [_to_unit(images[index_a : index_a + 1]), row.images.cpu(), _to_unit(images[index_b : index_b + 1])]
    )
    labels = ["A"] + [f"{t:.2f}" for t in np.linspace(0, 1, steps)] + ["B"]
    return plot_image_rows(
        row,
        len(row),
        path,
        title=f"Morphing A into B ({method} interpolation of the codes; originals at the ends)",
        col_labels=labels,
    )


def plot_attribute_vector(
    pipeline,
    images: torch.Tensor,
    labels: torch.Tensor,
    path: str,
    source_class: int = 1,
    target_class: int = 7,
    num_rows: int = 4,
    alphas=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
    class_names: dict | None = None,
) -> str:
    """Add v = mean code(``target_class``) - mean code(``source_class``) with increasing α to ``num_rows``
    held-out images of ``source_class``. ``class_names`` maps labels to names for the title (e.g.
    ``{0: "not Smiling", 1: "Smiling"}``). Returns ``path``.

    Raises:
        DatasetError: without labels, or when a class has no held-out image.
    """
    from hfgen.plotting import plot_image_rows

    if labels is None:
        raise DatasetError(
            "the attribute-vector figure needs labelled images (digits, or a folder with class folders)"
        )
    with_target, with_source = images[labels == target_class], images[labels == source_class]
    if len(with_target) == 0 or len(with_source) == 0:
        raise DatasetError(f"no held-out images of class {target_class if len(with_target) == 0 else source_class}")
    vector = pipeline.attribute_vector(with_target, with_source)
    names = class_names or {}
    rows = [
        pipeline.apply_attribute(image, vector, alphas=alphas, output_type="pt").images.cpu()
        for image in with_source[:num_rows]
    ]
    return plot_image_rows(
        torch.cat(rows),
        len(alphas),
        path,
        title=f"z + α·v, v = mean code of '{names.get(target_class, target_class)}' − mean code of "
        f"'{names.get(source_class, source_class)}'",
        col_labels=[f"α={a:g}" for a in alphas],
    )


def explore(
    output_dir: str,
    figures_dir: str | None = None,
    dataset: str = "auto",
    source_class: int | None = None,
    target_class: int | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Write every latent-space figure of a trained autoencoder or VAE folder.

    Args:
        output_dir (`str`): a trained ``vae`` or ``autoencoder`` folder (or a Hub repo id).
        figures_dir (`str`, *optional*): where to write; default ``OUTPUT_DIR/figures``.
        dataset (`str`): held-out images: ``"auto"`` (the held-out part of the data in the folder's
            ``training_args.json``, with its class or ``--attribute`` labels; the digits without it), ``"digits"``
            (test split) or a path.
        source_class, target_class (`int`, *optional*): the labels of the attribute vector (and of the morphing
            row); default 1 -> 7 for digit classes, 0 -> 1 for 0/1 attribute labels (e.g. not smiling -> smiling).
        seed (`int`): seed of the prior samples.

    Returns:
        dict figure name -> PNG path.

    Raises:
        HfgenError: when the folder is not an autoencoder or VAE; DatasetError for unusable data.
    """
    from hfgen.pipelines import AutoencoderPipeline, load_pipeline

    pipeline = load_pipeline(output_dir)
    if not isinstance(pipeline, AutoencoderPipeline):
        raise HfgenError(
            f"{output_dir} holds a {type(pipeline).__name__}; `hfgen explore` draws latent spaces of autoencoder and "
            "VAE folders (hfgen train autoencoder|vae)"
        )
    if pipeline.num_classes:
        raise HfgenError(
            f"{output_dir} holds a class-conditional VAE, whose codes mean nothing without their labels; `hfgen "
            "explore` draws unconditional latent spaces (sample it by class with `hfgen sample --class_labels`)"
        )
    pipeline.set_progress_bar_config(disable=True)
    if figures_dir is None:
        if not os.path.isdir(output_dir):
            raise HfgenError(f"{output_dir} is not a local folder; pass figures_dir to say where to write")
        figures_dir = os.path.join(output_dir, "figures")
    if dataset == "auto":
        dataset = folder_data(output_dir)
    attribute = dataset.get("attribute") if isinstance(dataset, dict) else None
    class_names = {0: f"not {attribute}", 1: attribute} if attribute else None
    images, labels = load_held_out_images(pipeline, dataset)
    binary = labels is not None and set(labels.unique().tolist()) <= {0, 1}
    if source_class is None:
        source_class = 0 if binary else 1
    if target_class is None:
        target_class = 1 if binary else 7
    if len(images) < 2:
        raise DatasetError(f"the held-out data has {len(images)} image(s); at least 2 are needed")
    paths = {
        "reconstructions": plot_reconstructions(pipeline, images, os.path.join(figures_dir, "reconstructions.png"))
    }
    if _is_vae(pipeline):
        paths["prior_samples"] = plot_prior_samples(
            pipeline, os.path.join(figures_dir, "prior_samples.png"), seed=seed
        )
    paths["latent_map"] = plot_latent_map(pipeline, images, labels, os.path.join(figures_dir, "latent_map.png"))
    paths["latent_manifold"] = plot_latent_manifold(pipeline, images, os.path.join(figures_dir, "latent_manifold.png"))
    paths["traversal"] = plot_traversal(pipeline, images, os.path.join(figures_dir, "traversal.png"))
    index_a, index_b = _first_of(labels, source_class, 0), _first_of(labels, target_class, 1)
    paths["morphing"] = plot_morphing(pipeline, images, os.path.join(figures_dir, "morphing.png"), index_a, index_b)
    if labels is not None:
        paths["attribute_vector"] = plot_attribute_vector(
            pipeline,
            images,
            labels,
            os.path.join(figures_dir, "attribute_vector.png"),
            source_class,
            target_class,
            class_names=class_names,
        )
    return paths
