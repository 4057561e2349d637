"""Closing the Hub loop (issue 19): cards that name the Hub id (never a local path) and show both ways to load,
`<Gallery />` with `widget` metadata, evaluations with their split and likelihood in the model-index, `hfgen push`,
`hfgen evaluate --push_to_hub`, and experiment trackers that log images (`--report_to`)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
from helpers import HubRecorder
from huggingface_hub import ModelCard

import hfgen
from hfgen.errors import HfgenError
from hfgen.output_folder.hub import push_folder
from hfgen.output_folder.model_card import hub_dataset_ids

VAE = {
    "block_out_channels": [8, 16],
    "train_batch_size": 32,
    "report_to": "none",
    "learning_rate": 3e-3,
    "lr_warmup_steps": 0,
    "save_images_steps": 10_000,
    "checkpointing_steps": 10_000,
    "max_train_steps": 20,
    "latent_dim": 4,
    "seed": 0,
}


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("loop") / "vae-digits"
    hfgen.train("vae", output_dir=str(output_dir), **VAE)
    return output_dir


def test_card_names_a_hub_id_and_both_ways_to_load(vae_dir):
    card = ModelCard.load(vae_dir / "README.md")
    body = card.text
    assert str(vae_dir) not in body and str(vae_dir.parent) not in body  # never a local path
    assert 'VAEPipeline.from_pretrained("your-username/vae-digits")' in body
    assert 'DiffusionPipeline.from_pretrained("your-username/vae-digits", trust_remote_code=True)' in body
    assert "hfgen_pipeline_vae.py" in body
    data = card.data.to_dict()
    assert "datasets" not in data and "digits" in data["tags"]  # the embedded digits are no Hub dataset
    assert data["widget"][0]["output"]["url"] == "samples/step-000020.png"
    assert (vae_dir / data["widget"][0]["output"]["url"]).is_file()
    assert "<Gallery />" in body


def test_evaluation_reaches_the_model_index_with_split_and_likelihood(vae_dir):
    from hfgen.jobs.evaluate import evaluate_pipeline

    evaluate_pipeline(str(vae_dir), num_images=100, batch_size=100)
    card = ModelCard.load(vae_dir / "README.md")
    results = {r.metric_type: r for r in card.data.eval_results}
    assert set(results) >= {"fid", "kid_mean", "cmmd", "coverage", "negative_elbo", "bits_per_dim"}
    assert all(r.dataset_split == "test" for r in card.data.eval_results)  # the digits' fixed test split
    assert "not x1000" in results["kid_mean"].metric_name
    row = next(line for line in card.text.splitlines() if "| 100 |" in line)
    bits = results["bits_per_dim"].metric_value
    assert f"| {bits:.3f} |" in row  # the likelihood column of the table
    assert "<Gallery />" in card.text and card.data.widget  # evaluation keeps the gallery


def test_push_makes_the_card_hub_ready_and_leaves_checkpoints_out(vae_dir, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "vae-digits"
    shutil.copytree(vae_dir, folder)
    recorder = HubRecorder()
    recorder.install(monkeypatch)
    url = push_folder(str(folder), "someone/vae-digits", token="hf_secret_never_written")
    assert url.endswith("/commit/abc123")
    body = (folder / "README.md").read_text()
    assert 'from_pretrained("someone/vae-digits")' in body and "your-username" not in body
    assert 'DiffusionPipeline.from_pretrained("someone/vae-digits", trust_remote_code=True)' in body
    assert "hf_secret_never_written" not in body
    uploaded = recorder.uploaded
    assert "README.md" in uploaded and "hfgen_pipeline_vae.py" in uploaded and "vae/hfgen_vae.py" in uploaded
    assert not any(path.startswith(("checkpoints/", "logs/")) for path in uploaded)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["push", "{folder}", "--hub_model_id", "no-namespace"], "is not a Hub repo id; use namespace/name"),
        (["push", "{tmp}", "--hub_model_id", "a/b"], "holds no trained model"),
        (["evaluate", "{folder}", "--push_to_hub"], "--push_to_hub needs --hub_model_id"),
    ],
)
def test_push_commands_refuse_in_one_line(vae_dir, tmp_path, argv, message):
    argv = [a.format(folder=vae_dir, tmp=tmp_path) for a in argv]
    done = subprocess.run([sys.executable, "-m", "hfgen", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hfgen: error:") and message in lines[0], done.stderr


def test_dataset_names_split_into_hub_ids_and_tags(tmp_path):
    assert hub_dataset_ids(["digits", "ylecun/mnist", str(tmp_path), "./data/x"]) == (
        ["ylecun/mnist"],
        ["digits", tmp_path.name, "x"],
    )


def test_report_to_is_checked_when_parsed():
    from hfgen.training.arguments import TrainingArguments

    with pytest.raises(ValueError, match="--report_to must be one of tensorboard, wandb, trackio, all, none"):
        TrainingArguments(output_dir="x", report_to="mlflow")
    with pytest.raises(ValueError, match="--logger is an alias of --report_to"):
        TrainingArguments(output_dir="x", report_to="none", logger="tensorboard")
    assert TrainingArguments(output_dir="x", logger="none").report_to == "none"


def test_tensorboard_gets_the_sample_grid_and_curves_as_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    flags = {**VAE, "report_to": "tensorboard", "save_images_steps": 10, "max_train_steps": 20}
    hfgen.train("vae", output_dir=str(out), **flags)
    events = EventAccumulator(str(out / "logs"), size_guidance={"images": 0})
    for path in glob.glob(str(out / "logs" / "**" / "events.out.tfevents.*"), recursive=True):
        events = EventAccumulator(os.path.dirname(path), size_guidance={"images": 0}).Reload()
        if events.Tags()["images"]:
            break
    assert {"samples", "loss_curve"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Images("samples")] == [10, 20]


def test_wandb_offline_writes_the_run_with_the_sample_grid(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install wandb for the wandb tracker test")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "wb"
    hfgen.train("vae", output_dir=str(out), **{**VAE, "report_to": "wandb", "save_images_steps": 10})
    runs = glob.glob(str(out / "logs" / "wandb" / "offline-run-*"))
    assert len(runs) == 1, os.listdir(out / "logs")
    images = glob.glob(os.path.join(runs[0], "files", "media", "images", "samples_*.png"))
    assert len(images) == 2  # steps 10 and 20
    assert glob.glob(os.path.join(runs[0], "files", "media", "images", "loss_curve_*.png"))
    assert glob.glob(os.path.join(runs[0], "run-*.wandb"))


def test_push_refuses_a_folder_without_a_card(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(HfgenError, match="has no README.md"):
        push_folder(str(tmp_path), "a/b")
