"""Real-data support: every family at 16x16x1, 28x28x1, 32x32x3 and 64x64x3, lazy loading that matches the
in-memory store bit for bit, `.npy` labels, fixed held-out splits, CelebA-format attribute labels, the centre crop,
one-line errors for bad data on the command line, and (when ``../shared/data`` is present) MNIST and CelebA.

All data is synthetic and written to ``tmp_path``; nothing is committed as a fixture.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_DDPM, error_line, quiet, run_cli
from PIL import Image
from safetensors.torch import load_file

import hfgen
from hfgen.data.images import ImageDecoder, open_image_source, preprocess_image_uint8, resolve_held_out_size
from hfgen.data.splits import held_out_split, recognise_dataset
from hfgen.errors import DatasetError
from hfgen.pipelines.sampling import sample_images

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# ------------------------------------------------------------------------------------------ synthetic data


def smooth_images(count: int, height: int, width: int, channels: int | None, seed: int = 0) -> np.ndarray:
    """``count`` uint8 images that look a little like pictures: a bright blob at a random place on a gradient, plus
    noise. Shape ``(count, height, width)`` or ``(count, height, width, channels)``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    images = []
    for _ in range(count):
        cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
        radius = rng.uniform(0.15, 0.3) * min(height, width)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        base = 0.3 * x / width + 0.7 * blob
        if channels is None:
            image = base + rng.normal(0, 0.05, base.shape)
        else:
            tint = rng.uniform(0.5, 1.0, channels)
            image = base[..., None] * tint + rng.normal(0, 0.05, (height, width, channels))
        images.append(np.clip(image * 255, 0, 255).round().astype(np.uint8))
    return np.stack(images)


