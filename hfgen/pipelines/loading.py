"""`load_pipeline`: the right pipeline class for any hfgen output folder or Hub repository."""

from __future__ import annotations

import inspect
import json
import os

from hfgen.errors import CheckpointError
from hfgen.output_folder.layout import MODEL_INDEX, looks_like_local_path, read_json_object
from hfgen.pipelines.portable import resolve_class


def _local_folder(path_or_repo_id: str) -> str:
    """``path_or_repo_id`` itself when it is a folder, else its Hub snapshot (checkpoints and logs left out).

    Raises:
        CheckpointError: a local-looking path that does not exist, or a repo that cannot be downloaded.
    """
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


def _check_component_configs(folder: str, index: dict) -> None:
    """Every component's ``config.json`` / ``scheduler_config.json`` must be a JSON object (diffusers otherwise
    falls back to the Hub and reports a connection error instead of the broken file)."""
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        for config_name in ("config.json", "scheduler_config.json"):
            path = os.path.join(folder, name, config_name)
            if not os.path.isfile(path):
                continue
            try:
                read_json_object(path)
            except (OSError, ValueError) as err:
                raise CheckpointError(
                    f"{path} is corrupt ({err}); restore it or retrain (a checkpoint in checkpoints/ can be "
                    "resumed with --resume_from_checkpoint latest)"
                ) from None


def load_pipeline(path_or_repo_id: str, **kwargs):
    """Load the pipeline saved in an hfgen output folder (or a Hub repository holding one).

    DDPM folders load as diffusers' stock `DDPMPipeline`; hfgen's own families load as their hfgen pipeline class,
    built from hfgen's installed classes (the source that a portable folder carries for loading without hfgen, see
    `hfgen.pipelines.portable`, is never imported, so no ``trust_remote_code``).
    Hub repositories are first fetched with `huggingface_hub.snapshot_download` (diffusers refuses third-party
    component modules on download), then loaded from the local copy. Weights load from safetensors only.

    Args:
        path_or_repo_id (`str`): a local folder with ``model_index.json``, or a Hub repo id.
        **kwargs: passed to ``from_pretrained`` (e.g. ``torch_dtype``).

    Returns:
        A `diffusers.DiffusionPipeline` subclass instance.

    Raises:
        CheckpointError: missing folder, no ``model_index.json``, a component config that is not valid JSON (the
            file named), or components that fail to load.
    """
    import diffusers

    folder = _local_folder(os.path.expanduser(path_or_repo_id))
    index_path = os.path.join(folder, MODEL_INDEX)
    if not os.path.isfile(index_path):
        raise CheckpointError(
            f"{path_or_repo_id} has no model_index.json: it is not a trained hfgen folder (training saves it at the "
            "end; an interrupted run can be finished with --resume_from_checkpoint latest)"
        )
    try:
        with open(index_path) as handle:
            index = json.load(handle)
        class_name = index["_class_name"]
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index_path} is corrupt ({err})") from None
    _check_component_configs(folder, index)
    if (
        isinstance(class_name, list) and len(class_name) == 2
    ):  # a portable folder: ["hfgen_pipeline_vae", "VAEPipeline"]
        class_name = class_name[1]
    if not isinstance(class_name, str):
        raise CheckpointError(f"{index_path} is corrupt (_class_name is {class_name!r})")
    pipeline_cls = resolve_class("hfgen", class_name) or getattr(diffusers, class_name, None)
    if pipeline_cls is None:
        raise CheckpointError(f"{path_or_repo_id}: unknown pipeline class {class_name!r} in model_index.json")
    kwargs.setdefault("use_safetensors", True)
    kwargs.setdefault("local_files_only", True)  # a broken local file is named, never "couldn't connect to the Hub"
    try:
        if pipeline_cls.__module__.startswith("diffusers."):
            return pipeline_cls.from_pretrained(folder, **kwargs)
        return _build_pipeline(folder, index, pipeline_cls, kwargs)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"could not load {path_or_repo_id} as {class_name} ({type(err).__name__}: {err}); the folder may be "
            "incomplete or corrupt"
        ) from None


def _build_pipeline(folder: str, index: dict, pipeline_cls, model_kwargs: dict):
    """An hfgen pipeline from hfgen's own classes: each component of ``index`` loaded from its subfolder, then the
    pipeline's other ``__init__`` arguments (``id2label``) from the index. A component or ``__init__`` argument in
    ``model_kwargs`` (by its name) is used instead of the saved one, as in diffusers; the rest of ``model_kwargs``
    goes to each model's ``from_pretrained``. The source a portable folder carries is never imported (no
    ``trust_remote_code``).

    Raises:
        CheckpointError: a component class that neither hfgen nor diffusers defines.
    """
    from diffusers import SchedulerMixin

    entries = {name: entry for name, entry in index.items() if not name.startswith("_") and isinstance(entry, list)}
    parameters = [name for name in inspect.signature(pipeline_cls.__init__).parameters if name != "self"]
    given = {name: model_kwargs[name] for name in parameters if name in model_kwargs}
    components = {name: value for name, value in given.items() if name in entries}
    model_kwargs = {key: value for key, value in model_kwargs.items() if key not in given}
    for name, entry in entries.items():
        if name in components or len(entry) != 2:
            continue
        library, component_class = entry
        if component_class is None:
            components[name] = None
            continue
        cls = resolve_class(library, component_class)
        if cls is None:
            raise CheckpointError(f"{folder}: unknown class {component_class!r} for {name!r} in model_index.json")
        if issubclass(cls, SchedulerMixin):
            components[name] = cls.from_pretrained(folder, subfolder=name)
        else:
            components[name] = cls.from_pretrained(folder, subfolder=name, **model_kwargs)
    extras = {key: given.get(key, index.get(key)) for key in parameters if key not in components}
    extras = {key: value for key, value in extras.items() if value is not None}
    pipeline = pipeline_cls(**components, **extras)
    pipeline.register_to_config(_name_or_path=folder)
    return pipeline
