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
from hfgen.output_folder.layout import (
    MODEL_CARD,
    MODEL_INDEX,
    SECRET_FIELDS,
    drop_secrets,
    looks_like_local_path,
    read_json_object,
)


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

    Secret fields (the Hub token) are never included; ``--output_dir`` is the folder's name, not its local path.
    """
    parts = ["hfgen", "train", model_name]
    for instance in arg_instances:
        if instance is None:
            continue
        for f in dataclasses.fields(instance):
            if f.name in SECRET_FIELDS:
                continue
            value = getattr(instance, f.name)
            if f.name == "output_dir" and value:  # the folder's name, not where it lies on the training machine
                value = os.path.basename(os.path.normpath(str(value)))
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


CONDITIONING = {
    "ddpm": "The denoiser `UNet2DModel` has `num_class_embeds = C + 1` class embeddings added to its timestep "
    'embedding; the last one means "no label" and was trained by replacing {dropout:.0%} of the labels '
    "(`--conditioning_dropout_prob`), so that sampling can use classifier-free guidance (Ho & Salimans 2022): "
    "eps = eps_uncond + w (eps_cond - eps_uncond), w = `guidance_scale` (1: no guidance; larger: closer to the class, "
    "less diverse). The folder holds an hfgen `ClassConditionalDiffusionPipeline`, which takes every diffusers "
    "scheduler.",
    "ncsn": "The score network `UNet2DModel` has `num_class_embeds = C + 1` class embeddings; the last one means "
    '"no label" and was trained by replacing {dropout:.0%} of the labels, so that annealed Langevin dynamics can '
    "follow the guided score s_uncond + w (s_cond - s_uncond), w = `guidance_scale`.",
    "vae": "A conditional VAE (Sohn et al. 2015): the one-hot label enters the encoder, q(z|x, y), and the decoder, "
    "p(x|z, y); the prior stays N(0, I), so a class and a z ~ N(0, I) make an image.",
    "gan": "The generator takes a learned embedding of the label next to z; the critic is a projection critic "
    "(Miyato & Koyama 2018), D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, chosen over an auxiliary classifier "
    "(Odena et al. 2017) because its score stays one number per image (WGAN-GP's gradient penalty stays per sample) "
    "and it does not reward the generator for the easiest-to-classify images.",
}


def conditional_section(family: str, repo_id: str, id2label: dict, label_source: str | None, dropout: float) -> str:
    """The "Class-conditional" section of a ``--class_conditional`` model's card: how it is conditioned, its
    classes and how to ask for one (Python and command line).

    Args:
        family (`str`): ``"ddpm"``, ``"ncsn"``, ``"vae"`` or ``"gan"``.
        repo_id (`str`): the Hub id (or folder) to load from.
        id2label (`dict`): class index -> name.
        label_source (`str`, *optional*): where the labels came from.
        dropout (`float`): ``--conditioning_dropout_prob`` (diffusion only).
    """
    classes = ", ".join(f"`{i}` ({name})" if name != str(i) else f"`{i}`" for i, name in sorted(id2label.items()))
    example = sorted(id2label)[min(3, len(id2label) - 1)]
    guided = family in ("ddpm", "ncsn")
    call = f"class_labels=[{example}] * 8" + (", guidance_scale=2.0" if guided else "")
    flags = f"--class_labels {example} --num_images 8" + (" --guidance_scale 2" if guided else "")
    source = f" `{label_source}`" if label_source else ""
    named = f" ({id2label[example]})" if id2label[example] != str(example) else ""
    return "\n".join(
        [
            "## Class-conditional",
            "",
            f"This model is **class-conditional**: trained on the labels{source}, {len(id2label)} classes: {classes} "
            "(stored as `id2label` in `model_index.json`). " + CONDITIONING[family].format(dropout=dropout),
            "",
            "```python",
            "import hfgen",
            "",
            f'pipeline = hfgen.load_pipeline("{repo_id}")',
            f"images = pipeline({call}).images  # eight images of class {example}{named}",
            "```",
            "",
            f"or `hfgen sample {repo_id} {flags}`; without `class_labels` every class comes in turn.",
            "",
        ]
    )


HUB_ID_PLACEHOLDER = "your-username/{name}"
LOCAL_DATASETS = ("digits",)  # hfgen's embedded data: a tag on the Hub, never a `datasets:` id

PORTABLE_SNIPPET = """Without hfgen installed, stock diffusers loads the same repository with the pipeline and model
code it carries (`{pipeline_file}.py` and one file per component, written by `save_pretrained`):

