"""Checkpoints of one training run: atomic saving, rotation, resumption, quarantine of diverged checkpoints, setting
aside an abandoned branch, EMA state hooks and the learning rate after a resume.

A checkpoint is ``accelerator.save_state`` (weights, optimisers, LR schedules, RNG states, EMA) written to
``checkpoints/.tmp-checkpoint-N`` and renamed to ``checkpoints/checkpoint-N`` once ``trainer_state.json`` (the loop's
step, histories and seed) is in it, so a run killed mid-write leaves the previous checkpoint as ``latest``. The loop
(`hfgen.training.trainer`) decides when; this module decides how.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys

from hfgen.errors import CheckpointError
from hfgen.output_folder.layout import (
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    TMP_PREFIX,
    TRAINER_STATE,
    checkpoint_step,
    list_checkpoints,
)

logger = logging.getLogger(__name__)

WRITE_FAILURE_MARKERS = ("unexpected pos", "file write failed", "No space left", "PytorchStreamWriter failed")


def write_failure(err: BaseException, path: str, last_good: str | None) -> CheckpointError | None:
    """The one-line error for a checkpoint or model that could not be written (disk full, read-only folder), or None
    when ``err`` is not a write failure. torch reports a full disk as ``RuntimeError: ... unexpected pos N vs M``."""
    text = str(err).strip()
    if not isinstance(err, OSError) and not any(marker in text for marker in WRITE_FAILURE_MARKERS):
        return None
    cause = getattr(err, "strerror", None) or (text.splitlines()[-1] if text else type(err).__name__)
    if "unexpected pos" in text or "file write failed" in text:
        cause = f"the file could not be written completely, most likely a full disk ({cause.strip()[:120]})"
    kept = (
        f"the last complete checkpoint {last_good} stays loadable"
        if last_good
        else "no checkpoint of this run was complete yet"
    )
    return CheckpointError(
        f"could not write {path}: {cause}; free disk space (or choose another --output_dir) and resume with "
        f"--resume_from_checkpoint latest; {kept}"
    )


class Checkpoints:
    """The checkpoints of one run in ``OUTPUT_DIR/checkpoints``.

    Args:
        accelerator (`accelerate.Accelerator`): the run's accelerator (saving and loading go through it; only the
            main process renames, rotates and writes ``trainer_state.json``).
        output_dir (`str`): the run's output folder.
        seed (`int`): the run's ``--seed`` (recorded, and compared on resume).
        total_limit (`int`, *optional*): ``--checkpoints_total_limit``; older complete checkpoints are deleted.

    Attributes:
        last (`str` or None): the newest complete checkpoint written or resumed by this run.
    """

    def __init__(self, accelerator, output_dir: str, seed: int, total_limit: int | None = None):
        self.accelerator = accelerator
        self.output_dir = output_dir
        self.seed = seed
        self.total_limit = total_limit
        self.last: str | None = None

    def check_earlier_run(self, resume_from_checkpoint: str | None, overwrite_output_dir: bool) -> None:
        """Before a run that does not resume: refuse an output folder holding checkpoints of an earlier run, or with
        ``overwrite_output_dir`` delete them (main process).

        Raises:
            CheckpointError: checkpoints of an earlier run and neither ``--resume_from_checkpoint`` nor
                ``--overwrite_output_dir``.
        """
        existing = list_checkpoints(self.output_dir)
        if existing and resume_from_checkpoint is None:
            if not overwrite_output_dir:
                raise CheckpointError(
                    f"{self.output_dir} holds checkpoints of an earlier run ({os.path.basename(existing[-1])}); "
                    "pass --resume_from_checkpoint latest to continue it or --overwrite_output_dir to start over"
                )
            if self.accelerator.is_main_process:
                shutil.rmtree(os.path.join(self.output_dir, CHECKPOINTS_DIR))

    def register_ema_hooks(self, ema, ema_key: str, model_cls) -> None:
        """Save ``ema`` into ``checkpoint-N/ema/<ema_key>`` with every checkpoint and restore it on resume."""
        accelerator = self.accelerator

        def save_hook(models, weights, output_dir):
            if accelerator.is_main_process:
                ema.save_pretrained(os.path.join(output_dir, "ema", ema_key))

        def load_hook(models, input_dir):
            from diffusers.training_utils import EMAModel

            path = os.path.join(input_dir, "ema", ema_key)
            if not os.path.isdir(path):
                raise CheckpointError(f"{input_dir} has no EMA weights ({path}); resume without --use_ema")
            loaded = EMAModel.from_pretrained(path, model_cls)
            ema.load_state_dict(loaded.state_dict())
            ema.to(accelerator.device)

        accelerator.register_save_state_pre_hook(save_hook)
        accelerator.register_load_state_pre_hook(load_hook)

    def save(self, step: int, trainer_state: dict) -> str:
        """Write ``checkpoint-<step>`` atomically (``trainer_state`` + ``seed`` as ``trainer_state.json``), rotate.

        Raises:
            CheckpointError: the checkpoint could not be written (disk full, ...); the half-written one is removed.
        """
        accelerator = self.accelerator
        root = os.path.join(self.output_dir, CHECKPOINTS_DIR)
        final = os.path.join(root, f"{CHECKPOINT_PREFIX}{step}")
        tmp = os.path.join(root, f"{TMP_PREFIX}{CHECKPOINT_PREFIX}{step}")
        if accelerator.is_main_process:
            os.makedirs(root, exist_ok=True)
            for name in os.listdir(root):
                if name.startswith(TMP_PREFIX):
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(tmp)
        except (OSError, RuntimeError) as err:
            failure = write_failure(err, final, self.last)
            if failure is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # never a half-written checkpoint
            raise failure from None
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"global_step": step, **trainer_state, "seed": self.seed}
            with open(os.path.join(tmp, TRAINER_STATE), "w") as handle:
                json.dump(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
            if self.total_limit is not None:
                for old in list_checkpoints(self.output_dir)[: -self.total_limit]:
                    shutil.rmtree(old, ignore_errors=True)
            self.last = final
        accelerator.wait_for_everyone()
        return final

    def quarantine(self, first_bad_step: int) -> str | None:
        """Rename checkpoints of step >= ``first_bad_step`` to ``diverged-checkpoint-N``; return the newest good one.

        A NaN loss at step k is computed from the weights after step k - 1, so checkpoints from step k - 1 on hold
        weights that already diverge; `latest` must not pick them. They are renamed, not deleted.
        """
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for path in list_checkpoints(self.output_dir):
                if checkpoint_step(path) >= first_bad_step:
                    target = os.path.join(os.path.dirname(path), f"diverged-{os.path.basename(path)}")
                    shutil.rmtree(target, ignore_errors=True)
                    os.replace(path, target)
        self.accelerator.wait_for_everyone()
        remaining = list_checkpoints(self.output_dir)
        return remaining[-1] if remaining else None

    def resolve(self, request: str) -> str | None:
        """The checkpoint folder ``--resume_from_checkpoint request`` names (None: ``latest`` with none saved).

        Raises:
            CheckpointError: a named checkpoint that does not exist.
        """
        if request == "latest":
            found = list_checkpoints(self.output_dir)
            if not found:
                logger.warning("No checkpoint in %s; starting a new training run.", self.output_dir)
                self.accelerator.print(f"No checkpoint in {self.output_dir}/checkpoints; starting a new training run.")
                return None
            return found[-1]
        path = os.path.abspath(request)
        if not os.path.isdir(path):
            candidate = os.path.join(self.output_dir, CHECKPOINTS_DIR, request)
            if not os.path.isdir(candidate):
                raise CheckpointError(f"checkpoint {request} does not exist; use 'latest' or a checkpoint folder")
            path = candidate
        return path

    def load(self, request: str | None) -> tuple[int, dict]:
        """Resume ``--resume_from_checkpoint request``: load the accelerator state, set later checkpoints aside.

        Returns:
            ``(step, trainer_state)``; ``(0, {})`` when there is nothing to resume.

        Raises:
            CheckpointError: an incomplete, corrupt or mismatching checkpoint (the message names the fix).
        """
        if request is None:
            return 0, {}
        path = self.resolve(request)
        if path is None:
            return 0, {}
        try:
            with open(os.path.join(path, TRAINER_STATE)) as handle:
                state = json.load(handle)
            step = int(state["global_step"])
        except (OSError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"checkpoint {path} is incomplete ({err}); resume from an earlier checkpoint"
            ) from None
        try:
            self.accelerator.load_state(path)
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(
                f"checkpoint {path} is corrupt or does not match this model ({type(err).__name__}: {err}); "
                "resume from an earlier checkpoint-N or start over with --overwrite_output_dir"
            ) from None
        self.last = path
        saved_seed = state.get("seed")
        if saved_seed is not None and saved_seed != self.seed and self.accelerator.is_main_process:
            print(
                f"hfgen: warning: {path} was trained with --seed {saved_seed}, this run uses --seed {self.seed}: "
                "the data order and noise from here on differ from an uninterrupted run (pass --seed "
                f"{saved_seed} for an exact resume)",
                file=sys.stderr,
            )
        self.set_aside_later(step)
        self.accelerator.print(f"Resumed from {path} at step {step}.")
        return step, state

    def set_aside_later(self, step: int) -> None:
        """Resuming an older checkpoint starts a new branch: checkpoints after ``step`` belong to the abandoned one.
        They are renamed ``abandoned-checkpoint-N`` (kept, never picked by ``latest``), so that rotation and later
        resumes only see this branch."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for later in [p for p in list_checkpoints(self.output_dir) if checkpoint_step(p) > step]:
                target = os.path.join(os.path.dirname(later), f"abandoned-{os.path.basename(later)}")
                shutil.rmtree(target, ignore_errors=True)
                os.replace(later, target)
                print(f"hfgen: warning: resuming step {step} abandons {later}; moved to {target}", file=sys.stderr)
        self.accelerator.wait_for_everyone()

    def apply_learning_rates(self, optimizers, schedulers, initial_lrs) -> None:
        """After a resume, use this run's learning rate(s), not the checkpoint's (e.g. a lower rate after a NaN).

        The schedule position (``last_epoch``) stays the checkpoint's; with an unchanged rate nothing changes, so
        resuming stays exact.
        """
        for optimizer, scheduler, lrs in zip(optimizers, schedulers, initial_lrs):
            inner = getattr(scheduler, "scheduler", scheduler)
            old = list(inner.base_lrs)
            inner.base_lrs = list(lrs)
            for group, base, factor in zip(optimizer.param_groups, lrs, inner.lr_lambdas):
                group["initial_lr"] = base
                group["lr"] = base * factor(inner.last_epoch)
            if old != list(lrs):
                self.accelerator.print(f"Learning rate changed on resume: {old} -> {list(lrs)}.")


__all__ = ["Checkpoints", "write_failure"]
