"""Model cards (rendered from the Jinja templates in ``model_cards/`` with `huggingface_hub.ModelCard`) and Hub upload.

The Hub token is passed straight to `huggingface_hub` and is never written to disk, logs or a model card.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import platform
import shlex

from hfgen.errors import HfgenError

UPLOAD_IGNORE_PATTERNS = ["checkpoints/*", "checkpoints/**", "logs/*", "logs/**", "**/.tmp-*", ".hfgen.lock"]


def model_card_template(name: str) -> str:
    """The text of template ``name`` (e.g. ``"ddpm.md"``) from the installed package data `hfgen.model_cards`.

    Raises:
        HfgenError: when no such template is installed.
    """
    try:
        return importlib.resources.files("hfgen.model_cards").joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as err:
        raise HfgenError(f"model card template {name!r} is not installed with hfgen ({err})") from None


def training_command(model_name: str, *arg_instances) -> str:
    """The `hfgen train` command that reproduces a run: every flag whose value differs from its default.

    Secret fields (the Hub token) are never included.
    """
    from hfgen.training.arguments import SECRET_FIELDS

    parts = ["hfgen", "train", model_name]
    for instance in arg_instances:
        if instance is None:
            continue
        for f in dataclasses.fields(instance):
            if f.name in SECRET_FIELDS:
                continue
            value = getattr(instance, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value == default or value is None:
                continue
            if isinstance(value, bool):
                if value:
                    parts.append(f"--{f.name}")
                elif default is True:
                    parts.append(f"--no_{f.name}")
                else:  # a False that differs from a None ("automatic") default
                    parts.extend([f"--{f.name}", "false"])
            elif isinstance(value, (list, tuple)):
                parts.append(f"--{f.name}")
                parts.extend([str(v) for v in value] or ["none"])
            else:
                parts.extend([f"--{f.name}", str(value)])
    return shlex.join(parts)


def _versions() -> str:
    import importlib.metadata as metadata

    lines = []
    for package in ("hfgen", "diffusers", "torch", "accelerate", "transformers", "huggingface_hub"):
        try:
            lines.append(f"- {package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines)


def render_model_card(template_name: str, card_data: dict, **template_kwargs):
    """Render template ``template_name`` into a `huggingface_hub.ModelCard` with YAML metadata ``card_data``.

    Args:
        template_name (`str`): a file in ``model_cards/`` (e.g. ``"ddpm.md"``).
        card_data (`dict`): `ModelCardData` fields (``library_name``, ``tags``, ``datasets``, ``pipeline_tag``...).
        **template_kwargs: variables used by the template.
    """
    from huggingface_hub import ModelCard, ModelCardData

    return ModelCard.from_template(
        ModelCardData(**card_data), template_str=model_card_template(template_name), **template_kwargs
    )


def write_model_card(objective, context, output_dir: str, step: int, train_seconds: float, sample_grid: str | None):
    """Render the family's model card for a finished run and write it to ``OUTPUT_DIR/README.md``.

    Args:
        objective (`Objective`): the family (template, tags, extra variables).
        context (`TrainingContext`): the run's arguments and data facts.
        output_dir (`str`): the trained folder. step (`int`): optimiser steps done.
        train_seconds (`float`): wall-clock training time. sample_grid (`str`): grid path relative to output_dir.

    Returns:
        The path of the written ``README.md``.
    """
    args = context.training_args
    data_args = context.data_args
    repo_id = args.hub_model_id or output_dir
    datasets_meta = []
    if data_args.train_data_dir is None and data_args.dataset_name and not os.path.exists(data_args.dataset_name):
        datasets_meta = [data_args.dataset_name]
    card_data = {
        "library_name": "diffusers",
        "license": "apache-2.0",
        "tags": ["hfgen", *objective.tags],
        "pipeline_tag": objective.pipeline_tag,
    }
    if datasets_meta:
        card_data["datasets"] = datasets_meta
    images_seen = step * args.train_batch_size * args.gradient_accumulation_steps * context.num_processes
    epochs = images_seen / max(1, context.num_train_images)
    final_loss = context.final_loss
    variables = {k: v for k, v in dataclasses.asdict(args).items() if k != "hub_token"}
    if context.model_args is not None:
        variables.update(dataclasses.asdict(context.model_args))
    variables.update(objective.model_card_context(context))
    variables.update(
        model_name=os.path.basename(os.path.normpath(repo_id)),
        repo_id=repo_id,
        dataset_label=context.dataset_label,
        num_train_images=context.num_train_images,
        num_channels=context.num_channels,
        resolution=context.resolution,
        num_parameters_m=f"{context.num_parameters / 1e6:.2f}",
        sample_grid=sample_grid,
        global_step=step,
        epochs=f"{epochs:.0f}",
        train_minutes=f"{train_seconds / 60:.1f}",
        hardware=f"{os.cpu_count()} CPU core(s) ({platform.machine()})",
        final_loss=f"{final_loss:.4f}" if final_loss is not None else "n/a",
        training_command=training_command(objective.name, data_args, args, context.model_args),
        versions=_versions(),
        num_processes=context.num_processes,
        label_source=context.label_source,
        held_out_size=_held_out_size(data_args),
    )
    card = render_model_card(objective.model_card_template, card_data, **variables)
    path = os.path.join(output_dir, "README.md")
    card.save(path)
    return path


def _held_out_size(data_args) -> int:
    from hfgen.data.images import resolve_held_out_size

    if data_args.train_data_dir is None and data_args.dataset_name in (None, "digits"):
        return 360  # the digits' fixed test split
    return resolve_held_out_size(data_args.dataset_name, data_args.train_data_dir, data_args.held_out_size)


def push_to_hub(output_dir: str, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Create ``repo_id`` (if needed) and upload ``output_dir`` without checkpoints and logs.

    Returns:
        The URL of the commit.

    Raises:
        HfgenError: when the Hub cannot be reached or refuses the upload (the token is never shown).
    """
    from huggingface_hub import create_repo, upload_folder

    try:
        create_repo(repo_id, token=token, private=private, exist_ok=True)
        commit = upload_folder(
            repo_id=repo_id,
            folder_path=output_dir,
            token=token,
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
            commit_message="Upload model trained with hfgen",
        )
    except Exception as err:
        message = str(err)
        if token:
            message = message.replace(token, "***")
        raise HfgenError(f"could not push {output_dir} to the Hub repository {repo_id}: {message}") from None
    return str(getattr(commit, "commit_url", commit))
