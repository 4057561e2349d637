"""`hfgen vqa finetune`: LoRA fine-tuning of PaliGemma on CLEVR question answering.

The loop is transformers' `Trainer` (which runs on Accelerate, so ``accelerate launch`` with any accelerate config —
DDP, FSDP, DeepSpeed — works), not a second hand-written loop: it brings checkpointing with rotation, resuming,
tensorboard logging, the progress bar, gradient accumulation, mixed precision and gradient checkpointing.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field

import torch
from transformers import TrainerCallback

from hfgen.errors import ConfigurationError, DatasetError
from hfgen.output_folder.layout import CHECKPOINTS_DIR, LOSS_PLOT, TRAINER_STATE, write_training_args
from hfgen.vqa.modeling import BASE_MODEL_ID, TINY_BASE_DIR, make_prompt

MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class VQAFinetuneArguments:
    """Flags of `hfgen vqa finetune` (names as in the image models' `hfgen train` and PEFT's `LoraConfig`)."""

    clevr_dir: str = field(metadata={"help": "A CLEVR_v1.0 folder (real CLEVR or `hfgen vqa make-dataset`)."})
    output_dir: str = field(metadata={"help": "Where the adapter, processor, checkpoints and model card go."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": f"A local PaliGemma folder, or a Hub id when online (e.g. {BASE_MODEL_ID})."}
    )
    tiny: bool = field(default=False, metadata={"help": "A tiny random PaliGemma built offline (tests, CPU demo)."})
    max_questions: int | None = field(default=None, metadata={"help": "Train on this many questions (shuffled)."})
    max_train_steps: int = field(default=100, metadata={"help": "Optimiser steps."})
    train_batch_size: int = field(default=8, metadata={"help": "Questions per device per step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimiser step."})
    learning_rate: float | None = field(
        default=None, metadata={"help": "AdamW learning rate; default 2e-4 (real model) or 2e-3 (--tiny)."}
    )
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers LR schedule name."})
    lr_warmup_steps: int = field(default=10, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target: str | None = field(
        default=None,
        metadata={
            "help": "Target modules: a regex (PEFT full match) or comma-separated names. Default: the language "
            "model's q/k/v/o and gate/up/down projections only."
        },
    )
    lora_on_vision: bool = field(default=False, metadata={"help": "Also adapt the SigLIP vision tower."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})
    mixed_precision: str = field(default="no", metadata={"help": f"One of {', '.join(MIXED_PRECISION)}."})
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: 4-bit NF4 base (CUDA + bitsandbytes)."})
    checkpointing_steps: int = field(default=500, metadata={"help": "Save a resumable checkpoint every N steps."})
    checkpoints_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "A checkpoint folder or 'latest'."})
    logging_steps: int = field(default=10, metadata={"help": "Log the loss every N steps."})
    logger: str = field(default="tensorboard", metadata={"help": "tensorboard or none."})
    seed: int = field(default=0, metadata={"help": "Seed of the data order, LoRA init and the tiny model."})
    merge: bool = field(default=False, metadata={"help": "Also save the adapter merged into the base (merged/)."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the adapter folder to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "The Hub repo for --push_to_hub."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (never written to disk)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Allow a non-empty --output_dir."})

    def __post_init__(self):
        if self.tiny == bool(self.model_name_or_path):
            raise ValueError("pass exactly one of --model_name_or_path PATH_OR_HUB_ID and --tiny")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        if self.max_train_steps < 1 or self.train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("--max_train_steps, --train_batch_size and --gradient_accumulation_steps must be >= 1")
        if self.lora_r < 1 or not 0 <= self.lora_dropout < 1:
            raise ValueError("--lora_r must be >= 1 and --lora_dropout in [0, 1)")
        if self.load_in_4bit and self.tiny:
            raise ValueError("--load_in_4bit (QLoRA) applies to the real PaliGemma on a CUDA GPU, not to --tiny")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id USER/NAME")
        for name in ("checkpointing_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(f"--checkpoints_total_limit must be at least 1, got {self.checkpoints_total_limit}")
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"--learning_rate must be a positive finite number, got {self.learning_rate}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be between 0 and 2**32 - 1, got {self.seed}")
        if self.lr_warmup_steps < 0 or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError("--lr_warmup_steps and --weight_decay must be 0 or more")
        if self.learning_rate is None:
            self.learning_rate = 2e-3 if self.tiny else 2e-4


class VQACollator:
    """Turns CLEVR rows into PaliGemma batches.

    Training (``train=True``): ``processor(text=prompts, images, suffix=answers)``, padded on the right, so the batch
    has ``input_ids``, ``attention_mask``, ``token_type_ids`` (0 on the prefix, 1 on answer + EOS), ``pixel_values``
    `(batch_size, 3, H, W)` and ``labels`` (-100 everywhere but the answer and EOS; padding is -100 too).
    Generation (``train=False``): prompts only, padded on the left, no labels.

    Raises:
        DatasetError: when a training row has no answer (the CLEVR test split has none).
    """

    def __init__(self, processor, train: bool = True):
        self.processor = processor
        self.train = train
        self.image_token = getattr(processor, "image_token", "<image>")

    def __call__(self, rows: list[dict]):
        images = [row["image"].convert("RGB") for row in rows]
        prompts = [self.image_token + make_prompt(row["question"]) for row in rows]
        kwargs = {"return_tensors": "pt", "padding": "longest"}
        if self.train:
            answers = [row.get("answer") for row in rows]
            if any(a is None for a in answers):
                raise DatasetError("a training question has no answer (the CLEVR test split has none); use train")
            batch = self.processor(text=prompts, images=images, suffix=answers, padding_side="right", **kwargs)
            batch["labels"][batch["attention_mask"] == 0] = -100
            return batch
        return self.processor(text=prompts, images=images, padding_side="left", **kwargs)


class StopOnNonFiniteLoss(TrainerCallback):
    """Stops `Trainer` at the first NaN/inf, before it can checkpoint or save a diverged model; ``bad_step`` and
    ``what`` tell where.

    Checked after every optimiser step: the trainable (LoRA) weights, which are few, so the check is cheap; at every
    log: the loss and the gradient norm (``logging_nan_inf_filter`` is off, so a NaN loss is logged as NaN).
    """

    def __init__(self, parameters=()):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.bad_step = None
        self.what = None

    def _stop(self, state, control, what: str) -> None:
        if self.bad_step is None:
            self.bad_step, self.what = state.global_step, what
        control.should_training_stop = True
        control.should_save = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.parameters and not all(bool(torch.isfinite(p).all()) for p in self.parameters):
            self._stop(state, control, "the LoRA weights")

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self._stop(state, control, f"the {key.replace('_', ' ')}")


def _checkpointing_kwargs(training_arguments_class, enabled: bool) -> dict:
    """``activation_checkpointing`` (transformers >= 5) or ``gradient_checkpointing``, only when enabled."""
    if not enabled:
        return {}
    import inspect

    names = inspect.signature(training_arguments_class.__init__).parameters
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": True}


def _check_output_dir(args: VQAFinetuneArguments) -> None:
    if os.path.isdir(args.output_dir) and os.listdir(args.output_dir) and not args.overwrite_output_dir:
        if args.resume_from_checkpoint is None:
            raise ConfigurationError(
                f"--output_dir {args.output_dir} is not empty; pass --overwrite_output_dir, "
                "--resume_from_checkpoint latest, or another folder"
            )


def _resume_path(args: VQAFinetuneArguments):
    if args.resume_from_checkpoint != "latest":
        if args.resume_from_checkpoint and not os.path.isdir(args.resume_from_checkpoint):
            raise ConfigurationError(f"--resume_from_checkpoint {args.resume_from_checkpoint} does not exist")
        return args.resume_from_checkpoint
    return latest_complete_checkpoint(os.path.join(args.output_dir, CHECKPOINTS_DIR))  # None: start fresh


def latest_complete_checkpoint(folder: str) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` that `Trainer` finished writing, or None.

    `Trainer` writes ``trainer_state.json`` last (after weights, optimizer, scheduler and RNG states), so a checkpoint
    without a readable one was cut short by a crash or kill; it is renamed ``incomplete-checkpoint-N`` (kept for
    inspection, never resumed) and the next older one is taken.
    """
    import re

    if not os.path.isdir(folder):
        return None
    found = sorted(
        ((int(m.group(1)), name) for name in os.listdir(folder) if (m := re.fullmatch(r"checkpoint-(\d+)", name))),
        reverse=True,
    )
    for _, name in found:
        path = os.path.join(folder, name)
        try:
            with open(os.path.join(path, TRAINER_STATE)) as handle:
                json.load(handle)
            return path
        except (OSError, ValueError):
            aside = os.path.join(folder, "incomplete-" + name)
            os.replace(path, aside)
            print(f"hfgen: warning: {path} is incomplete (a crash while it was written); moved to {aside}",
                  file=sys.stderr)  # fmt: skip
    return None


