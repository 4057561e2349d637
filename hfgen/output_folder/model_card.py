"""Model cards of output folders: the Jinja templates in ``model_cards/`` rendered with `huggingface_hub.ModelCard`,
the training command that reproduces a run, library versions. It receives plain values and imports nothing from
`hfgen.training`: the loop (`hfgen.training.trainer`) and `hfgen.vqa.card` gather the facts.

The Hub token is never written to a model card (`SECRET_FIELDS` are dropped from the command and the variables).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import shlex

from hfgen.errors import HfgenError
from hfgen.output_folder.layout import MODEL_CARD, SECRET_FIELDS, drop_secrets


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


def library_versions() -> str:
    """A Markdown list of the versions of hfgen and the libraries it trains with (for model cards)."""
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


def write_model_card(
    output_dir: str,
    template_name: str,
    variables: dict,
    tags: list[str] | tuple[str, ...] = (),
    pipeline_tag: str = "unconditional-image-generation",
    datasets: list[str] | None = None,
) -> str:
    """Render ``template_name`` with ``variables`` and write ``OUTPUT_DIR/README.md``.

    Args:
        output_dir (`str`): the trained folder.
        template_name (`str`): a file in ``model_cards/`` (e.g. ``"ddpm.md"``).
        variables (`dict`): the template's variables (secret fields are dropped).
        tags (`list[str]`): Hub tags besides ``hfgen``. pipeline_tag (`str`): the Hub pipeline tag.
        datasets (`list[str]`, *optional*): Hub dataset ids for the YAML metadata.

    Returns:
        The path of the written ``README.md``.
    """
    card_data = {"library_name": "diffusers", "license": "apache-2.0", "tags": ["hfgen", *tags],
                 "pipeline_tag": pipeline_tag}  # fmt: skip
    if datasets:
        card_data["datasets"] = list(datasets)
    card = render_model_card(template_name, card_data, **drop_secrets(variables))
    path = os.path.join(output_dir, MODEL_CARD)
    card.save(path)
    return path


__all__ = ["library_versions", "model_card_template", "render_model_card", "training_command", "write_model_card"]
