"""`load_pipeline`: the right pipeline class for any hfgen output folder or Hub repository."""

from __future__ import annotations

import json
import os

from hfgen.errors import CheckpointError


def looks_like_local_path(path_or_repo_id: str) -> bool:
    """Whether ``path_or_repo_id`` can only mean a local path (``./x``, ``/x``, ``~/x``, ``a/b/c``), never a Hub
    repo id (``name`` or ``namespace/name``), so a missing one is an error rather than a download."""
    stripped = path_or_repo_id.strip("/").replace("/", "", 1)
    return path_or_repo_id.startswith((".", "/", "~")) or os.sep in stripped or path_or_repo_id.count("/") > 1


def _local_folder(path_or_repo_id: str) -> str:
    if os.path.isdir(path_or_repo_id):
        return path_or_repo_id
    if looks_like_local_path(path_or_repo_id):
        raise CheckpointError(f"{path_or_repo_id} does not exist; pass a trained output folder or a Hub repo id")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(path_or_repo_id, allow_patterns=None, ignore_patterns=["checkpoints/*", "logs/*"])
    except Exception as err:
        raise CheckpointError(
            f"{path_or_repo_id} is not a local folder and could not be downloaded from the Hub "
            f"({type(err).__name__}); pass a local output folder"
        ) from None


def load_pipeline(path_or_repo_id: str, **kwargs):
    """Load the pipeline saved in an hfgen output folder (or a Hub repository holding one).

    DDPM folders load as diffusers' stock `DDPMPipeline`; hfgen's own families load as their hfgen pipeline class.
    Hub repositories are first fetched with `huggingface_hub.snapshot_download` (diffusers refuses third-party
    component modules on download), then loaded from the local copy. Weights load from safetensors only.

    Args:
        path_or_repo_id (`str`): a local folder with ``model_index.json``, or a Hub repo id.
        **kwargs: passed to ``from_pretrained`` (e.g. ``torch_dtype``).

    Returns:
        A `diffusers.DiffusionPipeline` subclass instance.

    Raises:
        CheckpointError: missing folder, no ``model_index.json``, or components that fail to load.
    """
    import diffusers

    folder = _local_folder(os.path.expanduser(path_or_repo_id))
    index_path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_path):
        raise CheckpointError(
            f"{path_or_repo_id} has no model_index.json: it is not a trained hfgen folder (training saves it at the "
            "end; an interrupted run can be finished with --resume_from_checkpoint latest)"
        )
    try:
        with open(index_path) as handle:
            class_name = json.load(handle)["_class_name"]
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{index_path} is corrupt ({err})") from None
    pipeline_cls = getattr(diffusers, class_name, None)
    if pipeline_cls is None:
        import hfgen.pipelines as hfgen_pipelines

        pipeline_cls = getattr(hfgen_pipelines, class_name, None)
    if pipeline_cls is None:
        raise CheckpointError(f"{path_or_repo_id}: unknown pipeline class {class_name!r} in model_index.json")
    kwargs.setdefault("use_safetensors", True)
    try:
        return pipeline_cls.from_pretrained(folder, **kwargs)
    except Exception as err:
        raise CheckpointError(
            f"could not load {path_or_repo_id} as {class_name} ({type(err).__name__}: {err}); the folder may be "
            "incomplete or corrupt"
        ) from None