def write_png_folder(folder: Path, images: np.ndarray, suffix: str = ".png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        name = f"{i + 1:06d}{suffix}"
        Image.fromarray(image).save(folder / name, **({"quality": 95} if suffix == ".jpg" else {}))
        names.append(name)
    return names


def write_attribute_file(path: Path, names: list[str], table: dict[str, list[int]]):
    """A CelebA-format attribute file: count line, attribute names, one ``file -1 1 ...`` row per image."""
    attributes = list(table)
    lines = [str(len(names)), " ".join(attributes)]
    for row, name in enumerate(names):
        lines.append(name + " " + " ".join(f"{table[a][row]:2d}" for a in attributes))
    path.write_text("\n".join(lines) + "\n")


# The four shapes of the real data sets: digits (16x16x1), MNIST (28x28x1), CIFAR-10 (32x32x3), CelebA crops
# (64x64x3, here from 64-wide, 80-high PNGs: centre crop, no aspect change).
SHAPES = {"16x16x1": (16, 1), "28x28x1": (28, 1), "32x32x3": (32, 3), "64x64x3": (64, 3)}


@pytest.fixture(scope="module")
def shape_data(tmp_path_factory):
    """shape id -> ``(train_data_dir, extra data flags)`` for synthetic data of that shape."""
    root = tmp_path_factory.mktemp("shapes")
    sources = {}
    for shape, (size, channels) in SHAPES.items():
        if size == 64:
            folder = root / "faces"
            write_png_folder(folder, smooth_images(8, 80, 64, 3, seed=size))
            sources[shape] = (str(folder), {"resolution": 64, "center_crop": True})
        else:
            path = root / f"toy{size}_images.npy"
            np.save(path, smooth_images(16, size, size, None if channels == 1 else 3, seed=size))
            sources[shape] = (str(path), {})
    return sources


# ------------------------------------------------------------------- 1. every family at every real-data shape

FAMILIES = ("ddpm", "ncsn", "autoencoder", "vae", "dcgan", "wgan", "wgan-gp", "realnvp")
COMMON = {
    "logger": "none",
    "train_batch_size": 4,
    "max_train_steps": 2,
    "save_images_steps": 1000,
    "checkpointing_steps": 1000,
    "num_sample_images": 2,
    "lr_warmup_steps": 0,
    "seed": 0,
}


def tiny_family_flags(family: str, resolution: int) -> dict:
    """The smallest networks of ``family`` that still have the level structure of ``resolution``'s defaults."""
    levels = 4 if resolution >= 64 else 3  # UNet: as `default_unet_levels`
    unet = {
        "block_out_channels": [8, 16, 16, 16][:levels],
        "norm_num_groups": 4,
        "attention_levels": ["none"],
        "layers_per_block": 1,
    }
    if family == "ddpm":
        return {**unet, "ddpm_num_steps": 10, "sample_num_inference_steps": 2}
    if family == "ncsn":
        return {**unet, "num_noise_levels": 2, "steps_per_level": 1}
    if family in ("autoencoder", "vae"):  # the resolution's default levels (32-256 channels) are cheap enough
        return {}
    if family in ("dcgan", "wgan", "wgan-gp"):
        return {"generator_channels": 4, "critic_channels": 4, "latent_dim": 8}
    return {"hidden_channels": 4, "num_blocks": 1}  # realnvp


# The resolution-dependent defaults of `hfgen.models.resolution` (the README's table), recorded in training_args.json.
CONV_DEFAULTS = {16: [32, 64], 28: [32, 64], 32: [32, 64, 128], 64: [32, 64, 128, 256]}
UNET_DEFAULTS = {
    16: ([32, 64, 64], [1]),
    28: ([32, 64, 64], [1]),
    32: ([32, 64, 64], [1]),
    64: ([32, 64, 64, 128], [2]),
}


@pytest.mark.parametrize("resolution", [16, 28, 32, 64])
def test_resolution_dependent_defaults_are_filled_before_training(resolution):
    from hfgen.training.objectives import get_objective

    for family in ("ddpm", "ncsn"):
        objective = get_objective(family)
        args = objective.arguments_class()
        objective.configure(resolution, 1, args)
        assert (args.block_out_channels, args.attention_levels) == UNET_DEFAULTS[resolution]
    for family in ("autoencoder", "vae"):
        objective = get_objective(family)
        args = objective.arguments_class()
        objective.configure(resolution, 3, args)
        assert args.block_out_channels == CONV_DEFAULTS[resolution]
    flow = get_objective("realnvp")
    args = flow.arguments_class()
    flow.configure(resolution, 3, args)
    assert args.num_scales == (3 if resolution == 64 else 2)
    for family in ("dcgan", "wgan", "wgan-gp"):  # 28 = 7 * 2^2 builds; nothing to fill in
        objective = get_objective(family)
        objective.configure(resolution, 1, objective.arguments_class())
    # the user's own choice is kept, not overwritten by the defaults
    objective = get_objective("vae")
    args = objective.arguments_class(block_out_channels=[4, 8])
    objective.configure(resolution, 1, args)
    assert args.block_out_channels == [4, 8]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_saves_loads_and_samples_at_every_shape(family, shape, shape_data, tmp_path):
    resolution, channels = SHAPES[shape]
    data_dir, data_flags = shape_data[shape]
    out = tmp_path / "out"
    result = hfgen.train(
        family,
        train_data_dir=data_dir,
        output_dir=str(out),
        **COMMON,
        **data_flags,
        **tiny_family_flags(family, resolution),
    )
    assert result.global_step == 2

    args = json.loads((out / "training_args.json").read_text())
    assert args["model"] == family
    assert (args["resolution"], args["num_channels"]) == (resolution, channels)
    assert args["num_train_images"] == (8 if resolution == 64 else 16)
    assert args["lazy_loading"] is False and args["labels"] is None
    if family in ("autoencoder", "vae"):
        assert args["block_out_channels"] == CONV_DEFAULTS[resolution]
    if family == "realnvp":
        assert args["num_scales"] == (3 if resolution == 64 else 2)
    if resolution == 64:
        assert args["center_crop"] is True

    pipeline = quiet(hfgen.load_pipeline(str(out)))
    generator = torch.Generator().manual_seed(0)
    if family == "autoencoder":  # no prior to sample from: reconstruct two training images instead
        if resolution == 64:
            originals = [Image.open(os.path.join(data_dir, name)) for name in sorted(os.listdir(data_dir))[:2]]
        else:
            originals = [Image.fromarray(a) for a in np.load(data_dir)[:2]]
        images = pipeline.reconstruct(originals, output_type="pt").images
    else:
        kwargs = {}
        if family == "ddpm":
            kwargs["num_inference_steps"] = 2
        if family == "ncsn":
            kwargs["pipeline_kwargs"] = {"steps_per_level": 1}
        images = sample_images(pipeline, 2, generator=generator, **kwargs).images
    assert tuple(images.shape) == (2, channels, resolution, resolution)
    assert torch.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0


# ------------------------------------------------------------------------------------------ 2. lazy loading

LAZY_DDPM = {**TINY_DDPM, "train_batch_size": 4, "lr_scheduler": "constant", "checkpointing_steps": 3, "seed": 5}
LAZY_STEPS = 6  # 16 images in batches of 4: the run crosses into a second epoch (a second seeded permutation)


@pytest.fixture(scope="module", params=["npy", "png-folder"])
def lazy_source(request, tmp_path_factory):
    """16 images that need decoding work on both paths: 12x12 arrays resized to 8, or 10x12 PNGs cropped+resized."""
    root = tmp_path_factory.mktemp("lazy")
    if request.param == "npy":
        path = root / "lazy_images.npy"
        np.save(path, smooth_images(16, 12, 12, None, seed=1))
        return str(path)
    folder = root / "pngs"
    write_png_folder(folder, smooth_images(16, 12, 10, 3, seed=2))
    return str(folder)


def unet_weights(output_dir) -> dict:
    return load_file(os.path.join(output_dir, "unet", "diffusion_pytorch_model.safetensors"))


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs by {(a[key] - b[key]).abs().max().item():.3g}"


def test_lazy_loading_gives_bit_identical_weights_and_resumes_exactly(lazy_source, tmp_path, monkeypatch):
    import hfgen.data.images.decoding

    def run(name, steps=LAZY_STEPS, **flags):
        return hfgen.train(
            "ddpm", train_data_dir=lazy_source, output_dir=str(tmp_path / name), max_train_steps=steps,
            **LAZY_DDPM, **flags,
        )  # fmt: skip

    memory = run("memory", lazy_loading=False)

    def no_store(*args, **kwargs):
        raise AssertionError("--lazy_loading decoded the whole data set into memory")

    monkeypatch.setattr(hfgen.data.images.decoding, "decode_images", no_store)
    lazy = run("lazy0", lazy_loading=True, dataloader_num_workers=0)
    workers = run("lazy2", lazy_loading=True, dataloader_num_workers=2)
    for name, flag in (("memory", False), ("lazy0", True), ("lazy2", True)):
        args = json.loads((tmp_path / name / "training_args.json").read_text())
        assert args["lazy_loading"] is flag and args["resolution"] == 8 and args["num_train_images"] == 16
    assert_same_weights(unet_weights(tmp_path / "memory"), unet_weights(tmp_path / "lazy0"))
    assert_same_weights(unet_weights(tmp_path / "memory"), unet_weights(tmp_path / "lazy2"))
    assert memory.loss_history["loss"] == lazy.loss_history["loss"] == workers.loss_history["loss"]

    # a lazy run stopped at step 3 (mid-epoch) and resumed with 2 workers ends where the uninterrupted one did
    run("resumed", steps=3, lazy_loading=True, dataloader_num_workers=0)
    resumed = run("resumed", lazy_loading=True, dataloader_num_workers=2, resume_from_checkpoint="latest")
    assert resumed.global_step == LAZY_STEPS
    assert_same_weights(unet_weights(tmp_path / "lazy0"), unet_weights(tmp_path / "resumed"))
    assert resumed.loss_history["loss"] == lazy.loss_history["loss"]


def test_lazy_loading_workers_stop_when_training_returns(tmp_path):
    import multiprocessing

    np.save(tmp_path / "w_images.npy", smooth_images(16, 8, 8, None, seed=7))
    before = set(multiprocessing.active_children())
    hfgen.train(
        "ddpm", train_data_dir=str(tmp_path / "w_images.npy"), output_dir=str(tmp_path / "out"), max_train_steps=2,
        lazy_loading=True, dataloader_num_workers=2, **LAZY_DDPM,
    )  # fmt: skip
    leaked = [p for p in multiprocessing.active_children() if p not in before]
    assert not leaked, f"{len(leaked)} DataLoader worker process(es) still alive after train() returned"


def test_lazy_loading_treats_an_unreadable_image_like_the_in_memory_store(tmp_path):
    folder = tmp_path / "pngs"
    write_png_folder(folder, smooth_images(16, 12, 10, 3, seed=8))
    (folder / "000017.png").write_bytes(b"this is not a PNG file")
    flags = {**LAZY_DDPM, "max_train_steps": 2}
    memory = hfgen.train("ddpm", train_data_dir=str(folder), output_dir=str(tmp_path / "m"), **flags)
    assert memory.global_step == 2  # trained on the 16 readable images
    assert json.loads((tmp_path / "m" / "training_args.json").read_text())["num_train_images"] == 16
    lazy = hfgen.train("ddpm", train_data_dir=str(folder), output_dir=str(tmp_path / "l"), lazy_loading=True, **flags)
    assert lazy.global_step == 2
    assert_same_weights(unet_weights(tmp_path / "m"), unet_weights(tmp_path / "l"))


def test_cli_unreadable_image_in_a_loader_worker_is_one_error_line(tmp_path, capsys):
    from hfgen.training.trainer import TRAIN_IMAGES_SUBSET

    # the trainer decodes a fixed subset of TRAIN_IMAGES_SUBSET images up front (in this process); the one image
    # outside it is first decoded by a DataLoader worker, in the first epoch (4 batches of 500)
    count, seed = TRAIN_IMAGES_SUBSET + 1, 0
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    (bad,) = set(range(count)) - set(order[:TRAIN_IMAGES_SUBSET].tolist())
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(count):
        path = folder / f"{i:06d}.png"
        Image.fromarray(np.full((4, 4), i % 256, np.uint8)).save(path)
        if i == bad:  # a valid PNG header (it passes the up-front header check) with its pixel data cut off
            path.write_bytes(path.read_bytes()[:45])
    flags = [
        "--train_data_dir", folder, "--lazy_loading", "true", "--dataloader_num_workers", "1", "--seed", seed,
        "--train_batch_size", 500, "--max_train_steps", 4, "--block_out_channels", 8, 16, "--norm_num_groups", 4,
        "--attention_levels", "none", "--ddpm_num_steps", 10, "--sample_num_inference_steps", 2,
        "--num_sample_images", 2, "--logger", "none", "--output_dir", tmp_path / "out",
    ]  # fmt: skip
    code, _, err = run_cli(capsys, "train", "ddpm", *flags)
    line = error_line(code, err)  # exit code 2 and exactly one line, naming the file (no worker traceback)
    assert f"{bad:06d}.png" in line and "cannot read image" in line


def test_training_batches_are_the_decoded_images(tmp_path):
    """The per-batch decoder and the in-memory store hold the same uint8 pixels, item by item."""
    folder = tmp_path / "pngs"
    write_png_folder(folder, smooth_images(6, 12, 10, 3, seed=3))
    source = open_image_source(train_data_dir=str(folder))
    decoder = ImageDecoder(source, 8, 3, center_crop=True)
    batch = decoder.decode_batch([4, 1, 3])
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (3, 3, 8, 8)
    for row, index in zip(batch, [4, 1, 3]):
        assert torch.equal(row, decoder[index])
        expected = preprocess_image_uint8(source.image(index), 8, 3, True)
        assert np.array_equal(row.numpy(), expected)


# ------------------------------------------------------------------------------------------ 3. data sources


def numbered_images(count: int, size: int = 6) -> np.ndarray:
    """Image i is filled with the value i (so an image tells which row it came from); count <= 256."""
    return np.repeat(np.arange(count, dtype=np.uint8), size * size).reshape(count, size, size)


def test_npy_labels_are_read_and_recorded_in_training_args(tmp_path):
    images = smooth_images(20, 8, 8, None, seed=4)
    labels = np.arange(20) % 4
    np.save(tmp_path / "toy_images.npy", images)
    np.save(tmp_path / "toy_labels.npy", labels.astype(np.uint8))
    source = open_image_source(train_data_dir=str(tmp_path / "toy_images.npy"))
    assert len(source) == 20 and source.labels.dtype == np.int64
    assert np.array_equal(source.labels, labels)
    assert source.label_source == "toy_labels.npy"
    assert source.array.shape == (20, 8, 8) and isinstance(source.array, np.memmap)

    out = tmp_path / "out"
    flags = {**TINY_DDPM, "train_batch_size": 4, "held_out_size": 4}
    hfgen.train(
        "ddpm", train_data_dir=str(tmp_path / "toy_images.npy"), output_dir=str(out), max_train_steps=1, **flags
    )
    args = json.loads((out / "training_args.json").read_text())
    assert args["labels"] == "toy_labels.npy"
    assert args["num_train_images"] == 16 and args["held_out_size"] == 4


def test_held_out_split_sizes_stratification_disjointness_and_stability(tmp_path):
    count = 60
    labels = np.repeat(np.arange(5), 12)  # 5 classes of 12 images
    np.save(tmp_path / "strat_images.npy", numbered_images(count))
    np.save(tmp_path / "strat_labels.npy", labels)
    path = str(tmp_path / "strat_images.npy")

    train = open_image_source(train_data_dir=path, split="train", held_out_size=15)
    test = open_image_source(train_data_dir=path, split="test", held_out_size=15)
    assert (len(train), len(test)) == (45, 15)
    train_rows = np.array([np.asarray(train.image(i))[0, 0] for i in range(len(train))]).astype(int)  # image i: i
    test_rows = np.array([np.asarray(test.image(i))[0, 0] for i in range(len(test))]).astype(int)
    assert np.array_equal(train.rows, train_rows) and np.array_equal(test.rows, test_rows)  # rows of the memory map
    assert not set(train_rows) & set(test_rows)
    assert sorted([*train_rows, *test_rows]) == list(range(count))
    assert np.array_equal(train.labels, labels[train_rows]) and np.array_equal(test.labels, labels[test_rows])
    assert np.bincount(test.labels, minlength=5).tolist() == [3] * 5  # stratified: 15 / 5 classes

    again = open_image_source(train_data_dir=path, split="test", held_out_size=15)
    assert np.array_equal(again.array, test.array)
    train_idx, test_idx = held_out_split(count, 15, labels=labels)
    assert np.array_equal(train_idx, train_rows) and np.array_equal(test_idx, test_rows)

    # "all" is everything; no held-out part unless asked for
    assert len(open_image_source(train_data_dir=path, split="all", held_out_size=15)) == count
    assert len(open_image_source(train_data_dir=path)) == count
    with pytest.raises(DatasetError, match="no held-out part"):
        open_image_source(train_data_dir=path, split="test")
    with pytest.raises(DatasetError, match="does not fit"):
        open_image_source(train_data_dir=path, held_out_size=count)


@pytest.mark.parametrize(
    ("folder", "expected"), [("MNIST_copy", 2000), ("cifar10-test", 1000), ("my_celeba", 1000), ("faces", 0)]
)
def test_recognised_data_sets_get_their_held_out_size(tmp_path, folder, expected):
    count = 2100
    (tmp_path / folder).mkdir()
    path = tmp_path / folder / "x_images.npy"
    np.save(path, np.zeros((count, 4, 4), np.uint8))
    assert resolve_held_out_size(None, str(path), None) == expected
    assert resolve_held_out_size(None, str(tmp_path / folder), None) == expected
    assert resolve_held_out_size(None, str(path), 7) == 7  # an explicit size wins
    assert len(open_image_source(train_data_dir=str(path))) == count - expected
    if expected:
        assert len(open_image_source(train_data_dir=str(path), split="test")) == expected
        assert recognise_dataset(str(path)).held_out_size == expected
    assert resolve_held_out_size("digits", None, None) == 0


def test_held_out_split_of_a_memory_mapped_npy_stays_on_disk(tmp_path):
    import tracemalloc

    path = tmp_path / "big_images.npy"
    np.save(path, np.zeros((2000, 64, 64, 3), np.uint8))  # 24.6 MB
    held_out_split(10, 2)  # import scikit-learn before measuring: its modules are not data
    tracemalloc.start()
    try:
        whole = open_image_source(train_data_dir=str(path))
        _, peak_whole = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        train = open_image_source(train_data_dir=str(path), held_out_size=20)
        _, peak_split = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(whole) == 2000 and len(train) == 1980
    assert peak_whole < 2e6, peak_whole  # memory-mapped
    assert peak_split < 5e6, f"opening the train part allocated {peak_split / 1e6:.1f} MB"


def test_training_args_record_the_resolved_held_out_size(tmp_path):
    folder = tmp_path / "mnist_part"
    folder.mkdir()
    np.save(folder / "m_images.npy", smooth_images(2100, 8, 8, None, seed=9))
    np.save(folder / "m_labels.npy", np.arange(2100) % 10)
    out = tmp_path / "out"
    hfgen.train(
        "ddpm", train_data_dir=str(folder / "m_images.npy"), output_dir=str(out), max_train_steps=1, **TINY_DDPM
    )
    args = json.loads((out / "training_args.json").read_text())
    assert args["num_train_images"] == 100 and args["labels"] == "m_labels.npy"  # 2,000 of 2,100 held out
    assert args["held_out_size"] == 2000


def red_bordered_face() -> Image.Image:
    """An 89x109 (CelebA half-size) RGB image: green, with its top and bottom 10 rows red."""
    array = np.zeros((109, 89, 3), np.uint8)
    array[:] = (0, 200, 0)
    array[:10] = array[-10:] = (255, 0, 0)
    return Image.fromarray(array)


def test_centre_crop_keeps_the_central_square_and_resizes_to_64():
    out = preprocess_image_uint8(red_bordered_face(), 64, 3, center_crop=True)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    inner = out[:, 1:-1]  # away from the border rows (see the next test for those)
    assert (inner[0] == 0).all() and (inner[1] == 200).all() and (inner[2] == 0).all()
    # without the crop the red rows are squeezed into the image
    squeezed = preprocess_image_uint8(red_bordered_face(), 64, 3, center_crop=False)
    assert squeezed[0, :3].min() > 200 and squeezed[0, -3:].min() > 200
    # greyscale: the same geometry through one channel
    grey = preprocess_image_uint8(red_bordered_face(), 64, 1, center_crop=True)
    assert grey.shape == (1, 64, 64) and (grey[0, 1:-1] == grey[0, 32, 32]).all()


def test_centre_crop_discards_the_cropped_rows_entirely():
    face = red_bordered_face()
    out = preprocess_image_uint8(face, 64, 3, center_crop=True)
    cropped = np.asarray(face.crop((0, 10, 89, 99)).resize((64, 64), Image.BILINEAR)).transpose(2, 0, 1)
    assert out[0].max() == 0, f"red from the cropped rows reaches the output: {out[0].max()}"
    assert np.array_equal(out, cropped)


# -------------------------------------------------------------------------------------- 4. attribute labels

ATTRIBUTES = {  # 8 images; file rows in this order
    "Male": [1, -1, -1, 1, 1, -1, 1, -1],
    "Smiling": [1, 1, -1, -1, 1, -1, -1, 1],
    "Young": [-1, 1, 1, 1, -1, -1, 1, 1],
}


@pytest.fixture
def attribute_folder(tmp_path):
    """8 JPEG faces named 000001.jpg ... and a CelebA-format attribute file listing them (plus 2 absent ones)."""
    folder = tmp_path / "faces"
    names = write_png_folder(folder, smooth_images(8, 14, 12, 3, seed=6), suffix=".jpg")
    extra = {key: values + [1, -1] for key, values in ATTRIBUTES.items()}
    write_attribute_file(tmp_path / "list_attr.txt", names + ["000099.jpg", "000100.jpg"], extra)
    return folder, tmp_path / "list_attr.txt", names


def test_attribute_labels_and_a_split_that_ignores_the_attribute(attribute_folder, tmp_path):
    folder, attr_file, names = attribute_folder
    smiling = open_image_source(train_data_dir=str(folder), attribute_file=str(attr_file), attribute="Smiling")
    assert len(smiling) == 8 and smiling.label_source == "list_attr.txt:Smiling"
    expected = {name: int(v > 0) for name, v in zip(names, ATTRIBUTES["Smiling"])}
    assert [int(v) for v in smiling.labels] == [expected[os.path.basename(smiling.describe(i))] for i in range(8)]
    assert sorted(smiling.labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]

    def split_files(attribute, split):
        part = open_image_source(
            train_data_dir=str(folder), attribute_file=str(attr_file), attribute=attribute, split=split,
            held_out_size=3,
        )  # fmt: skip
        return [os.path.basename(part.describe(i)) for i in range(len(part))], part.labels

    train_smiling, train_labels = split_files("Smiling", "train")
    test_smiling, _ = split_files("Smiling", "test")
    train_young, young_labels = split_files("Young", "train")
    assert (len(train_smiling), len(test_smiling)) == (5, 3)
    assert not set(train_smiling) & set(test_smiling)
    assert train_smiling == train_young and test_smiling == split_files("Male", "test")[0]
    assert [int(v) for v in train_labels] == [expected[n] for n in train_smiling]
    young = {name: int(v > 0) for name, v in zip(names, ATTRIBUTES["Young"])}
    assert [int(v) for v in young_labels] == [young[n] for n in train_young]

    out = tmp_path / "out"
    flags = {**TINY_DDPM, "train_batch_size": 4, "resolution": 8}
    hfgen.train(
        "ddpm", train_data_dir=str(folder), attribute_file=str(attr_file), attribute="Smiling", output_dir=str(out),
        max_train_steps=1, **flags,
    )  # fmt: skip
    args = json.loads((out / "training_args.json").read_text())
    assert args["labels"] == "list_attr.txt:Smiling" and args["attribute"] == "Smiling"
    assert args["num_train_images"] == 8 and args["num_channels"] == 3


# ------------------------------------------------------------------------------- 5. bad input, command line

QUICK = ["--max_train_steps", "1", "--logger", "none", "--train_batch_size", "2"]


def assert_refused(capsys, tmp_path, model, *flags) -> str:
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "train", model, *flags, *QUICK, "--output_dir", out)
    line = error_line(code, err)
    assert not out.exists(), "a refused run must not create its output folder"
    return line


