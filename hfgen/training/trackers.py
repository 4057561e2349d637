"""Experiment trackers of the training loop (``--report_to``), through accelerate's trackers: scalars from the loop,
plus the sample grids, the FID curve and the loss curve as images (not only numbers).

``tensorboard`` writes into ``OUTPUT_DIR/logs``; ``wandb`` into ``OUTPUT_DIR/logs/wandb`` (offline with
``WANDB_MODE=offline``, then ``wandb sync`` uploads it); ``trackio`` into its local database (``trackio show``);
``all`` is every tracker accelerate finds installed; ``none`` logs nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np
from PIL import Image

REPORT_TO = ("tensorboard", "wandb", "trackio", "all", "none")
logger = logging.getLogger(__name__)


def check_report_to(report_to: str) -> None:
    """Refuse an unknown tracker, or one whose package is missing, when the flags are parsed.

    Raises:
        ValueError: with the fix (the valid names, or the ``pip install`` line).
    """
    if report_to not in REPORT_TO:
        raise ValueError(f"--report_to must be one of {', '.join(REPORT_TO)}, got {report_to!r}")
    package = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        raise ValueError(f"--report_to {report_to} needs the {package} package: pip install {package}")


def tracker_init_kwargs(report_to: str, logs_dir: str) -> dict:
    """``init_kwargs`` for `accelerate.Accelerator.init_trackers`: wandb writes under ``logs_dir`` (not the working
    directory)."""
    if report_to in ("wandb", "all"):
        os.makedirs(logs_dir, exist_ok=True)
        return {"wandb": {"dir": logs_dir}}
    return {}


def log_images(accelerator, images: dict[str, str], step: int) -> list[str]:
    """Log PNG files as images to every tracker of ``accelerator`` that takes images.

    Args:
        images (`dict`): tracker key -> PNG path (e.g. ``{"samples": "OUTPUT_DIR/samples/step-000100.png"}``).
        step (`int`): the optimiser step.

    Returns:
        The names of the trackers that received them (a tracker that fails is a warning, never the end of a run).
    """
    arrays = {}
    for key, path in images.items():
        if path and os.path.isfile(path):
            with Image.open(path) as image:
                arrays[key] = np.asarray(image.convert("RGB"))
    done = []
    if not arrays:
        return done
    for tracker in getattr(accelerator, "trackers", []):
        try:
            if tracker.name == "tensorboard":
                for key, array in arrays.items():
                    tracker.writer.add_image(key, array, global_step=step, dataformats="HWC")
            elif tracker.name == "wandb":
                tracker.log_images({key: [array] for key, array in arrays.items()}, step=step)
            elif tracker.name == "trackio":
                import trackio

                tracker.log({key: trackio.Image(array) for key, array in arrays.items()}, step=step)
            else:
                continue
            done.append(tracker.name)
        except Exception as err:  # noqa: BLE001 - a tracker is an extra; the weights and checkpoints are the work
            logger.warning("could not log images to %s: %s", tracker.name, err)
    return done
