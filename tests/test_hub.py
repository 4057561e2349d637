"""Model cards and Hub upload (`hfgen.output_folder.model_card`, `hfgen.output_folder.hub`), without the network."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import pytest
from helpers import TINY_DDPM, HubRecorder
from huggingface_hub import ModelCard

import hfgen
from hfgen.errors import HfgenError
from hfgen.output_folder.hub import UPLOAD_IGNORE_PATTERNS, push_to_hub
from hfgen.output_folder.model_card import model_card_template, render_model_card, training_command
from hfgen.training.arguments import DataArguments, TrainingArguments, arguments_to_dict
from hfgen.training.objectives.ddpm import DDPMArguments

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "hf_SECRETtoken123"


def tiny(**overrides) -> dict:
    return {**TINY_DDPM, "max_train_steps": 3, "logger": "none", **overrides}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 3-step tiny DDPM run on the default digits, with a checkpoint every step."""
    output_dir = tmp_path_factory.mktemp("hub") / "ddpm-tiny"
    result = hfgen.train("ddpm", output_dir=str(output_dir), **tiny(checkpointing_steps=1))
    assert result.global_step == 3
    return output_dir


# ------------------------------------------------------------------------------------------------ model card


def test_model_card_metadata(trained):
    card = ModelCard.load(trained / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "diffusers"
    assert data["pipeline_tag"] == "unconditional-image-generation"
    assert "ddpm" in data["tags"]
    assert "hfgen" in data["tags"]
    assert "datasets" not in data and "digits" in data["tags"]  # the embedded digits are no Hub dataset id
    assert data["license"] == "apache-2.0"


def test_model_card_body(trained):
    body = ModelCard.load(trained / "README.md").text
    assert "DDPMPipeline.from_pretrained" in body
    assert "DDIMPipeline.from_pretrained" in body
    assert 'from_pretrained("your-username/ddpm-tiny")' in body  # no hub_model_id yet: a placeholder, never a path
    assert str(trained) not in body
    assert "hfgen train ddpm" in body
    assert "{{" not in body and "}}" not in body  # every template variable rendered
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body)
    grids = [path for path in images if path.startswith("samples/")]
    assert grids == ["samples/step-000003.png"]
    assert (trained / grids[0]).is_file()
    assert "loss.png" in images and (trained / "loss.png").is_file()
    # facts of the run, not template defaults
    assert "1437 training images" in body
    assert f"{TINY_DDPM['resolution']}x{TINY_DDPM['resolution']} pixels" in body
    assert f"| diffusion steps *T* | {TINY_DDPM['ddpm_num_steps']}," in body
    assert f"num_inference_steps={TINY_DDPM['ddpm_num_steps']})" in body


def test_model_card_states_the_trained_number_of_steps(trained):
    body = ModelCard.load(trained / "README.md").text
    assert f"{TINY_DDPM['ddpm_num_steps']} ancestral steps" in body
    assert "1000 ancestral steps" not in body


def _parse_with_the_cli(command: str, monkeypatch) -> dict:
    """Parse an `hfgen train ...` command exactly as the command line does, without training."""
    import hfgen.cli
    import hfgen.training.trainer

    captured = {}

    def fake_train(objective, data_args, training_args, model_args):
        captured["args"] = (objective.name, data_args, training_args, model_args)

    monkeypatch.setattr(hfgen.training.trainer, "train", fake_train)
    argv = shlex.split(command)
    assert argv[:2] == ["hfgen", "train"]
    hfgen.cli.main(argv[1:])
    name, data_args, training_args, model_args = captured["args"]
    return {"model": name, **arguments_to_dict(data_args, training_args, model_args)}


def test_model_card_training_command_reproduces_the_run(trained, monkeypatch):
    body = ModelCard.load(trained / "README.md").text
    command = re.search(r"```bash\n(hfgen train [^\n]+)\n```", body).group(1)
    parsed = _parse_with_the_cli(command, monkeypatch)
    recorded = json.loads((trained / "training_args.json").read_text())
    for fact in ("num_processes", "num_train_images", "labels"):  # recorded facts about the run, not flags
        recorded.pop(fact)
    assert parsed.pop("output_dir") == trained.name  # the card names the folder, not where it lay
    assert recorded.pop("output_dir") == str(trained)
    assert parsed == recorded


