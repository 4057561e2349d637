"""The shipped real-data feature extractors (mnist, cifar10, celeba): loading, shapes, and held-out accuracy.

The accuracy tests read the real data sets in ``../shared/data`` and skip when it is absent (a fresh clone).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hfgen.errors import CheckpointError, UnknownNameError
from hfgen.metrics.features import DigitsClassifier, RealDataClassifier, load_feature_extractor
from hfgen.metrics.image_quality import classifier_scores, extract_features

pytestmark = pytest.mark.unit  # `make test-fast`

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
NAMES = ("mnist", "cifar10", "celeba")
EXPECTED = {  # (in_channels, input_size, num_outputs, logits_kind)
    "mnist": (1, 28, 10, "classes"),
    "cifar10": (3, 32, 10, "classes"),
    "celeba": (3, 64, 40, "attributes"),
}


@pytest.fixture(scope="module")
def extractors():
    return {name: load_feature_extractor(name) for name in NAMES}


def data_file(*parts) -> Path:
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the real data sets live in ../shared/data)")
    return path


def held_out_arrays(name: str, held_out_size: int):
    """Held-out images ``(N, C, H, W)`` in [0, 1] and labels of the fixed split of an .npy data set."""
    from hfgen.data.splits import held_out_split

    images = np.load(data_file(name, f"{name}_test_images.npy"))
    labels = np.load(data_file(name, f"{name}_test_labels.npy")).astype(np.int64)
    _, held_out = held_out_split(len(images), held_out_size, labels=labels, seed=0)
    x = torch.from_numpy(images[held_out]).float() / 255
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x, torch.from_numpy(labels[held_out])


@torch.no_grad()
def accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (model.classify(images).argmax(1) == labels).float().mean().item()


@pytest.mark.parametrize("name", NAMES)
def test_shipped_weights_load_with_their_configuration(extractors, name):
    model = extractors[name]
    in_channels, input_size, num_outputs, kind = EXPECTED[name]
    assert isinstance(model, RealDataClassifier) and not model.training
    assert (model.in_channels, model.input_size, model.num_outputs, model.logits_kind) == (
        in_channels,
        input_size,
        num_outputs,
        kind,
    )
    assert model.num_features == 128 and len(model.output_names) == num_outputs
    assert model.metadata["name"] == name and 0.5 < float(model.metadata["held_out_accuracy"]) <= 1
    assert not any(p.requires_grad for p in model.parameters())
    weights = Path(__file__).resolve().parents[1] / "hfgen" / "metrics" / "weights" / f"{name}_classifier.safetensors"
    assert weights.stat().st_size < 2 * 1024 * 1024
    assert RealDataClassifier(**json.loads(model.metadata["config"])).config == model.config


def test_output_names_and_logit_kinds(extractors):
    assert extractors["mnist"].output_names == tuple("0123456789")
    assert extractors["cifar10"].output_names[0] == "airplane" and extractors["cifar10"].output_names[-1] == "truck"
    assert extractors["celeba"].output_names[31] == "Smiling"
    assert DigitsClassifier.logits_kind == "classes" and DigitsClassifier.output_names == tuple("0123456789")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (3, 3, 32, 32), (2, 3, 64, 64), (2, 1, 17, 40), (1, 4, 89, 89)])
def test_shapes_and_value_ranges(extractors, name, shape):
    model = extractors[name]
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features, logits = model.features_and_logits(images)
        assert torch.equal(model(images), features) and torch.equal(model.classify(images), logits)
    assert features.shape == (shape[0], 128) and features.dtype == torch.float32
    assert logits.shape == (shape[0], model.num_outputs)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    assert features.abs().max() < 1e3 and logits.abs().max() < 1e3


def test_bad_inputs_raise_value_error(extractors):
    for model in extractors.values():
        with pytest.raises(ValueError, match="expected images"):
            model(torch.rand(2, 2, 32, 32))
        with pytest.raises(ValueError, match="expected images"):
            model(torch.rand(3, 32, 32))


@pytest.mark.parametrize("name", NAMES)
def test_features_differ_between_images(extractors, name):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 32, 32, generator=generator)
    images[1] = 1 - images[0]
    images[2] = 0.0
    images[3] = torch.linspace(0, 1, 32).view(1, 1, 32).expand(3, 32, 32)
    with torch.no_grad():
        features = extractors[name](images)
    distances = torch.cdist(features, features)
    assert (distances[~torch.eye(4, dtype=torch.bool)] > 1e-3).all()


def test_extract_features_gives_class_logits_only(extractors):
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    features, logits = extract_features(extractors["cifar10"], images, batch_size=2)
    assert features.shape == (5, 128) and features.dtype == torch.float64 and logits.shape == (5, 10)
    assert classifier_scores(logits)["classes_covered"] >= 1
    features, logits = extract_features(extractors["celeba"], images, batch_size=2)
    assert features.shape == (5, 128) and logits is None
    _, digit_logits = extract_features(load_feature_extractor("digits"), images)
    assert digit_logits.shape == (5, 10)
    with pytest.raises(ValueError, match="class logits"):
        classifier_scores(torch.zeros(5))


def test_loading_errors_name_the_script(tmp_path, extractors):
    with pytest.raises(CheckpointError, match="train_feature_classifier.py"):
        RealDataClassifier.from_pretrained(str(tmp_path / "missing.safetensors"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="train_feature_classifier.py"):
        load_feature_extractor(f"mnist:{broken}")
    from safetensors.torch import save_file

    no_config = tmp_path / "no_config.safetensors"
    save_file({"x": torch.zeros(1)}, str(no_config))
    with pytest.raises(CheckpointError, match="config"):
        RealDataClassifier.from_pretrained(str(no_config))
    cifar = tmp_path / "cifar.safetensors"
    state = {k: v.contiguous() for k, v in extractors["cifar10"].state_dict().items()}
    save_file(state, str(cifar), metadata=extractors["cifar10"].metadata)
    assert load_feature_extractor(f"cifar10:{cifar}").config == extractors["cifar10"].config
    with pytest.raises(CheckpointError, match="cifar10 feature classifier, not mnist"):
        load_feature_extractor(f"mnist:{cifar}")
    with pytest.raises(UnknownNameError, match="'mnist', 'cifar10', 'celeba'"):
        load_feature_extractor("svhn")


def test_mnist_held_out_accuracy(extractors):
    images, labels = held_out_arrays("mnist", 2000)
    assert len(images) == 2000
    assert accuracy(extractors["mnist"], images, labels) >= 0.985
    with torch.no_grad():
        std = extractors["mnist"](images).std(dim=0)
    assert 0.5 < std.mean().item() < 1.5  # features scaled to unit variance on the train part


def test_cifar10_held_out_accuracy_is_the_recorded_one(extractors):
    model = extractors["cifar10"]
    images, labels = held_out_arrays("cifar10", 1000)
    assert len(images) == 1000
    assert accuracy(model, images, labels) >= float(model.metadata["held_out_accuracy"]) - 0.005


def test_celeba_smiling_accuracy_on_held_out_faces(extractors):
    from PIL import Image

    from hfgen.data.attributes import read_attribute_file
    from hfgen.data.splits import held_out_split

    folder = data_file("celeba", "img_align_celeba")
    table = read_attribute_file(str(data_file("celeba", "list_attr_celeba.txt")))
    files = sorted(path.name for path in folder.glob("*.jpg"))
    _, held_out = held_out_split(len(files), 1000, labels=None, seed=0)
    subset = [files[i] for i in held_out[:300]]
    faces = []
    for file in subset:
        with Image.open(folder / file) as image:
            face = image.convert("RGB").resize((64, 64), Image.BILINEAR, box=(0, 10, 89, 99))
        faces.append(np.asarray(face))
    images = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float() / 255
    row = {file: i for i, file in enumerate(table.files)}
    smiling = torch.from_numpy(table.values[[row[file] for file in subset], table.column("Smiling")].astype(np.int64))
    model = extractors["celeba"]
    with torch.no_grad():
        predicted = (model.classify(images)[:, model.output_names.index("Smiling")] > 0).long()
    assert (predicted == smiling).float().mean().item() >= 0.85
