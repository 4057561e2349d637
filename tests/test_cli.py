"""The `hfgen` command line: the acceptance command and `--help` as a user runs them (`python -m hfgen ...` in a
subprocess), the rest through `hfgen.cli.main` in this process."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import error_line, hfgen_cli, hfgen_subprocess, tiny_ddpm_flags
from PIL import Image

import hfgen
from hfgen.data.images import DIGITS_RESOLUTION
from hfgen.training.objectives.ddpm import DDPMObjective


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The acceptance command: the default UNet at the default resolution (16), 20 steps on digits."""
    output_dir = tmp_path_factory.mktemp("cli") / "ddpm-digits"
    command = "train ddpm --max_train_steps 20 --train_batch_size 16 --output_dir OUTPUT_DIR --logger none".split()
    result = hfgen_subprocess(*[output_dir if arg == "OUTPUT_DIR" else arg for arg in command])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return output_dir


# --------------------------------------------------------------------------------------------- acceptance


def test_trained_folder_loads_with_stock_diffusers_pipelines(trained):
    from diffusers import DDIMPipeline, DDPMPipeline

    ddim = DDIMPipeline.from_pretrained(trained)
    ddim.set_progress_bar_config(disable=True)
    images = ddim(batch_size=2, num_inference_steps=5, output_type="np").images
    assert images.shape == (2, 16, 16, 1)
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0

    ddpm = DDPMPipeline.from_pretrained(trained)
    assert type(ddpm) is DDPMPipeline
    assert ddpm.scheduler.config.num_train_timesteps == 1000  # the DDPM default T
    assert ddpm.unet.config.sample_size == 16 and ddpm.unet.config.in_channels == 1

    loaded = hfgen.load_pipeline(str(trained))
    assert type(loaded) is DDPMPipeline
    torch.testing.assert_close(loaded.unet.conv_in.weight, ddpm.unet.conv_in.weight)


