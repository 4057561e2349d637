"""Every file and folder name of an hfgen output folder, checkpoint naming and listing, and the writing of
``training_args.json`` with secret fields dropped. The one place these names live; nothing here imports torch.

```
OUTPUT_DIR/
  model_index.json + one folder per component   MODEL_INDEX (pipeline.save_pretrained)
  README.md                                     MODEL_CARD
  training_args.json                            TRAINING_ARGS (secrets never written)
  metrics.json                                  METRICS (hfgen evaluate)
  samples/ loss.png logs/ figures/              SAMPLES_DIR, LOSS_PLOT, LOGS_DIR, FIGURES_DIR
  checkpoints/checkpoint-N/trainer_state.json   CHECKPOINTS_DIR, CHECKPOINT_PREFIX, TRAINER_STATE
  .hfgen.lock                                   LOCK (while a run writes the folder)
```
"""

from __future__ import annotations

import json
import os

MODEL_INDEX = "model_index.json"
MODEL_CARD = "README.md"
TRAINING_ARGS = "training_args.json"
METRICS = "metrics.json"
SAMPLES_DIR = "samples"
LOSS_PLOT = "loss.png"
LOGS_DIR = "logs"
FIGURES_DIR = "figures"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
TMP_PREFIX = ".tmp-"  # a checkpoint being written; renamed when complete
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: its presence means complete
LOCK = ".hfgen.lock"
SECRET_FIELDS = ("hub_token",)  # never written to disk, logs or a model card


def drop_secrets(values: dict) -> dict:
    """``values`` without the secret fields (the Hub token)."""
    return {key: value for key, value in values.items() if key not in SECRET_FIELDS}


def write_json_atomic(path: str, payload: dict, sort_keys: bool = True) -> str:
    """Write ``payload`` as indented JSON to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=sort_keys)
    os.replace(tmp, path)
    return path


def write_training_args(output_dir: str, values: dict) -> str:
    """Write ``OUTPUT_DIR/training_args.json`` (secrets dropped, tuples as lists); return its path."""
    clean = {key: list(value) if isinstance(value, tuple) else value for key, value in drop_secrets(values).items()}
    return write_json_atomic(os.path.join(output_dir, TRAINING_ARGS), clean)


def read_json_object(path: str) -> dict:
    """The JSON object in the file ``path`` (a config, ``training_args.json``, ``metrics.json``).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid JSON, or not a JSON object (the reason in the message).
    """
    with open(path) as handle:
        values = json.load(handle)
    if not isinstance(values, dict):
        raise ValueError(f"not a JSON object but {type(values).__name__}")
    return values


def read_training_args(output_dir: str) -> dict | None:
    """``OUTPUT_DIR/training_args.json`` as a dict, or None when it is missing or unreadable."""
    try:
        return read_json_object(os.path.join(output_dir, TRAINING_ARGS))
    except (OSError, ValueError):
        return None


def looks_like_local_path(path_or_repo_id: str) -> bool:
    """Whether ``path_or_repo_id`` can only mean a local path (``./x``, ``/x``, ``~/x``, ``a/b/c``), never a Hub
    repo id (``name`` or ``namespace/name``), so a missing one is an error rather than a download."""
    stripped = path_or_repo_id.strip("/").replace("/", "", 1)
    return path_or_repo_id.startswith((".", "/", "~")) or os.sep in stripped or path_or_repo_id.count("/") > 1


def checkpoint_step(path: str) -> int | None:
    """The step N of a ``checkpoint-N`` folder path, or None for any other name."""
    name = os.path.basename(os.path.normpath(path))
    suffix = name[len(CHECKPOINT_PREFIX) :]
    return int(suffix) if name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoint folders in ``OUTPUT_DIR/checkpoints``, oldest (lowest step) first.

    A folder counts only when named ``checkpoint-N`` and holding ``trainer_state.json`` (written last), so a
    half-written checkpoint (``.tmp-checkpoint-N``) is never picked.
    """
    root = os.path.join(output_dir, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        step = checkpoint_step(name)
        if step is not None and os.path.isfile(os.path.join(root, name, TRAINER_STATE)):
            found.append((step, os.path.join(root, name)))
    return [path for _, path in sorted(found)]


__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINT_PREFIX",
    "FIGURES_DIR",
    "LOCK",
    "LOGS_DIR",
    "LOSS_PLOT",
    "METRICS",
    "MODEL_CARD",
    "MODEL_INDEX",
    "SAMPLES_DIR",
    "SECRET_FIELDS",
    "TMP_PREFIX",
    "TRAINER_STATE",
    "TRAINING_ARGS",
    "checkpoint_step",
    "drop_secrets",
    "list_checkpoints",
    "looks_like_local_path",
    "read_json_object",
    "read_training_args",
    "write_json_atomic",
    "write_training_args",
]