def test_cli_unknown_attribute_lists_the_valid_ones(attribute_folder, capsys, tmp_path):
    folder, attr_file, _ = attribute_folder
    line = assert_refused(
        capsys, tmp_path, "ddpm", "--train_data_dir", folder, "--attribute_file", attr_file, "--attribute", "Smilng"
    )
    assert "'Smilng'" in line
    assert "Male, Smiling, Young" in line


def test_cli_attribute_file_missing_images_names_them(attribute_folder, capsys, tmp_path):
    folder, _, names = attribute_folder
    short = tmp_path / "short_attr.txt"
    write_attribute_file(short, names[:2], {key: values[:2] for key, values in ATTRIBUTES.items()})
    line = assert_refused(
        capsys, tmp_path, "vae", "--train_data_dir", folder, "--attribute_file", short, "--attribute", "Smiling"
    )
    assert "6 image(s)" in line and "missing from the attribute file" in line
    assert ", ".join(names[2:7]) in line  # the first five missing ones, in order
    assert names[7] not in line and names[0] not in line


def test_cli_resolution_a_gan_cannot_build_names_valid_ones(capsys, tmp_path, monkeypatch):
    import hfgen.data.images.decoding

    def no_decoding(*args, **kwargs):
        raise AssertionError("images were decoded before the resolution was checked")

    monkeypatch.setattr(hfgen.data.images.decoding, "decode_images", no_decoding)
    monkeypatch.setattr(hfgen.data.images.decoding.ImageDecoder, "decode", no_decoding)
    np.save(tmp_path / "g_images.npy", smooth_images(8, 30, 30, None))
    line = assert_refused(
        capsys, tmp_path, "dcgan", "--train_data_dir", tmp_path / "g_images.npy", "--resolution", "30"
    )
    assert "30" in line
    valid = line.split("valid resolutions", 1)[1]
    assert "28" in valid and "32" in valid and "16" in valid and "30" not in valid