def test_trained_folder_contents(trained):
    for name in ("model_index.json", "README.md", "training_args.json", "loss.png"):
        assert (trained / name).is_file(), name
    assert (trained / "unet" / "config.json").is_file()
    assert (trained / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (trained / "scheduler" / "scheduler_config.json").is_file()
    grids = sorted((trained / "samples").glob("*.png"))
    assert trained / "samples" / "step-000020.png" in grids
    for path in (grids[0], trained / "loss.png"):
        with Image.open(path) as image:
            assert image.format == "PNG"
    assert json.loads((trained / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"


def test_training_args_hold_resolved_values(trained):
    args = json.loads((trained / "training_args.json").read_text())
    assert args["model"] == "ddpm"
    assert args["resolution"] == DIGITS_RESOLUTION == 16
    assert args["block_out_channels"] == [32, 64, 64] and args["attention_levels"] == [1]  # the 16x16 defaults
    assert args["labels"] == "label column" and args["num_train_images"] == 1437
    assert args["learning_rate"] == DDPMObjective.defaults["learning_rate"]
    assert args["max_train_steps"] == 20
    assert args["train_batch_size"] == 16
    assert args["report_to"] == "none" and args["logger"] is None  # --logger is the older alias of --report_to
    assert args["dataset_name"] == "digits"
    assert "hub_token" not in args
    assert not [key for key, value in args.items() if value is None and key in ("resolution", "learning_rate")]


def test_trained_folder_holds_a_checkpoint(trained):
    checkpoints = sorted((trained / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "no checkpoints/checkpoint-N folder"
    assert (checkpoints[-1] / "trainer_state.json").is_file()


def test_sample_command_writes_a_grid_and_reports_speed(trained, tmp_path):
    output = tmp_path / "g.png"
    result = hfgen_cli(
        "sample", trained, "--scheduler", "dpmsolver++", "--num_inference_steps", 10, "--num_images", 16,
        "--output", output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with Image.open(output) as grid:
        assert grid.format == "PNG"
        assert grid.mode == "L"
        assert grid.width == grid.height >= 4 * 16  # a 4x4 grid of 16x16 images
    assert "images per second" in result.stdout
    assert "network evaluations per image: 10" in result.stdout
    assert "DPMSolverMultistepScheduler" in result.stdout
    assert not (trained / "samples" / "DPMSolverMultistepScheduler-10steps.png").exists()


# -------------------------------------------------------------------------------------------- bad input


def test_missing_train_data_dir(tmp_path):
    missing = tmp_path / "nonexistent"
    result = hfgen_cli("train", "ddpm", "--train_data_dir", missing, "--output_dir", tmp_path / "out")
    line = error_line(result)
    assert str(missing) in line
    assert "does not exist" in line
    assert not (tmp_path / "out").exists()


def test_empty_train_data_dir(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = hfgen_cli("train", "ddpm", "--train_data_dir", empty, "--output_dir", tmp_path / "out")
    line = error_line(result)
    assert str(empty) in line
    assert "no image files" in line


def test_unknown_model_name(tmp_path):
    line = error_line(hfgen_cli("train", "dppm", "--output_dir", tmp_path / "out"))
    assert "'dppm'" in line
    assert "ddpm" in line.split("'dppm'", 1)[1]  # the valid names are listed after the bad one


def test_resolution_zero(tmp_path):
    line = error_line(hfgen_cli("train", "ddpm", "--resolution", 0, "--output_dir", tmp_path / "out"))
    assert "--resolution" in line
    assert "0" in line.split("--resolution", 1)[1]
    assert not (tmp_path / "out").exists()


def test_resolution_the_unet_cannot_halve(tmp_path):
    # a UNet with 3 levels halves twice: the resolution must be a multiple of 4, and the error names valid ones
    flags = ["--resolution", 30, "--block_out_channels", 32, 64, 64, "--output_dir", tmp_path / "out"]
    line = error_line(hfgen_cli("train", "ddpm", *flags))
    assert "--resolution 30" in line and "3 levels" in line
    assert "multiples of 4: 8, 12, 16, 20, 24, 28, 32" in line
    assert not (tmp_path / "out").exists()


def test_sample_unknown_scheduler(trained, tmp_path):
    line = error_line(hfgen_cli("sample", trained, "--scheduler", "nope", "--output", tmp_path / "g.png"))
    assert "'nope'" in line
    for valid in ("ddim", "dpmsolver++", "euler", "heun"):
        assert valid in line
    assert not (tmp_path / "g.png").exists()


def test_sample_folder_without_model_index(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing trained here")
    line = error_line(hfgen_cli("sample", folder))
    assert str(folder) in line
    assert "model_index.json" in line


# ---------------------------------------------------------------------------------------------- NaN loss

# lr 1e6 without gradient clipping blows the weights up; the warm-up makes the first step's learning rate 0, so
# checkpoint-1 holds sane weights and the loss turns NaN a couple of steps later.
DIVERGING = {
    "learning_rate": 1e6,
    "max_grad_norm": 0,
    "lr_scheduler": "constant_with_warmup",
    "lr_warmup_steps": 3,
    "checkpointing_steps": 1,
    "checkpoints_total_limit": 20,
    "max_train_steps": 20,
}


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("nan") / "run"
    result = hfgen_cli("train", "ddpm", *tiny_ddpm_flags(**DIVERGING), "--output_dir", output_dir)
    return output_dir, result


def _divergence_facts(output_dir: Path, line: str) -> tuple[int, Path]:
    step = int(re.search(r"diverged at step (\d+)", line).group(1))
    named = re.search(r"(\S+/checkpoints/checkpoint-\d+)", line)
    assert named, f"no checkpoint named in {line!r}"
    return step, Path(named.group(1))


def test_nan_loss_stops_with_a_clear_error(diverged):
    output_dir, result = diverged
    line = error_line(result)
    assert "diverged" in line
    step, checkpoint = _divergence_facts(output_dir, line)
    assert 2 <= step < DIVERGING["max_train_steps"]
    assert checkpoint.parent == output_dir / "checkpoints"
    assert int(checkpoint.name.split("-")[1]) < step
    assert not (output_dir / "model_index.json").exists(), "a diverged run must not save a final pipeline"

    from safetensors import safe_open

    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as weights:
        names = list(weights.keys())
        assert len(names) > 10
        for name in names:
            assert torch.isfinite(weights.get_tensor(name)).all(), name
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == int(checkpoint.name.split("-")[1])


def test_resuming_from_the_named_good_checkpoint_trains_on(diverged, tmp_path):
    output_dir, result = diverged
    step, checkpoint = _divergence_facts(output_dir, error_line(result))
    copy = tmp_path / "run"
    shutil.copytree(output_dir, copy)
    resumed = hfgen_cli(
        "train", "ddpm", *tiny_ddpm_flags(**{**DIVERGING, "learning_rate": 1e-3, "max_train_steps": step + 1}),
        "--output_dir", copy, "--resume_from_checkpoint", copy / "checkpoints" / checkpoint.name,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-500:]
    assert (copy / "model_index.json").is_file()


# ------------------------------------------------------------------------------------------------- help


def test_help():
    result = hfgen_subprocess("--help")
    assert result.returncode == 0, result.stderr
    assert "train MODEL" in result.stdout and "sample OUTPUT_DIR" in result.stdout
    assert "ddpm" in result.stdout

    result = hfgen_cli("train", "ddpm", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--ddpm_beta_schedule", "--use_ema", "--train_data_dir", "--resolution", "--checkpointing_steps"):
        assert flag in result.stdout
    assert "moving average" in result.stdout  # help text from the dataclass field metadata
