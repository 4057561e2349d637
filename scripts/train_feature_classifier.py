"""Train a real-data feature classifier for hfgen's metrics, and write its weights into the package.

    python scripts/train_feature_classifier.py NAME [--data_dir ../shared/data] [--epochs N] [--seed 0] [--output F]

NAME is ``mnist``, ``cifar10`` or ``celeba``. Trains `hfgen.metrics.features.RealDataClassifier` on the TRAIN part of
the fixed split of `hfgen.data.splits.held_out_split` (seed 0) only, and prints its accuracy on the held-out part:

| NAME | source in --data_dir | train / held-out | input | outputs | augmentation |
|---|---|---|---|---|---|
| mnist | ``mnist/mnist_test_*.npy`` | 8,000 / 2,000 (stratified) | 28x28 grey | 10 classes | shifts <= 2 px |
| cifar10 | ``cifar10/cifar10_test_*.npy`` | 9,000 / 1,000 (stratified) | 32x32 RGB | 10 classes | crops, flips |
| celeba | ``celeba/`` (JPEGs, attributes) | 9,000 / 1,000 | 64x64 RGB | 40 attributes | crops, flips |

Crops are random crops of the image zero-padded by 4 pixels (cifar10) or 2 (celeba: the faces are aligned); flips
are random horizontal flips. Training: SGD (Nesterov momentum 0.9, weight decay 5e-4), one-cycle learning rate, batches
of 128, cross-entropy for classes and binary cross-entropy summed over the attributes for CelebA.

CelebA faces (89x109) are cropped to their central 89x89 square and resized to 64x64 (PIL, bilinear, antialiased);
the 40 attributes are independent binary outputs (BCE) and the script prints the mean held-out accuracy over them and
the ``Smiling`` accuracy. The weights are saved as safetensors with the configuration and the accuracies in the
metadata (``hfgen/metrics/weights/NAME_classifier.safetensors`` by default). MNIST must reach 98.5% held-out accuracy
(exit code 1 otherwise, after writing the weights). A missing data folder is one ``hfgen: error: ...`` line, exit 2.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
NAMES = ("mnist", "cifar10", "celeba")
CELEBA_SIZE = 64
CELEBA_BOX = (0, 10, 89, 99)  # the central 89x89 square of an 89x109 aligned face

# per data set: held-out size, stratified split, network configuration, training defaults, augmentation padding
SETTINGS = {
    "mnist": {
        "held_out": 2000,
        "stratify": True,
        "model": {"in_channels": 1, "input_size": 28, "num_outputs": 10, "width": 32},
        "epochs": 15,
        "learning_rate": 0.05,
        "pad": 2,
        "flip": False,
        "required_accuracy": 0.985,
    },
    "cifar10": {
        "held_out": 1000,
        "stratify": True,
        "model": {"in_channels": 3, "input_size": 32, "num_outputs": 10, "width": 32},
        "epochs": 30,
        "learning_rate": 0.1,
        "pad": 4,
        "flip": True,
        "aim_accuracy": 0.70,
    },
    "celeba": {
        "held_out": 1000,
        "stratify": False,
        "model": {"in_channels": 3, "input_size": CELEBA_SIZE, "num_outputs": 40, "multi_label": True, "width": 24},
        "epochs": 12,
        "learning_rate": 0.1,
        "pad": 2,
        "flip": True,
        "aim_accuracy": 0.88,  # Smiling
    },
}


def fail(message: str):
    print(f"hfgen: error: {message}", file=sys.stderr)
    sys.exit(2)


def require(paths: list[str], name: str, data_dir: str):
    for path in paths:
        if not os.path.exists(path):
            fail(
                f"{name} data not found: {path} does not exist; pass --data_dir, the folder holding "
                f"{name}/ (default {DEFAULT_DATA_DIR})"
            )


def load_data(name: str, data_dir: str):
    """``(images uint8 (N, C, H, W), labels (N,) int64 or (N, 40) float32, output names)`` of the whole source."""
    folder = os.path.join(data_dir, name)
    if name in ("mnist", "cifar10"):
        images_path = os.path.join(folder, f"{name}_test_images.npy")
        labels_path = os.path.join(folder, f"{name}_test_labels.npy")
        classes_path = os.path.join(folder, "classes.txt")
        require([images_path, labels_path] + ([classes_path] if name == "cifar10" else []), name, data_dir)
        images = torch.from_numpy(np.load(images_path))
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        labels = torch.from_numpy(np.load(labels_path).astype(np.int64))
        if name == "cifar10":
            with open(classes_path) as handle:
                names = [line.strip() for line in handle if line.strip()]
        else:
            names = [str(digit) for digit in range(10)]
        return images.contiguous(), labels, names

    from PIL import Image

    from hfgen.data.attributes import read_attribute_file

    image_dir = os.path.join(folder, "img_align_celeba")
    attribute_path = os.path.join(folder, "list_attr_celeba.txt")
    require([image_dir, attribute_path], name, data_dir)
    table = read_attribute_file(attribute_path)
    row_of = {file: i for i, file in enumerate(table.files)}
    files = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(".jpg"))
    missing = [f for f in files if f not in row_of]
    if missing:
        fail(f"{len(missing)} CelebA image(s) are missing from {attribute_path} (first: {missing[0]})")
    images = np.empty((len(files), CELEBA_SIZE, CELEBA_SIZE, 3), dtype=np.uint8)
    for i, file in enumerate(files):
        with Image.open(os.path.join(image_dir, file)) as image:
            face = image.convert("RGB").resize((CELEBA_SIZE, CELEBA_SIZE), Image.BILINEAR, box=CELEBA_BOX)
            images[i] = np.asarray(face)
    labels = torch.from_numpy(table.values[[row_of[f] for f in files]].astype(np.float32))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels, list(table.names)


def augment(images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crops of ``images`` (floats) zero-padded by ``pad`` pixels, and random horizontal flips."""
    size_h, size_w = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (images.shape[0], 2), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy : dy + size_h, dx : dx + size_w] for i, (dy, dx) in enumerate(offsets)])
    if flip:
        mirrored = torch.rand(images.shape[0], generator=generator) < 0.5
        out[mirrored] = out[mirrored].flip(-1)
    return out