def _load_train_set(args: VQAFinetuneArguments):
    """The train split of ``args.clevr_dir`` (``args.max_questions`` of it, shuffled with ``args.seed``).

    Raises:
        DatasetError: when it holds fewer questions than one batch of ``args.train_batch_size``.
    """
    from hfgen.data.clevr import load_clevr

    train_set = load_clevr(args.clevr_dir, "train", max_questions=args.max_questions, seed=args.seed)
    if len(train_set) < args.train_batch_size:
        raise DatasetError(
            f"{args.clevr_dir} has {len(train_set)} training questions, fewer than one batch of "
            f"{args.train_batch_size}; lower --train_batch_size or generate more with `hfgen vqa make-dataset`"
        )
    return train_set


def _load_lora_model(args: VQAFinetuneArguments):
    """``(model, processor, trainable)``: the base PaliGemma with LoRA adapters added and its trainable parameters
    by module group.

    With ``--tiny`` the random base is saved to ``OUTPUT_DIR/tiny_base_model/`` and loaded back from there (so the
    adapter records that folder as its base); with ``--load_in_4bit`` the base is prepared for k-bit training.
    """
    from hfgen.vqa.modeling import add_lora, load_base_model, trainable_parameters_by_module

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision)
    if args.tiny:
        model, processor = load_base_model(tiny=True, clevr_dir=args.clevr_dir, seed=args.seed)
        base_dir = os.path.join(args.output_dir, TINY_BASE_DIR)
        model.save_pretrained(base_dir, safe_serialization=True)
        processor.save_pretrained(base_dir)
        from transformers import PaliGemmaForConditionalGeneration

        model = PaliGemmaForConditionalGeneration.from_pretrained(base_dir, use_safetensors=True)  # name_or_path
    else:
        model, processor = load_base_model(
            args.model_name_or_path, torch_dtype=dtype if args.load_in_4bit else None, load_in_4bit=args.load_in_4bit
        )
    if args.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    model = add_lora(model, args.lora_r, args.lora_alpha, args.lora_dropout, args.lora_target, args.lora_on_vision)
    trainable = trainable_parameters_by_module(model)
    if args.gradient_checkpointing:
        model.enable_input_require_grads()
    return model, processor, trainable


