"""Image data sources and preprocessing (`hfgen.data.images`)."""

import logging
import os
from collections import Counter

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfgen.data.images import (
    images_to_tensor,
    infer_num_channels,
    load_digits_dataset,
    load_image_dataset,
    preprocess_image,
    random_hflip,
    tensor_to_pil,
)
from hfgen.errors import DatasetError


@pytest.fixture(scope="module")
def digits_train():
    return load_digits_dataset("train")


@pytest.fixture(scope="module")
def digits_test():
    return load_digits_dataset("test")


def pixel_keys(dataset) -> list[bytes]:
    return [np.asarray(image, dtype=np.uint8).tobytes() for image in dataset["image"]]


# ----------------------------------------------------------------------------------------------------- digits


def test_digits_split_sizes_images_and_labels(digits_train, digits_test):
    assert len(digits_train) == 1437
    assert len(digits_test) == 360
    for dataset in (digits_train, digits_test):
        assert dataset.column_names == ["image", "label"]
        assert dataset.features["label"].names == [str(d) for d in range(10)]
        assert set(dataset["label"]) == set(range(10))
        for image in dataset.select(range(20))["image"]:
            assert image.mode == "L"
            assert image.size == (8, 8)
        arrays = np.stack([np.asarray(im) for im in dataset["image"]])
        assert arrays.dtype == np.uint8
        assert arrays.min() == 0 and arrays.max() == 255  # 0-16 scans scaled to the full 0-255 range