def test_cli_npy_labels_of_the_wrong_length(capsys, tmp_path):
    np.save(tmp_path / "bad_images.npy", smooth_images(6, 8, 8, None))
    np.save(tmp_path / "bad_labels.npy", np.arange(5))
    line = assert_refused(capsys, tmp_path, "realnvp", "--train_data_dir", tmp_path / "bad_images.npy")
    assert "bad_labels.npy" in line and "expected 6 integer labels" in line and "(5,)" in line


def test_cli_attribute_without_attribute_file(capsys, tmp_path):
    line = assert_refused(capsys, tmp_path, "autoencoder", "--attribute", "Smiling")
    assert "--attribute_file" in line and "--attribute" in line


# ------------------------------------------------------------------------------ 6. the real data, if present


def shared_data(*parts: str) -> str:
    """A path under ``../shared/data``; skips the test when it is absent (a user's fresh clone has no ../shared)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"no real data at {path}")
    return str(path)


def test_mnist_fixed_stratified_split():
    path = shared_data("mnist", "mnist_test_images.npy")
    train = open_image_source(train_data_dir=path)
    test = open_image_source(train_data_dir=path, split="test")
    assert (len(train), len(test)) == (8000, 2000)
    assert train.label_source == "mnist_test_labels.npy" and train.array.shape[1:] == (28, 28)
    counts = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    held = np.bincount(test.labels, minlength=10)
    assert (np.abs(held - 0.2 * counts) <= 1).all(), held.tolist()
    # the train part is the train part of the whole set: images and labels line up with the original rows
    everything = open_image_source(train_data_dir=path, split="all")
    train_idx, _ = held_out_split(10000, 2000, labels=everything.labels)
    assert np.array_equal(train.labels, everything.labels[train_idx])
    assert np.array_equal(np.asarray(train.image(123)), everything.array[train_idx[123]])


def test_cifar10_split_is_stratified_by_class():
    path = shared_data("cifar10", "cifar10_test_images.npy")
    test = open_image_source(train_data_dir=path, split="test")
    assert len(test) == 1000 and test.array.shape[1:] == (32, 32, 3)
    assert np.bincount(test.labels, minlength=10).tolist() == [100] * 10


def test_celeba_smiling_labels_without_decoding_the_images():
    folder, attr_file = shared_data("celeba", "img_align_celeba"), shared_data("celeba", "list_attr_celeba.txt")
    train = open_image_source(train_data_dir=str(folder), attribute_file=str(attr_file), attribute="Smiling")
    assert len(train) == 9000 and train.labels.shape == (9000,)
    assert set(np.unique(train.labels).tolist()) == {0, 1}
    assert abs(train.labels.mean() - 4822 / 10000) < 0.02
    # spot-check the labels against the file itself: `Smiling` is column 32 of the official format
    rows = {}
    with open(attr_file) as handle:
        lines = handle.read().splitlines()
    assert lines[1].split().index("Smiling") == 31
    for line in lines[2:]:
        parts = line.split()
        rows[parts[0]] = int(parts[32])
    files = [os.path.basename(train.describe(i)) for i in (0, 1, 4500, 8999)]
    assert [int(train.labels[i]) for i in (0, 1, 4500, 8999)] == [int(rows[f] > 0) for f in files]
    assert sum(v > 0 for v in rows.values()) == 4822
    held_out_smiling = 4822 - int(train.labels.sum())  # the 1,000 held-out faces: a random split, seed 0
    assert abs(held_out_smiling / 1000 - 0.4822) < 0.06, held_out_smiling
    assert train.native_size() == (3, 109, 89)  # one image decoded
