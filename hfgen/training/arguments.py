"""Command-line arguments of `hfgen train`, as dataclasses parsed by `transformers.HfArgumentParser`, and the
Python API's keyword arguments split into them (`parse_train_kwargs`).

Flag names follow diffusers' ``examples/unconditional_image_generation/train_unconditional.py``. A field whose
default is ``None`` and whose help says "family default" is filled in by the model family's objective
(`hfgen.training.objectives`) before training; `training_args.json` records the resolved value.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from hfgen.errors import ConfigurationError, HfgenError, UnknownArgumentError
from hfgen.output_folder.layout import SECRET_FIELDS  # the one list of secret fields (re-exported here)

LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "piecewise_constant",
)
MIXED_PRECISION = ("no", "fp16", "bf16")
# above this many bytes of uint8 pixels the training images are decoded per batch instead of held in memory
LAZY_LOADING_THRESHOLD_GB = 4.0


@dataclass
class DataArguments:
    """Where the training images come from and how they are preprocessed."""

    dataset_name: str = field(
        default="digits",
        metadata={
            "help": "'digits' (embedded scikit-learn scans, the default), a local path, or a Hub data set name "
            "(needs the network)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub data set configuration name."})
    train_data_dir: str | None = field(
        default=None,
        metadata={
            "help": "A local image folder, a .npy array (N, H, W[, C]; labels from <name>_labels.npy next to "
            "<name>_images.npy) or a save_to_disk folder."
        },
    )
    image_column: str = field(default="image", metadata={"help": "The column holding the images."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where `datasets` caches downloads."})
    resolution: int | None = field(
        default=None,
        metadata={
            "help": "Training image size in pixels (square). Default: 16 for the digits, else the images' own "
            "size (the shorter side)."
        },
    )
    center_crop: bool = field(
        default=True,
        metadata={
            "help": "Crop the central square of non-square images, then resize to --resolution (antialiased). "
            "'false': resize the whole image to a square."
        },
    )
    random_flip: bool = field(default=False, metadata={"help": "Flip images left-right at random."})
    num_channels: int | None = field(
        default=None, metadata={"help": "1 (greyscale) or 3 (RGB); inferred from the first image when unset."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training images (for quick runs)."}
    )
    held_out_size: int | None = field(
        default=None,
        metadata={
            "help": "Images held out of training for evaluation (a fixed split, seed 0, stratified by class labels). "
            "Default: MNIST 2000, CIFAR-10 1000, CelebA 1000 (recognised by the path), 0 for other data; the "
            "digits keep their fixed 360-image test split."
        },
    )
    attribute_file: str | None = field(
        default=None,
        metadata={"help": "A CelebA-format attribute file (list_attr_celeba.txt) labelling the images by file name."},
    )
    attribute: str | None = field(
        default=None, metadata={"help": "With --attribute_file: the attribute whose -1/1 values become 0/1 labels."}
    )
    lazy_loading: bool | None = field(
        default=None,
        metadata={
            "help": "Decode images per batch with a DataLoader instead of holding them in memory (same seeded "
            f"order). Default: only when the uint8 images would exceed {LAZY_LOADING_THRESHOLD_GB:g} GB."
        },
    )
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "With --lazy_loading: worker processes decoding images (0: the main process)."}
    )

    def __post_init__(self):
        for name in ("dataset_name", "train_data_dir", "cache_dir", "attribute_file"):
            if isinstance(getattr(self, name), os.PathLike):  # the Python API takes pathlib.Path too
                setattr(self, name, os.fspath(getattr(self, name)))
        if self.resolution is not None and self.resolution <= 0:
            raise ValueError(f"--resolution must be a positive number of pixels, got {self.resolution}")
        if self.num_channels is not None and self.num_channels not in (1, 3):
            raise ValueError(f"--num_channels must be 1 (greyscale) or 3 (RGB), got {self.num_channels}")
        if self.max_train_samples is not None and self.max_train_samples <= 0:
            raise ValueError(f"--max_train_samples must be positive, got {self.max_train_samples}")
        if self.train_data_dir is not None and not os.path.exists(os.path.expanduser(self.train_data_dir)):
            raise ValueError(f"--train_data_dir {self.train_data_dir} does not exist")
        if self.held_out_size is not None and self.held_out_size < 0:
            raise ValueError(f"--held_out_size must be 0 or more images, got {self.held_out_size}")
        if self.attribute_file is not None and not os.path.isfile(os.path.expanduser(self.attribute_file)):
            raise ValueError(f"--attribute_file {self.attribute_file} does not exist")
        if (self.attribute_file is None) != (self.attribute is None):
            raise ValueError(
                "--attribute_file and --attribute go together (e.g. --attribute_file list_attr_celeba.txt "
                "--attribute Smiling)"
            )
        if self.dataloader_num_workers < 0:
            raise ValueError(f"--dataloader_num_workers must be 0 or more, got {self.dataloader_num_workers}")


@dataclass
class TrainingArguments:
    """What the one training loop (`hfgen.training.trainer.train`) does, whatever the model family."""

    output_dir: str | None = field(
        default=None, metadata={"help": "Output folder. Default: outputs/<model>-<dataset>."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Train from scratch even if OUTPUT_DIR holds a trained model."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of weights, data order and noise."})
    train_batch_size: int = field(default=64, metadata={"help": "Batch size per process."})
    max_train_steps: int | None = field(
        default=None, metadata={"help": "Optimiser steps to train for. Family default (DDPM on digits: 2000)."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Batches whose gradients are summed before one optimiser step."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate. Family default (DDPM: 1e-3)."}
    )
    lr_scheduler: str | None = field(
        default=None,
        metadata={"help": f"Learning-rate schedule: {', '.join(LR_SCHEDULERS)}. Family default (most: cosine)."},
    )
    lr_warmup_steps: int | None = field(
        default=None, metadata={"help": "Linear warm-up steps of the schedule. Family default (most: 100)."}
    )
    adam_beta1: float | None = field(default=None, metadata={"help": "Adam beta1. Family default (most: 0.95)."})
    adam_beta2: float | None = field(default=None, metadata={"help": "Adam beta2. Family default (most: 0.999)."})
    adam_weight_decay: float | None = field(
        default=None, metadata={"help": "AdamW weight decay. Family default (most: 1e-6)."}
    )
    adam_epsilon: float = field(default=1e-8, metadata={"help": "Adam epsilon."})
    max_grad_norm: float | None = field(
        default=None,
        metadata={
            "help": "Clip each optimiser's gradient norm to this value (0: no clipping). Family default (most: 1)."
        },
    )
    use_ema: bool = field(
        default=False,
        metadata={"help": "Keep an exponential moving average of the weights; it is what is saved and sampled."},
    )
    class_conditional: bool = field(
        default=False,
        metadata={
            "help": "Train a class-conditional model on the data's labels (VAE, DCGAN, WGAN, WGAN-GP, DDPM, NCSN); "
            "sample with --class_labels and, for diffusion, --guidance_scale."
        },
    )
    conditioning_dropout_prob: float = field(
        default=0.1,
        metadata={
            "help": "DDPM/NCSN with --class_conditional: probability of replacing a label by 'no label' in "
            "training, which classifier-free guidance needs (Ho & Salimans 2022)."
        },
    )
    ema_inv_gamma: float = field(default=1.0, metadata={"help": "EMA warm-up inverse gamma."})
    ema_power: float = field(default=0.75, metadata={"help": "EMA warm-up power."})
    ema_max_decay: float = field(default=0.999, metadata={"help": "Maximum EMA decay."})
    mixed_precision: str = field(
        default="no", metadata={"help": "'no', 'fp16' (GPU) or 'bf16'. Passed to accelerate."}
    )
    checkpointing_steps: int = field(
        default=500, metadata={"help": "Save a resumable checkpoint (accelerator.save_state) every N steps."}
    )
    checkpoints_total_limit: int | None = field(
        default=3, metadata={"help": "Keep at most this many checkpoints (oldest deleted first)."}
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder to resume from, at the exact step."}
    )
    save_images_steps: int = field(default=500, metadata={"help": "Write a sample grid to samples/ every N steps."})
    num_sample_images: int = field(default=16, metadata={"help": "Images in each periodic sample grid."})
    eval_steps: int | None = field(
        default=None,
        metadata={"help": "Every N steps compute FID/KID on --eval_num_images samples and log them (main process)."},
    )
    eval_num_images: int = field(default=256, metadata={"help": "Samples per evaluation (FID needs > 64)."})
    eval_reference: str = field(
        default="auto",
        metadata={
            "help": "'auto' (the held-out part of the training data; the digits' test split), 'digits' or a "
            "folder/.npy of real images."
        },
    )
    eval_features: str = field(
        default="auto",
        metadata={"help": "'auto' (by the training data), 'digits', 'mnist', 'cifar10', 'celeba', 'clip:PATH', ..."},
    )
    save_best: bool = field(
        default=False,
        metadata={"help": "With --eval_steps: keep the pipeline with the lowest FID in OUTPUT_DIR/best."},
    )
    report_to: str = field(
        default="tensorboard",
        metadata={
            "help": "Experiment tracker: 'tensorboard' (OUTPUT_DIR/logs), 'wandb' (OUTPUT_DIR/logs/wandb; offline "
            "with WANDB_MODE=offline), 'trackio', 'all' (every one installed) or 'none'. Scalars, sample grids and "
            "the FID and loss curves as images."
        },
    )
    logger: str | None = field(default=None, metadata={"help": "Alias of --report_to (older name)."})
    logging_steps: int = field(default=10, metadata={"help": "Log scalars to the tracker every N steps."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the trained folder to the Hub at the end."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository, e.g. user/ddpm-digits."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})
    hub_token: str | None = field(
        default=None, metadata={"help": "Hub token (else the logged-in one). Never written anywhere."}
    )

    def __post_init__(self):
        for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "save_images_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.max_train_steps is not None and self.max_train_steps <= 0:
            raise ValueError(f"--max_train_steps must be a positive integer, got {self.max_train_steps}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}")
        if self.lr_scheduler is not None and self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(
                f"--lr_scheduler {self.lr_scheduler!r} is unknown; choose one of {', '.join(LR_SCHEDULERS)}"
            )
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        if self.logger is not None:  # the older name of --report_to
            if self.report_to not in ("tensorboard", self.logger):
                raise ValueError(f"--logger is an alias of --report_to; pass one of them, not {self.logger} and "
                                 f"{self.report_to}")  # fmt: skip
            self.report_to, self.logger = self.logger, None
        from hfgen.training.trackers import check_report_to

        check_report_to(self.report_to)
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError("--checkpoints_total_limit must be at least 1")
        if self.num_sample_images < 1:
            raise ValueError("--num_sample_images must be at least 1")
        if self.eval_steps is not None and self.eval_steps <= 0:
            raise ValueError(f"--eval_steps must be a positive integer, got {self.eval_steps}")
        if self.save_best and self.eval_steps is None:
            raise ValueError("--save_best needs --eval_steps N (how often to measure FID)")
        if self.eval_num_images < 2:
            raise ValueError(f"--eval_num_images must be at least 2, got {self.eval_num_images}")
        self._check_ranges()
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/ddpm-digits)")

    def _check_ranges(self):
        """Numbers torch would accept silently or fail on deep inside: each refused here with its range."""
        finite = {
            "learning_rate": self.learning_rate, "adam_epsilon": self.adam_epsilon,
            "max_grad_norm": self.max_grad_norm, "adam_weight_decay": self.adam_weight_decay,
            "ema_inv_gamma": self.ema_inv_gamma, "ema_power": self.ema_power, "ema_max_decay": self.ema_max_decay,
        }  # fmt: skip
        for name, value in finite.items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"--{name} must be a finite number, got {value}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be between 0 and 2**32 - 1 (numpy's range), got {self.seed}")
        for name in ("adam_beta1", "adam_beta2"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"--{name} must be in [0, 1), got {value}")
        for name in ("lr_warmup_steps", "adam_weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"--{name} must be 0 or more, got {value}")
        if not self.adam_epsilon > 0:
            raise ValueError(f"--adam_epsilon must be positive, got {self.adam_epsilon}")
        if not 0 <= self.conditioning_dropout_prob < 1:
            raise ValueError(f"--conditioning_dropout_prob must be in [0, 1), got {self.conditioning_dropout_prob}")
        if not 0 <= self.ema_max_decay <= 1:
            raise ValueError(f"--ema_max_decay must be in [0, 1], got {self.ema_max_decay}")
        if not (self.ema_inv_gamma > 0 and self.ema_power > 0):
            raise ValueError(
                f"--ema_inv_gamma and --ema_power must be positive, got {self.ema_inv_gamma}, {self.ema_power}"
            )
        if self.logging_steps <= 0:
            raise ValueError(f"--logging_steps must be a positive integer, got {self.logging_steps}")
        for name in ("output_dir", "resume_from_checkpoint", "eval_reference", "hub_model_id"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(
                    self, name, os.fspath(value)
                )  # the Python API takes pathlib.Path as the command line takes text
        if self.eval_reference not in ("auto", "digits") and not os.path.exists(
            os.path.expanduser(self.eval_reference)
        ):
            raise ValueError(f"--eval_reference {self.eval_reference} does not exist; pass 'auto', 'digits' or a path")


# Loop defaults for the fields a family may set differently (GANs: constant LR, no clipping, their Adam betas).
GENERIC_DEFAULTS = {
    "lr_scheduler": "cosine",
    "lr_warmup_steps": 100,
    "adam_beta1": 0.95,
    "adam_beta2": 0.999,
    "adam_weight_decay": 1e-6,
    "max_grad_norm": 1.0,
}


def arguments_to_dict(*dataclass_instances) -> dict:
    """Merge argument dataclasses into one JSON-serialisable dict, leaving out secrets (the Hub token)."""
    merged = {}
    for instance in dataclass_instances:
        for key, value in dataclasses.asdict(instance).items():
            if key in SECRET_FIELDS:
                continue
            merged[key] = list(value) if isinstance(value, tuple) else value
    return merged


def parse_train_kwargs(objective, kwargs: dict):
    """Split keyword arguments into ``(DataArguments, TrainingArguments, <family arguments>)`` for ``objective``
    (an `Objective`: its ``arguments_class``, None when the family has no flags of its own, and its ``name``).

    Raises:
        UnknownArgumentError: for a keyword that no dataclass has (a `TypeError`). ConfigurationError: for a value
            the dataclasses refuse (a `ValueError`, with the command line's message).
    """
    classes = [DataArguments, TrainingArguments] + ([objective.arguments_class] if objective.arguments_class else [])
    buckets = [{} for _ in classes]
    for key, value in kwargs.items():
        for bucket, cls in zip(buckets, classes):
            if key in {f.name for f in dataclasses.fields(cls)}:
                bucket[key] = value
                break
        else:
            import difflib

            names = [f.name for cls in classes for f in dataclasses.fields(cls)]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; `hfgen train {objective.name} --help` lists them"
            raise UnknownArgumentError(f"unknown training argument {key!r} for model {objective.name!r}{hint}")
    try:
        instances = [cls(**bucket) for cls, bucket in zip(classes, buckets)]
    except HfgenError:
        raise
    except (ValueError, TypeError) as err:  # the same message as `hfgen train` prints
        raise ConfigurationError(str(err)) from None
    if objective.arguments_class is None:
        instances.append(None)
    return tuple(instances)


def resolve_defaults(objective, data_args: DataArguments, training_args: TrainingArguments, model_args) -> None:
    """Fill in the fields left ``None``, in place: the family's defaults first (`Objective.resolve_defaults`), then
    the loop's `GENERIC_DEFAULTS`."""
    objective.resolve_defaults(data_args, training_args, model_args)
    for key, value in GENERIC_DEFAULTS.items():
        if getattr(training_args, key) is None:
            setattr(training_args, key, value)


def dataset_label(data_args: DataArguments) -> str:
    """A short name of the training data for folder names and model cards (``digits``, a folder's or file's name)."""
    if data_args.train_data_dir:
        return os.path.splitext(os.path.basename(os.path.normpath(data_args.train_data_dir)))[0]
    name = data_args.dataset_name or "digits"
    return os.path.basename(os.path.normpath(name)) if os.path.exists(name) else name