```python
from diffusers import DiffusionPipeline

pipeline = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True)
```
"""


def hub_id_placeholder(output_dir: str) -> str:
    """The Hub id a card shows before the folder has one: ``your-username/<folder name>`` (`hfgen push` fills in the
    real one); never a local path."""
    return HUB_ID_PLACEHOLDER.format(name=os.path.basename(os.path.normpath(output_dir)) or "model")


def hub_dataset_ids(datasets) -> tuple[list[str], list[str]]:
    """Split data set names into Hub dataset ids (for ``datasets:``) and the rest (for tags): hfgen's embedded digits
    and local paths are not Hub datasets. Returns ``(ids, tags)``."""
    ids, tags = [], []
    for name in datasets or ():
        local = name in LOCAL_DATASETS or os.path.exists(name) or looks_like_local_path(name)
        (tags if local else ids).append(os.path.basename(os.path.normpath(name)) if local else name)
    return ids, tags


def portable_snippet(output_dir: str, repo_id: str) -> str | None:
    """The "without hfgen" loading snippet for a folder whose ``model_index.json`` names hfgen's written pipeline
    source (`hfgen.pipelines.portable`); None for a stock diffusers pipeline (its own snippet says it all)."""
    try:
        class_name = read_json_object(os.path.join(output_dir, MODEL_INDEX)).get("_class_name")
    except (OSError, ValueError):
        return None
    if not isinstance(class_name, list):
        return None
    return PORTABLE_SNIPPET.format(pipeline_file=class_name[0], repo_id=repo_id)


def sample_widget(output_dir: str, sample_grid: str | None) -> list[dict]:
    """The card's ``widget`` metadata (shown by the Hub's ``<Gallery />``): the final sample grid and the figures of
    ``figures/``, each as ``{"text": caption, "output": {"url": relative path}}``."""
    entries = []
    if sample_grid and os.path.isfile(os.path.join(output_dir, sample_grid)):
        entries.append({"text": "Samples at the end of training", "output": {"url": sample_grid}})
    figures = os.path.join(output_dir, "figures")
    if os.path.isdir(figures):
        for name in sorted(os.listdir(figures))[:6]:
            if name.endswith(".png"):
                caption = os.path.splitext(name)[0].replace("_", " ")
                entries.append({"text": caption, "output": {"url": f"figures/{name}"}})
    return entries


def add_gallery(content: str) -> str:
    """``content`` with a ``<Gallery />`` line under its first heading (once)."""
    if "<Gallery />" in content:
        return content
    lines = content.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("# "):
            return "\n".join(lines[: index + 1] + ["", "<Gallery />"] + lines[index + 1 :])
    return "<Gallery />\n\n" + content


def hub_ready_card(output_dir: str, repo_id: str) -> str:
    """Make ``OUTPUT_DIR/README.md`` the card of Hub repo ``repo_id``: every local path and placeholder id in it
    becomes ``repo_id``, the latest sample grid and figures go into ``widget`` with a ``<Gallery />``, and data set
    names that are not Hub ids move from ``datasets:`` to the tags. Written atomically.

    Returns:
        The path of the card.

    Raises:
        HfgenError: the folder has no ``README.md`` (train or finetune it with hfgen first).
    """
    from huggingface_hub import ModelCard

    from hfgen.output_folder.layout import read_training_args

    path = os.path.join(output_dir, MODEL_CARD)
    if not os.path.isfile(path):
        raise HfgenError(f"{output_dir} has no {MODEL_CARD}; push a folder trained with hfgen")
    card = ModelCard.load(path)
    text = str(card.content)
    args = read_training_args(output_dir) or {}
    olds = {hub_id_placeholder(output_dir), os.path.abspath(output_dir), output_dir}
    if args.get("output_dir"):
        olds.update({str(args["output_dir"]), os.path.abspath(str(args["output_dir"]))})
    for old in sorted(olds - {repo_id}, key=len, reverse=True):  # longest first: a path contains its basename
        if old == hub_id_placeholder(output_dir) or os.path.isabs(old):  # unambiguous: replaced wherever it is
            text = text.replace(old, repo_id)
            continue
        for left, right in (('"', '"'), ("`", "`"), (" ", "`"), ("`", " "), ("# ", "\n")):  # a relative path
            text = text.replace(f"{left}{old}{right}", f"{left}{repo_id}{right}")
    samples = os.path.join(output_dir, "samples")
    grids = sorted(name for name in os.listdir(samples) if name.endswith(".png")) if os.path.isdir(samples) else []
    widget = sample_widget(output_dir, f"samples/{grids[-1]}" if grids else None)
    card.content = add_gallery(text) if widget else text  # the YAML is parsed again from the content here
    if widget:
        card.data.widget = widget
    ids, tags = hub_dataset_ids(card.data.datasets)
    card.data.datasets = ids or None
    card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *tags]))
    card.data.model_name = repo_id
    tmp = path + ".tmp"
    card.save(tmp)
    os.replace(tmp, path)
    return path


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
        datasets (`list[str]`, *optional*): data set names; Hub ids go to ``datasets:``, the embedded digits and
            local paths become tags (`hub_dataset_ids`). A ``widget`` with the sample grid and ``<Gallery />`` are
            added when ``variables["sample_grid"]`` exists.

    Returns:
        The path of the written ``README.md``.
    """
    ids, data_tags = hub_dataset_ids(datasets)
    card_data = {"library_name": "diffusers", "license": "apache-2.0", "tags": ["hfgen", *tags, *data_tags],
                 "pipeline_tag": pipeline_tag}  # fmt: skip
    if ids:
        card_data["datasets"] = ids
    variables = dict(variables)
    repo_id = variables.get("repo_id") or hub_id_placeholder(output_dir)
    variables.setdefault("portable_snippet", portable_snippet(output_dir, repo_id))
    widget = sample_widget(output_dir, variables.get("sample_grid"))
    if widget:
        card_data["widget"] = widget
    card = render_model_card(template_name, card_data, **drop_secrets(variables))
    if widget:
        card.content = add_gallery(str(card.content))
    path = os.path.join(output_dir, MODEL_CARD)
    card.save(path)
    return path


__all__ = [
    "add_gallery",
    "conditional_section",
    "hub_dataset_ids",
    "hub_id_placeholder",
    "hub_ready_card",
    "portable_snippet",
    "sample_widget",
    "library_versions",
    "model_card_template",
    "render_model_card",
    "training_command",
    "write_model_card",
]