def test_training_command_with_no_attention_levels_parses(monkeypatch, tmp_path):
    model_args = DDPMArguments(attention_levels=[], block_out_channels=[8, 16], norm_num_groups=4)
    command = training_command("ddpm", DataArguments(), TrainingArguments(output_dir=str(tmp_path)), model_args)
    try:
        parsed = _parse_with_the_cli(command, monkeypatch)
    except SystemExit as exit_:
        pytest.fail(f"{command!r} does not parse (exit code {exit_.code})")
    assert parsed["attention_levels"] == []


def test_training_command_never_contains_the_token():
    command = training_command(
        "ddpm",
        DataArguments(resolution=8),
        TrainingArguments(hub_token=SECRET, push_to_hub=True, hub_model_id="me/tiny", learning_rate=2e-4),
        DDPMArguments(ddpm_num_steps=50),
    )
    assert SECRET not in command
    assert "hub_token" not in command
    argv = shlex.split(command)
    assert argv[:3] == ["hfgen", "train", "ddpm"]
    assert argv[argv.index("--learning_rate") + 1] == "0.0002"
    assert argv[argv.index("--hub_model_id") + 1] == "me/tiny"
    assert "--push_to_hub" in argv
    assert argv[argv.index("--ddpm_num_steps") + 1] == "50"
    assert "--seed" not in argv  # defaults are left out


def test_render_model_card_directly():
    card = render_model_card(
        "ddpm.md",
        {"library_name": "diffusers", "tags": ["ddpm"], "pipeline_tag": "unconditional-image-generation"},
        model_name="my-ddpm",
        repo_id="me/my-ddpm",
        ddpm_num_steps=123,
        training_command="hfgen train ddpm --max_train_steps 7",
    )
    assert card.data.library_name == "diffusers"
    assert card.text.lstrip().startswith("# my-ddpm")
    assert 'DDPMPipeline.from_pretrained("me/my-ddpm")' in card.text
    assert "num_inference_steps=123)" in card.text
    assert "hfgen train ddpm --max_train_steps 7" in card.text
    with pytest.raises(HfgenError, match="nope.md"):
        model_card_template("nope.md")


# ---------------------------------------------------------------------------------------------- token hygiene


def test_hub_token_is_written_nowhere(tmp_path, monkeypatch, capfd):
    hub = HubRecorder()
    hub.install(monkeypatch)
    output_dir = tmp_path / "pushed"
    hfgen.train(
        "ddpm",
        output_dir=str(output_dir),
        hub_token=SECRET,
        push_to_hub=True,
        hub_model_id="someone/ddpm-tiny",
        hub_private_repo=True,
        **tiny(checkpointing_steps=2),
    )
    files = [p for p in output_dir.rglob("*") if p.is_file()]
    assert len(files) >= 8  # pipeline, card, args, plots, checkpoint
    assert any("checkpoints" in p.parts for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"the Hub token is written into {path}"
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err

    # the trainer pushed once, with the token, the repo id, and checkpoints/logs left out
    assert hub.create_calls == [{"repo_id": "someone/ddpm-tiny", "token": SECRET, "private": True, "exist_ok": True}]
    (upload,) = hub.upload_calls
    assert upload["repo_id"] == "someone/ddpm-tiny"
    assert upload["token"] == SECRET
    assert os.path.samefile(upload["folder_path"], output_dir)
    assert "README.md" in hub.uploaded and "model_index.json" in hub.uploaded
    assert not [f for f in hub.uploaded if f.startswith(("checkpoints", "logs"))]
    card = ModelCard.load(output_dir / "README.md")
    assert 'from_pretrained("someone/ddpm-tiny")' in card.text


# ------------------------------------------------------------------------------------------------ push_to_hub


def test_push_to_hub_passes_token_and_ignores_checkpoints_and_logs(trained, monkeypatch):
    logs = trained / "logs" / "hfgen-ddpm"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "events.out.tfevents.1").write_bytes(b"tensorboard")
    (trained / "checkpoints" / ".tmp-checkpoint-9").mkdir(exist_ok=True)
    (trained / "checkpoints" / ".tmp-checkpoint-9" / "model.safetensors").write_bytes(b"half written")
    try:
        hub = HubRecorder()
        hub.install(monkeypatch)
        url = push_to_hub(str(trained), "me/ddpm", token=SECRET)
    finally:
        shutil.rmtree(trained / "logs")
        shutil.rmtree(trained / "checkpoints" / ".tmp-checkpoint-9")
    assert url == "https://huggingface.co/me/ddpm/commit/abc123"
    assert hub.create_calls == [{"repo_id": "me/ddpm", "token": SECRET, "private": False, "exist_ok": True}]
    (upload,) = hub.upload_calls
    assert upload["token"] == SECRET
    assert upload["folder_path"] == str(trained)
    patterns = upload["ignore_patterns"]
    assert patterns == UPLOAD_IGNORE_PATTERNS
    assert any(p.startswith("checkpoints/") for p in patterns)
    assert any(p.startswith("logs/") for p in patterns)
    assert not [f for f in hub.uploaded if f.startswith(("checkpoints", "logs"))]
    for expected in ("README.md", "model_index.json", "training_args.json", "loss.png", "samples/step-000003.png"):
        assert expected in hub.uploaded
    assert "unet/diffusion_pytorch_model.safetensors" in hub.uploaded