def _training_arguments(args: VQAFinetuneArguments):
    """transformers' `TrainingArguments` for ``args``: checkpoints in ``OUTPUT_DIR/checkpoints/``, logs in
    ``OUTPUT_DIR/logs/`` (also set as ``TENSORBOARD_LOGGING_DIR``, where transformers 5 reads it)."""
    from transformers import TrainingArguments

    os.environ["TENSORBOARD_LOGGING_DIR"] = os.path.join(args.output_dir, "logs")  # transformers 5 reads it here
    return TrainingArguments(
        output_dir=os.path.join(args.output_dir, CHECKPOINTS_DIR),
        max_steps=args.max_train_steps,
        per_device_train_batch_size=args.train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=args.lr_warmup_steps,
        weight_decay=args.weight_decay,
        logging_steps=args.logging_steps,
        save_strategy="steps",
        save_steps=args.checkpointing_steps,
        save_total_limit=args.checkpoints_total_limit,
        bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16",
        report_to=[] if args.logger == "none" else [args.logger],
        logging_nan_inf_filter=False,  # a NaN loss must reach StopOnNonFiniteLoss, not be replaced by the mean
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        **_checkpointing_kwargs(TrainingArguments, args.gradient_checkpointing),
    )


def _raise_if_diverged(stop_on_nan: StopOnNonFiniteLoss, checkpoints_dir: str) -> None:
    """Refuse to save a run that `StopOnNonFiniteLoss` stopped (nothing final was saved, no checkpoint overwritten).

    Raises:
        TrainingDivergedError: naming what became NaN/inf, the step and the fix.
    """
    if stop_on_nan.bad_step is not None:
        from hfgen.errors import TrainingDivergedError

        raise TrainingDivergedError(
            f"{stop_on_nan.what} became NaN/inf at step {stop_on_nan.bad_step}; training stopped and nothing was "
            f"saved as final or over "
            f"the checkpoints in {checkpoints_dir}. Lower --learning_rate (or use --mixed_precision bf16 "
            "instead of fp16) and run again"
        )