def test_digits_train_and_test_partition_all_images(digits_train, digits_test):
    from sklearn.datasets import load_digits

    everything = load_digits_dataset("all")
    assert len(everything) == 1797
    train_keys, test_keys, all_keys = pixel_keys(digits_train), pixel_keys(digits_test), pixel_keys(everything)
    # Every image of the full set is in exactly one split (as a multiset: the scans hold a few exact duplicates).
    assert Counter(train_keys) + Counter(test_keys) == Counter(all_keys)
    # Images that occur once in the whole set cannot be in both splits.
    unique = {key for key, count in Counter(all_keys).items() if count == 1}
    assert not (set(train_keys) & set(test_keys) & unique)
    # The pixels are scikit-learn's scans, scaled from 0-16 to 0-255 (same image order in the "all" split).
    scans = load_digits()
    expected = np.round(scans.images[:5] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(np.stack([np.asarray(im) for im in everything.select(range(5))["image"]]), expected)
    assert everything["label"][:5] == scans.target[:5].tolist()


def test_digits_split_is_stratified(digits_train, digits_test):
    overall = Counter(digits_train["label"]) + Counter(digits_test["label"])
    train = Counter(digits_train["label"])
    for label in range(10):
        share_overall = overall[label] / 1797
        assert train[label] / 1437 == pytest.approx(share_overall, abs=0.01)


def test_digits_split_is_fixed(digits_train):
    again = load_digits_dataset("train")
    assert pixel_keys(again) == pixel_keys(digits_train)
    assert again["label"] == digits_train["label"]


def test_digits_is_the_default_and_unknown_split_raises(digits_train):
    default = load_image_dataset()
    assert len(default) == 1437
    assert default["label"][:50] == digits_train["label"][:50]
    assert len(load_image_dataset("digits", split="test")) == 360
    with pytest.raises(DatasetError, match="validation"):
        load_image_dataset("digits", split="validation")


def test_digits_to_tensor_range_and_channels(digits_train):
    images, labels = images_to_tensor(digits_train, resolution=16)
    assert images.shape == (1437, 1, 16, 16)
    assert images.dtype == torch.float32
    assert images.min().item() == -1.0
    assert images.max().item() == 1.0
    assert labels.dtype == torch.long
    assert labels.tolist() == digits_train["label"]
    assert infer_num_channels(digits_train) == 1

    rgb, _ = images_to_tensor(digits_train, resolution=16, num_channels=3, max_samples=10)
    assert rgb.shape == (10, 3, 16, 16)
    # greyscale converted to RGB: three identical channels equal to the greyscale tensor
    torch.testing.assert_close(rgb[:, 0], rgb[:, 2])
    torch.testing.assert_close(rgb[:, :1], images[:10])


def test_images_to_tensor_rejects_bad_resolution_and_channels(digits_train):
    small = digits_train.select(range(4))
    for resolution in (0, -8):
        with pytest.raises(DatasetError, match="resolution"):
            images_to_tensor(small, resolution=resolution)
    with pytest.raises(DatasetError, match="num_channels"):
        images_to_tensor(small, resolution=8, num_channels=2)


# ----------------------------------------------------------------------------------------------------- .npy


def write_npy(tmp_path, name, array) -> str:
    path = str(tmp_path / name)
    np.save(path, array)
    return path


def test_npy_uint8_greyscale(tmp_path):
    array = np.zeros((5, 6, 6), np.uint8)
    array[0, 2, 3] = 255
    array[1, 4, 1] = 51
    path = write_npy(tmp_path, "grey.npy", array)
    dataset = load_image_dataset(train_data_dir=path)
    assert len(dataset) == 5
    assert "label" not in dataset.column_names
    images, labels = images_to_tensor(dataset, resolution=6)
    assert labels is None
    assert images.shape == (5, 1, 6, 6)
    assert images[0, 0, 2, 3].item() == 1.0
    assert images[1, 0, 4, 1].item() == pytest.approx(51 / 127.5 - 1)
    assert images[0, 0, 0, 0].item() == -1.0


def test_npy_float_rgb_in_unit_range(tmp_path):
    array = np.zeros((3, 4, 4, 3), np.float32)
    array[2, 1, 2] = [1.0, 0.2, 0.0]
    path = write_npy(tmp_path, "rgb.npy", array)
    dataset = load_image_dataset(train_data_dir=path)
    assert dataset[0]["image"].mode == "RGB"
    images, _ = images_to_tensor(dataset, resolution=4)
    assert images.shape == (3, 3, 4, 4)
    np.testing.assert_allclose(images[2, :, 1, 2].numpy(), [1.0, 51 / 127.5 - 1, -1.0], atol=1e-6)
    assert images[0].eq(-1).all()


def test_npy_single_channel_last_axis(tmp_path):
    array = np.full((4, 5, 5, 1), 0, np.uint8)
    array[3, 0, 4, 0] = 255
    path = write_npy(tmp_path, "one.npy", array)
    dataset = load_image_dataset(train_data_dir=path)
    assert dataset[0]["image"].mode == "L"
    images, _ = images_to_tensor(dataset, resolution=5)
    assert images.shape == (4, 1, 5, 5)
    assert images[3, 0, 0, 4].item() == 1.0
    assert images.sum().item() == pytest.approx(-(4 * 25) + 2)


def test_npy_float_in_symmetric_range(tmp_path):
    array = np.full((2, 4, 4), -1.0, np.float64)
    array[0, 1, 1] = 1.0
    array[1, 3, 0] = -0.6  # (1 - 0.6) * 127.5 = 51
    path = write_npy(tmp_path, "sym.npy", array)
    images, _ = images_to_tensor(load_image_dataset(train_data_dir=path), resolution=4)
    assert images[0, 0, 1, 1].item() == 1.0
    assert images[1, 0, 3, 0].item() == pytest.approx(-0.6, abs=1e-6)
    assert images[0, 0, 0, 0].item() == -1.0


def test_npy_labels_file_next_to_array(tmp_path):
    path = write_npy(tmp_path, "x.npy", np.zeros((3, 4, 4), np.uint8))
    np.save(tmp_path / "x_labels.npy", np.array([2, 0, 1]))
    dataset = load_image_dataset(train_data_dir=path)
    _, labels = images_to_tensor(dataset, resolution=4)
    assert labels.tolist() == [2, 0, 1]


@pytest.mark.parametrize(
    "shape",
    [(4, 16), (4, 3, 16, 16), (4, 8, 8, 2), (2, 2, 2, 2, 2)],
    ids=["N,H", "N,C,H,W", "two-channels", "5d"],
)
def test_npy_wrong_shape_raises_with_path(tmp_path, shape):
    path = write_npy(tmp_path, "bad.npy", np.zeros(shape, np.uint8))
    with pytest.raises(DatasetError) as info:
        load_image_dataset(train_data_dir=path)
    assert path in str(info.value)
    assert str(shape) in str(info.value)


def test_npy_out_of_range_empty_and_nan_raise(tmp_path):
    cases = {
        "range.npy": np.full((2, 4, 4), 300.0),
        "empty.npy": np.zeros((0, 4, 4), np.uint8),
        "nan.npy": np.full((2, 4, 4), np.nan),
    }
    for name, array in cases.items():
        path = write_npy(tmp_path, name, array)
        with pytest.raises(DatasetError) as info:
            load_image_dataset(train_data_dir=path)
        assert path in str(info.value)


def test_non_npy_file_raises(tmp_path):
    path = tmp_path / "images.txt"
    path.write_text("not images")
    with pytest.raises(DatasetError, match=".npy"):
        load_image_dataset(train_data_dir=str(path))


# --------------------------------------------------------------------------------------------- image folders


def write_png(path, value, size=(8, 8), mode="L"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode=mode).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
    for i in range(3):
        write_png(str(tmp_path / "cat" / f"{i}.png"), 10 * i)
    for i in range(2):
        write_png(str(tmp_path / "dog" / f"{i}.png"), 200 + 10 * i)
    dataset = load_image_dataset(train_data_dir=str(tmp_path))
    assert len(dataset) == 5
    names = dataset.features["label"].names
    assert sorted(names) == ["cat", "dog"]
    images, labels = images_to_tensor(dataset, resolution=8)
    assert images.shape == (5, 1, 8, 8)
    # each image is constant: dog images (>= 200) are bright, cat images (<= 20) dark
    for image, label in zip(images, labels.tolist()):
        assert image.unique().numel() == 1
        assert (image.mean().item() > 0.5) == (names[label] == "dog")
    assert Counter(names[label] for label in labels.tolist()) == {"cat": 3, "dog": 2}


def test_image_folder_rgb_is_inferred(tmp_path):
    for i in range(2):
        write_png(str(tmp_path / f"{i}.png"), 128, mode="RGB")
    dataset = load_image_dataset(train_data_dir=str(tmp_path))
    assert infer_num_channels(dataset) == 3
    images, _ = images_to_tensor(dataset, resolution=4)
    assert images.shape == (2, 3, 4, 4)
    grey, _ = images_to_tensor(dataset, resolution=4, num_channels=1)
    assert grey.shape == (2, 1, 4, 4)


def test_corrupt_image_is_skipped_with_a_warning(tmp_path, caplog):
    for i in range(3):
        write_png(str(tmp_path / f"good{i}.png"), 255)
    bad = tmp_path / "broken.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    dataset = load_image_dataset(train_data_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="hfgen.data.images"):
        images, _ = images_to_tensor(dataset, resolution=8)
    assert images.shape == (3, 1, 8, 8)
    assert images.eq(1).all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(str(bad) in message for message in warnings)
    assert not any("good" in message for message in warnings)


def test_folder_of_only_corrupt_images_raises(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    (tmp_path / "b.png").write_bytes(b"\x89PNG garbage")
    dataset = load_image_dataset(train_data_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="none of the 2 images"):
        images_to_tensor(dataset, resolution=8)


def test_empty_folder_raises(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no image files") as info:
        load_image_dataset(train_data_dir=str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_missing_path_raises_naming_it(tmp_path):
    missing = str(tmp_path / "does-not-exist")
    for kwargs in ({"train_data_dir": missing}, {"dataset_name": missing}):
        with pytest.raises(DatasetError) as info:
            load_image_dataset(**kwargs)
        assert missing in str(info.value)


# ------------------------------------------------------------------------------------------- save_to_disk


def small_dataset(values, labels=None):
    columns = {"image": [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in values]}
    features = {"image": datasets.Image()}
    if labels is not None:
        columns["label"] = labels
        features["label"] = datasets.Value("int64")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def test_save_to_disk_dataset(tmp_path):
    small_dataset([0, 255, 51], labels=[1, 2, 3]).save_to_disk(str(tmp_path / "ds"))
    dataset = load_image_dataset(train_data_dir=str(tmp_path / "ds"))
    images, labels = images_to_tensor(dataset, resolution=4)
    assert labels.tolist() == [1, 2, 3]
    np.testing.assert_allclose(images[:, 0, 0, 0].numpy(), [-1.0, 1.0, 51 / 127.5 - 1], atol=1e-6)


def test_save_to_disk_dataset_dict_picks_split(tmp_path):
    folder = str(tmp_path / "dd")
    datasets.DatasetDict({"train": small_dataset([0, 0, 0]), "test": small_dataset([255, 255])}).save_to_disk(folder)
    train = load_image_dataset(train_data_dir=folder)
    test = load_image_dataset(dataset_name=folder, split="test")
    assert len(train) == 3 and len(test) == 2
    assert images_to_tensor(test, resolution=4)[0].eq(1).all()
    assert images_to_tensor(train, resolution=4)[0].eq(-1).all()
    with pytest.raises(DatasetError, match="validation") as info:
        load_image_dataset(train_data_dir=folder, split="validation")
    assert "train" in str(info.value) and "test" in str(info.value)


def test_image_column_is_renamed_or_reported(tmp_path):
    folder = str(tmp_path / "renamed")
    small_dataset([255, 0]).rename_column("image", "img").save_to_disk(folder)
    with pytest.raises(DatasetError, match="image_column"):
        load_image_dataset(train_data_dir=folder)
    with pytest.raises(DatasetError, match="'pixels'"):
        load_image_dataset(train_data_dir=folder, image_column="pixels")
    dataset = load_image_dataset(train_data_dir=folder, image_column="img")
    assert dataset.column_names == ["image"]
    assert images_to_tensor(dataset, resolution=4)[0][:, 0, 0, 0].tolist() == [1.0, -1.0]


# ------------------------------------------------------------------------------------------- preprocessing


def three_band_image(width, height, vertical=True) -> Image.Image:
    """Outer thirds black, middle third white (along the long side)."""
    array = np.zeros((height, width), np.uint8)
    if vertical:
        array[:, width // 3 : 2 * width // 3] = 255
    else:
        array[height // 3 : 2 * height // 3, :] = 255
    return Image.fromarray(array)


def test_non_square_images_are_centre_cropped():
    wide = three_band_image(24, 8)
    tall = three_band_image(8, 24, vertical=False)
    for image in (wide, tall):
        out = preprocess_image(image, resolution=8, num_channels=1)
        assert out.shape == (1, 8, 8)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, np.ones_like(out))  # only the white middle third survives
    # upscaled: the crop stays inside the middle third (edges blend at most half with black)
    up = preprocess_image(wide, resolution=16, num_channels=1)
    assert up.shape == (1, 16, 16)
    assert up.min() >= 0.0
    assert (up[:, :, 2:-2] == 1.0).all()
    # without centre crop the image is squeezed and the black thirds stay visible
    squeezed = preprocess_image(wide, resolution=8, num_channels=1, center_crop=False)
    assert squeezed.min() == -1.0 and squeezed.max() == 1.0
    assert (squeezed[0, :, 0] == -1.0).all() and (squeezed[0, :, -1] == -1.0).all()


def test_centre_crop_through_images_to_tensor(tmp_path):
    path = tmp_path / "wide"
    path.mkdir()
    three_band_image(24, 8).save(path / "a.png")
    three_band_image(30, 10).save(path / "b.png")
    images, _ = images_to_tensor(load_image_dataset(train_data_dir=str(path)), resolution=8)
    assert images.shape == (2, 1, 8, 8)
    assert images[0].eq(1).all()
    assert images[1].min() >= 0.0  # no black column from the outer thirds


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    array = np.zeros((8, 8), np.uint16)
    array[:, 2:4] = 16384  # a quarter of the 16-bit range
    array[:, 4:6] = 32768  # half
    array[:, 6:] = 65535  # white
    Image.fromarray(array).save(tmp_path / "deep.png")
    image = Image.open(tmp_path / "deep.png")
    assert image.mode == "I;16"
    out = preprocess_image(image, resolution=8, num_channels=1)
    np.testing.assert_allclose(out[0, 0, [0, 2, 4, 6]], [-1.0, -0.5, 0.0, 1.0], atol=0.02)


def test_random_hflip_is_reproducible_and_flips_about_half():
    images = torch.arange(1000 * 2 * 3 * 4, dtype=torch.float32).reshape(1000, 2, 3, 4)
    first = random_hflip(images, torch.Generator().manual_seed(5))
    again = random_hflip(images, torch.Generator().manual_seed(5))
    other = random_hflip(images, torch.Generator().manual_seed(6))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    flipped = (first == images.flip(-1)).flatten(1).all(1)
    kept = (first == images).flatten(1).all(1)
    assert (flipped ^ kept).all()  # every image is either untouched or exactly mirrored
    assert 420 <= int(flipped.sum()) <= 580


def test_tensor_to_pil_round_trip():
    images = torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]).reshape(1, 1, 1, 3).expand(2, 1, 3, 3).contiguous()
    pils = tensor_to_pil(images)
    assert len(pils) == 2 and pils[0].mode == "L"
    assert np.asarray(pils[0])[0].tolist() == [0, 255, 51]
    rgb = tensor_to_pil(images.expand(2, 3, 3, 3))
    assert rgb[0].mode == "RGB" and rgb[0].size == (3, 3)