@pytest.mark.parametrize("failing", ["upload_folder", "create_repo"])
def test_push_to_hub_error_hides_the_token(tmp_path, monkeypatch, failing):
    (tmp_path / "README.md").write_text("card")
    error = RuntimeError(f"401 Client Error: Invalid credentials in Authorization header 'Bearer {SECRET}'")
    hub = HubRecorder(upload_error=error)
    hub.install(monkeypatch)
    if failing == "create_repo":

        def refuse(repo_id, **kwargs):
            raise error

        monkeypatch.setattr(huggingface_hub, "create_repo", refuse)
    with pytest.raises(HfgenError) as info:
        push_to_hub(str(tmp_path), "me/ddpm", token=SECRET)
    message = str(info.value)
    assert SECRET not in message
    assert "401 Client Error" in message and "***" in message
    assert "me/ddpm" in message
    # the original exception (which holds the token) is not chained into the traceback
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_push_to_hub_without_token_keeps_message(tmp_path, monkeypatch):
    hub = HubRecorder(upload_error=OSError("connection refused"))
    hub.install(monkeypatch)
    with pytest.raises(HfgenError, match="connection refused"):
        push_to_hub(str(tmp_path), "me/ddpm")
    assert hub.upload_calls[0]["token"] is None


# ------------------------------------------------------------------------------------------- installed package


def test_template_renders_from_a_regular_install(tmp_path):
    """`pip install` (not -e) must ship model_cards/*.md as package data; 60 s at most."""
    deadline = time.monotonic() + 60
    source, target = tmp_path / "source", tmp_path / "site"
    # build from a copy so that the build does not write build/ or *.egg-info into the working tree
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "outputs", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", ".ci"
        ),
    )
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target)]
    result = subprocess.run(
        [*pip, "--no-build-isolation", str(source)], capture_output=True, text=True, env=env, timeout=50
    )
    if result.returncode != 0:
        result = subprocess.run([*pip, str(source)], capture_output=True, text=True, env=env, timeout=50)
    assert result.returncode == 0, result.stderr
    assert (target / "hfgen" / "model_cards" / "ddpm.md").is_file()

    script = (
        "import hfgen\n"
        "from hfgen.output_folder import model_card\n"
        "print(hfgen.__file__)\n"
        "text = model_card.model_card_template('ddpm.md')\n"
        "card = model_card.render_model_card('ddpm.md', {'library_name': 'diffusers'}, repo_id='me/x', "
        "model_name='x')\n"
        "print(len(text))\n"
        "print(card.data.library_name, 'DDPMPipeline.from_pretrained(\"me/x\")' in card.text)\n"
    )
    remaining = max(5.0, deadline - time.monotonic())
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(target)},
        timeout=remaining,
    )
    assert result.returncode == 0, result.stderr
    module_file, length, rendered = result.stdout.strip().splitlines()[-3:]
    assert Path(module_file).resolve().is_relative_to(target.resolve())
    assert int(length) == len((REPO_ROOT / "model_cards" / "ddpm.md").read_text(encoding="utf-8"))
    assert rendered == "diffusers True"
    assert time.monotonic() < deadline