def _save_results(args: VQAFinetuneArguments, model, processor, info: dict, losses: list) -> None:
    """Save the adapter and processor into ``args.output_dir`` with `_write_training_files`; with ``--merge`` the
    merged model into ``merged/``; with ``--push_to_hub`` upload the folder."""
    model.save_pretrained(args.output_dir, safe_serialization=True)
    processor.save_pretrained(args.output_dir)
    _write_training_files(args, info, losses)
    if args.merge:
        merged = model.merge_and_unload()
        merged.save_pretrained(os.path.join(args.output_dir, "merged"), safe_serialization=True)
        processor.save_pretrained(os.path.join(args.output_dir, "merged"))
    if args.push_to_hub:
        from hfgen.output_folder.hub import push_to_hub

        push_to_hub(args.output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)


def finetune(args: VQAFinetuneArguments) -> dict:
    """Fine-tune PaliGemma with LoRA on ``args.clevr_dir``'s train split; save the adapter, processor, model card.

    Writes into ``args.output_dir``: ``adapter_config.json``, ``adapter_model.safetensors``, the processor files,
    ``README.md`` (from ``model_cards/paligemma_clevr_lora.md``), ``training_args.json``, ``loss.png``,
    ``checkpoints/`` and ``logs/``; with ``--tiny`` also ``tiny_base_model/`` (the exact random base, so the adapter
    can be loaded and evaluated); with ``--merge`` also ``merged/`` (a full model).

    Returns:
        dict with ``train_loss`` (the last logged loss), ``steps``, ``trainable_parameters`` (by module group),
        ``num_train_questions`` and ``seconds``.

    Raises:
        ConfigurationError, DatasetError, HfgenError: with a message naming the fix.
    """
    import time

    from transformers import Trainer, set_seed

    _check_output_dir(args)
    set_seed(args.seed)
    train_set = _load_train_set(args)
    model, processor, trainable = _load_lora_model(args)
    training_args = _training_arguments(args)
    stop_on_nan = StopOnNonFiniteLoss(model.parameters())
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=VQACollator(processor),
        callbacks=[stop_on_nan],
    )
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=_resume_path(args))
    seconds = time.perf_counter() - start
    _raise_if_diverged(stop_on_nan, training_args.output_dir)
    losses = [(log["step"], log["loss"]) for log in trainer.state.log_history if "loss" in log]
    if trainer.is_world_process_zero():
        info = {
            "train_loss": losses[-1][1] if losses else float(output.training_loss),
            "steps": int(trainer.state.global_step),
            "trainable_parameters": trainable,
            "num_train_questions": len(train_set),
            "seconds": seconds,
        }
        _save_results(args, model, processor, info, losses)
        return info
    return {}


def _write_training_files(args: VQAFinetuneArguments, info: dict, losses: list) -> None:
    from hfgen.plotting import plot_loss_curves
    from hfgen.vqa.card import write_vqa_model_card

    write_training_args(args.output_dir, {**asdict(args), **{f"result_{k}": v for k, v in info.items()}})
    if losses:
        plot_loss_curves({"loss": losses}, os.path.join(args.output_dir, LOSS_PLOT), title="LoRA fine-tuning loss",
                         ylabel="cross-entropy on answer + EOS tokens (nats/token)")  # fmt: skip
    write_vqa_model_card(args.output_dir)
