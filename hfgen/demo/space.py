"""`hfgen space OUTPUT_DIR --to SPACE_DIR`: a folder that runs `hfgen demo` on a Hugging Face Space (or locally with
``python app.py``): ``app.py``, ``requirements.txt``, a README with the Space metadata (``sdk: gradio``) and the
model folder (or its Hub id)."""

from __future__ import annotations

import os
import shutil

from hfgen.errors import CheckpointError, HfgenError

MODEL_SUBDIR = "model"
# never copied into a Space: resumable state, logs, and the lock of a running training
LEFT_OUT = ("checkpoints", "logs", ".hfgen.lock", "best")

APP = '''"""A Gradio Space for {title}, written by `hfgen space` (hfgen {version}).

Runs on a Hugging Face Space (sdk: gradio) or locally: `pip install -r requirements.txt && python app.py`.
"""

import os

from hfgen.demo.app import launch_demo

MODEL = os.environ.get("HFGEN_MODEL", {model!r})

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    local = os.path.join(here, MODEL)
    launch_demo(
        [local if os.path.isdir(local) else MODEL],
        host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
'''

README = """---
title: {title}
emoji: 🎨
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
{models}tags:
- hfgen
- {family}
---

# {title}

A demo of the {family} model {source}, trained with hfgen. Run it locally with

```bash
pip install -r requirements.txt
python app.py
```

and open http://127.0.0.1:7860.
"""


def _gradio_version() -> str:
    try:
        from importlib.metadata import version

        return version("gradio")
    except Exception:  # noqa: BLE001 - gradio not installed here: the Space installs its own
        return "6.31.0"


def write_space(
    output_dir: str,
    to: str,
    hub_model_id: str | None = None,
    hfgen_requirement: str | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """Write a Space-ready folder for the trained folder ``output_dir``.

    Args:
        output_dir (`str`): a trained hfgen folder (or VQA adapter folder).
        to (`str`): the Space folder to write (created; must be empty or absent unless ``overwrite``).
        hub_model_id (`str`, *optional*): load the model from this Hub repo in the Space instead of copying the
            weights into ``to/model``.
        hfgen_requirement (`str`, *optional*): the requirement line that installs hfgen in the Space (default
            ``hfgen[demo]==<this version>``; a ``git+https://...`` URL works too).
        overwrite (`bool`): replace an existing non-empty ``to``.

    Returns:
        dict file role -> path (``app``, ``requirements``, ``readme``, and ``model`` when copied).

    Raises:
        CheckpointError: ``output_dir`` is not a trained folder.
        HfgenError: ``to`` exists and is not empty (without ``overwrite``), or lies inside ``output_dir``.
    """
    from hfgen import __version__

    has_index = os.path.isfile(os.path.join(output_dir, "model_index.json"))
    is_adapter = os.path.isfile(os.path.join(output_dir, "adapter_config.json"))
    if not (has_index or is_adapter):
        raise CheckpointError(
            f"{output_dir} is not a trained hfgen folder (no model_index.json or adapter_config.json); train it "
            "first with hfgen train or hfgen vqa finetune"
        )
    source, target = os.path.abspath(output_dir), os.path.abspath(to)
    if target == source or target.startswith(source + os.sep):
        raise HfgenError(f"--to {to} lies inside {output_dir}; write the Space folder somewhere else")
    if os.path.isdir(to) and os.listdir(to):
        if not overwrite:
            raise HfgenError(f"{to} exists and is not empty; pass --overwrite to replace it or choose another --to")
        shutil.rmtree(to)
    os.makedirs(to, exist_ok=True)
    family = _family(output_dir, is_adapter)
    title = f"hfgen {family}: {os.path.basename(os.path.normpath(output_dir))}"
    paths = {}
    if hub_model_id is None:
        paths["model"] = os.path.join(to, MODEL_SUBDIR)
        shutil.copytree(output_dir, paths["model"], ignore=shutil.ignore_patterns(*LEFT_OUT))
    model = hub_model_id or MODEL_SUBDIR
    paths["app"] = _write(os.path.join(to, "app.py"), APP.format(title=title, version=__version__, model=model))
    requirement = hfgen_requirement or f"hfgen[demo]=={__version__}"
    paths["requirements"] = _write(os.path.join(to, "requirements.txt"), f"torch\n{requirement}\n")
    models = f"models:\n- {hub_model_id}\n" if hub_model_id else ""
    where = f"[{hub_model_id}](https://huggingface.co/{hub_model_id})" if hub_model_id else "in `model/`"
    paths["readme"] = _write(
        os.path.join(to, "README.md"),
        README.format(title=title, gradio_version=_gradio_version(), models=models, family=family, source=where),
    )
    return paths


def _family(output_dir: str, is_adapter: bool) -> str:
    if is_adapter:
        return "vqa"
    from hfgen.output_folder.layout import read_training_args

    args = read_training_args(output_dir) or {}
    return str(args.get("model") or args.get("model_type") or "model")


def _write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