def attribute_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over the attributes and averaged over the batch: the plain mean over attributes
    too would scale each attribute's gradient down by their number (40), far too small a step for SGD."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(logits)


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


@torch.no_grad()
def predict(model, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, logits)`` of uint8 images, in batches (model in eval mode)."""
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        f, lg = model.features_and_logits(to_float(images[start : start + batch_size]))
        features.append(f)
        logits.append(lg)
    return torch.cat(features), torch.cat(logits)


def accuracies(name: str, logits: torch.Tensor, labels: torch.Tensor, output_names: list[str]) -> dict:
    if name != "celeba":
        return {"accuracy": (logits.argmax(1) == labels).float().mean().item()}
    per_attribute = ((logits > 0).float() == labels).float().mean(0)
    return {
        "accuracy": per_attribute.mean().item(),
        "smiling": per_attribute[output_names.index("Smiling")].item(),
        "per_attribute": dict(zip(output_names, [round(v, 4) for v in per_attribute.tolist()])),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=NAMES, help="the data set: mnist, cifar10 or celeba")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="folder holding mnist/, cifar10/, celeba/")
    parser.add_argument("--epochs", type=int, default=None, help="default: 15 (mnist), 30 (cifar10), 12 (celeba)")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=None, help="peak SGD learning rate (one-cycle)")
    parser.add_argument("--num_features", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--output", default=None, help="default: hfgen/metrics/weights/NAME_classifier.safetensors")
    args = parser.parse_args()
    settings = SETTINGS[args.name]
    epochs = args.epochs if args.epochs is not None else settings["epochs"]
    learning_rate = args.learning_rate or settings["learning_rate"]
    output = args.output or os.path.join(ROOT, "hfgen", "metrics", "weights", f"{args.name}_classifier.safetensors")
    if not os.path.isdir(args.data_dir):
        fail(f"the data folder {args.data_dir} does not exist; pass --data_dir, the folder holding {args.name}/")

    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from hfgen.data.splits import held_out_split
    from hfgen.metrics.features import RealDataClassifier

    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    images, labels, output_names = load_data(args.name, args.data_dir)
    train_index, held_out_index = held_out_split(
        len(images), settings["held_out"], labels=labels.numpy() if settings["stratify"] else None, seed=0
    )
    train_index, held_out_index = torch.from_numpy(train_index), torch.from_numpy(held_out_index)
    train_x, train_y = images[train_index], labels[train_index]
    held_x, held_y = images[held_out_index], labels[held_out_index]

    model = RealDataClassifier(num_features=args.num_features, output_names=output_names, **settings["model"])
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        momentum=0.9,
        nesterov=True,
    )
    steps_per_epoch = len(train_x) // args.batch_size
    steps = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.25)
    loss_fn = attribute_loss if model.multi_label else F.cross_entropy
    start_time = time.time()
    model.train()
    with tqdm(total=steps, desc=f"Training the {args.name} feature classifier") as progress:
        for _ in range(epochs):
            order = torch.randperm(len(train_x), generator=generator)
            for step in range(steps_per_epoch):
                index = order[step * args.batch_size : (step + 1) * args.batch_size]
                batch = augment(to_float(train_x[index]), settings["pad"], settings["flip"], generator)
                loss = loss_fn(model.classify(batch.contiguous(memory_format=torch.channels_last)), train_y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                progress.update(1)
                progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    train_seconds = time.time() - start_time

    model = model.to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        model.feature_scale.fill_(1.0)
        raw_features, train_logits = predict(model, train_x)
        model.feature_scale.copy_(raw_features.std(dim=0).clamp_min(1e-6))
        _, held_logits = predict(model, held_x)
    train_scores = accuracies(args.name, train_logits, train_y, output_names)
    held_scores = accuracies(args.name, held_logits, held_y, output_names)

    print(f"train accuracy: {train_scores['accuracy']:.2%} ({len(train_x)} images)")
    if args.name == "celeba":
        print(f"held-out mean accuracy over the 40 attributes: {held_scores['accuracy']:.2%} ({len(held_x)} images)")
        print(f"held-out Smiling accuracy: {held_scores['smiling']:.2%} ({len(held_x)} images)")
    else:
        print(f"held-out accuracy: {held_scores['accuracy']:.2%} ({len(held_x)} images)")
    print(f"training time: {train_seconds:.0f} s ({epochs} epochs, {torch.get_num_threads()} threads)")

    metadata = {
        "name": args.name,
        "config": json.dumps(model.config),
        "held_out_accuracy": f"{held_scores['accuracy']:.4f}",
        "train_accuracy": f"{train_scores['accuracy']:.4f}",
        "train_images": str(len(train_x)),
        "held_out_images": str(len(held_x)),
        "split": f"hfgen.data.splits.held_out_split({len(images)}, {settings['held_out']}, "
        f"labels={'class labels' if settings['stratify'] else 'None'}, seed=0)",
        "epochs": str(epochs),
        "seed": str(args.seed),
        "train_seconds": f"{train_seconds:.0f}",
        "script": "scripts/train_feature_classifier.py",
    }
    if args.name == "celeba":
        metadata["held_out_smiling_accuracy"] = f"{held_scores['smiling']:.4f}"
        metadata["held_out_accuracy_per_attribute"] = json.dumps(held_scores["per_attribute"])
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, output, metadata=metadata)
    shown = os.path.relpath(output) if not os.path.relpath(output).startswith("..") else os.path.abspath(output)
    print(f"wrote {shown} ({os.path.getsize(output) / 1024:.0f} KiB)")
    if held_scores["accuracy"] < settings.get("required_accuracy", 0.0):
        print(f"held-out accuracy is below the {settings['required_accuracy']:.1%} the metrics need", file=sys.stderr)
        sys.exit(1)
    aimed = held_scores.get("smiling", held_scores["accuracy"])
    if aimed < settings.get("aim_accuracy", 0.0):
        print(f"warning: held-out accuracy is below the {settings['aim_accuracy']:.0%} aimed at", file=sys.stderr)


if __name__ == "__main__":
    main()
