"""Reliability (issue 16): bad values refused when parsed, figures that fail never lose a trained model, flags derived
from other flags clamped before training, `pathlib.Path` accepted by the Python API."""

import json
import math
import os

import pytest
from helpers import TINY_DDPM, error_line, hfgen_cli, tiny_ddpm_flags

import hfgen
from hfgen.training.arguments import TrainingArguments
from hfgen.training.objectives.ddpm import DDPMArguments


@pytest.mark.parametrize(
    "flags, named",
    [
        ({"adam_beta1": 1.5}, "--adam_beta1"),
        ({"adam_beta2": -0.1}, "--adam_beta2"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**32}, "--seed"),
        ({"lr_warmup_steps": -10}, "--lr_warmup_steps"),
        ({"max_grad_norm": math.nan}, "--max_grad_norm"),
        ({"learning_rate": math.inf}, "--learning_rate"),
        ({"adam_epsilon": 0.0}, "--adam_epsilon"),
        ({"ema_max_decay": 1.5}, "--ema_max_decay"),
        ({"logging_steps": 0}, "--logging_steps"),
        ({"eval_reference": "/no/such/folder"}, "--eval_reference"),
    ],
)
def test_out_of_range_training_flags_are_refused_when_parsed(flags, named):
    with pytest.raises(ValueError, match=named):
        TrainingArguments(**flags)


def test_out_of_range_flags_are_one_line_before_any_file_is_written(tmp_path):
    out = tmp_path / "run"
    line = error_line(hfgen_cli("train", "ddpm", *tiny_ddpm_flags(), "--adam_beta1", "1.5", "--output_dir", out))
    assert "--adam_beta1 must be in [0, 1), got 1.5" in line
    assert not out.exists()
    line = error_line(hfgen_cli("train", "ddpm", *tiny_ddpm_flags(), "--seed", "-1", "--output_dir", out))
    assert "--seed" in line and "-1" in line and not out.exists()


def test_grid_steps_beyond_a_short_schedule_are_clamped_and_the_model_is_sampled(tmp_path):
    assert DDPMArguments(ddpm_num_steps=20).sample_num_inference_steps == 20  # default 50 > 20 trained steps
    assert DDPMArguments(ddpm_num_steps=1000, sample_num_inference_steps=30).sample_num_inference_steps == 30
    with pytest.raises(ValueError, match="--sample_num_inference_steps"):
        DDPMArguments(sample_num_inference_steps=0)
    flags = {**TINY_DDPM, "ddpm_num_steps": 20, "sample_num_inference_steps": 50}
    out = tmp_path / "short"
    hfgen.train("ddpm", output_dir=out, max_train_steps=3, **flags)  # a pathlib.Path, as users pass it
    assert (out / "model_index.json").exists() and (out / "samples" / "step-000003.png").exists()
    saved = json.loads((out / "training_args.json").read_text())
    assert saved["output_dir"] == str(out) and saved["sample_num_inference_steps"] == 20
    from hfgen.jobs.compare_samplers import compare_samplers

    rows = compare_samplers(str(out), num_images=70)  # the default 100- and 50-step DDIM rows are left out
    assert rows[0]["scheduler"] == "ddpm" and rows[0]["nfe"] == 20
    assert [(row["scheduler"], row["num_inference_steps"]) for row in rows] == [
        ("ddpm", 20), ("ddim", 10), ("dpmsolver++", 10)]  # fmt: skip
    assert "more steps than the 20" in error_line(hfgen_cli("compare-samplers", out, "--schedulers", "ddim:50"))


def test_a_figure_that_fails_does_not_lose_the_trained_model(tmp_path, monkeypatch, capsys):
    import hfgen.plotting

    def broken(*args, **kwargs):
        raise RuntimeError("matplotlib fell over")

    monkeypatch.setattr(hfgen.plotting, "plot_loss_curves", broken)
    monkeypatch.setattr(hfgen.plotting, "save_image_grid", broken)
    out = tmp_path / "run"
    result = hfgen.train("ddpm", output_dir=str(out), max_train_steps=4, **TINY_DDPM)
    assert result.global_step == 4
    pipeline = hfgen.load_pipeline(str(out))  # saved and loadable although every figure failed
    assert pipeline.unet.config.sample_size == 8
    assert (out / "README.md").exists() and not (out / "loss.png").exists()
    err = capsys.readouterr().err
    assert "hfgen: warning: could not draw loss.png (RuntimeError: matplotlib fell over)" in err
    assert "could not draw the final sample grid" in err or "could not draw the sample grid at step 4" in err


def test_a_second_run_on_a_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".hfgen.lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        line = error_line(
            hfgen_cli("train", "ddpm", *tiny_ddpm_flags(), "--max_train_steps", "2", "--output_dir", out)
        )
        assert f"in use by another hfgen run (PID {holder.pid})" in line
        assert sorted(p.name for p in out.iterdir()) == [".hfgen.lock"]  # nothing of the refused run written
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the next run takes it over, then releases it
    result = hfgen_cli("train", "ddpm", *tiny_ddpm_flags(), "--max_train_steps", "2", "--output_dir", out)
    assert result.returncode == 0, result.stderr
    assert f"taking over the stale lock of {out} (PID {holder.pid} is not running)" in result.stderr
    assert (out / "model_index.json").exists() and not (out / ".hfgen.lock").exists()


def test_the_python_api_raises_hfgen_errors_with_the_command_line_messages():
    from hfgen.errors import ConfigurationError, UnknownArgumentError

    with pytest.raises(UnknownArgumentError, match="did you mean 'learning_rate'"):
        hfgen.train("ddpm", learning_rat=1e-3)
    with pytest.raises(TypeError):  # still a TypeError for code that catches one
        hfgen.train("ddpm", learning_rat=1e-3)
    with pytest.raises(ConfigurationError, match=r"--adam_beta1 must be in \[0, 1\), got 1.5"):
        hfgen.train("ddpm", adam_beta1=1.5)


def test_operating_system_errors_are_one_line_naming_the_path(tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    line = error_line(hfgen_cli("train", "ddpm", *tiny_ddpm_flags(), "--output_dir", a_file))
    assert str(a_file) in line and "is a file" in line
    line = error_line(hfgen_cli("train", "ddpm", *tiny_ddpm_flags(), "--output_dir", a_file / "run"))
    assert str(a_file / "run") in line and "Not a directory" in line and "check the path" in line
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):  # root ignores permissions: nothing to test here
            pytest.skip("running as root: a read-only folder is writable")
        result = hfgen_cli(
            "train", "ddpm", *tiny_ddpm_flags(), "--max_train_steps", "2", "--output_dir", read_only / "run"
        )
        line = error_line(result)
        assert str(read_only / "run") in line and "Permission denied" in line
    finally:
        read_only.chmod(0o700)


def test_resuming_an_older_checkpoint_sets_the_later_ones_aside(tmp_path, capsys):
    from hfgen.output_folder.layout import list_checkpoints

    out = tmp_path / "run"
    flags = {**TINY_DDPM, "checkpointing_steps": 10, "checkpoints_total_limit": 5}
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=30, **flags)
    assert [p.rsplit("-", 1)[1] for p in list_checkpoints(str(out))] == ["10", "20", "30"]
    older = out / "checkpoints" / "checkpoint-10"
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=20, resume_from_checkpoint=str(older), **flags)
    assert [p.rsplit("-", 1)[1] for p in list_checkpoints(str(out))] == ["10", "20"]  # `latest` is this branch's
    assert (out / "checkpoints" / "abandoned-checkpoint-30").is_dir()  # kept, never picked
    assert "abandons" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_vae(tmp_path_factory):
    """A VAE trained 5 steps at 8x8: enough to load and sample."""
    out = tmp_path_factory.mktemp("vae") / "vae"
    hfgen.train("vae", output_dir=out, max_train_steps=5, resolution=8, latent_dim=2, block_out_channels=[8, 16],
                train_batch_size=16, logger="none", save_images_steps=10_000, checkpointing_steps=10_000)  # fmt: skip
    return out


def test_silently_wrong_sampling_values_are_one_line(small_vae):
    # temperature NaN used to decode a black grid
    line = error_line(hfgen_cli("sample", small_vae, "--pipeline_kwargs", '{"temperature": NaN}'))
    assert "temperature must be finite" in line and "nan" in line
    # a one-shot generator used to report "10 steps" while making one network evaluation
    line = error_line(hfgen_cli("sample", small_vae, "--num_inference_steps", "10"))
    assert "one network evaluation" in line and "--num_inference_steps 10" in line
    assert not (small_vae / "samples" / "VAEPipeline-10steps.png").exists()
    # malformed JSON for --pipeline_kwargs, and a sampler comparison of a model without a diffusion scheduler
    line = error_line(hfgen_cli("sample", small_vae, "--pipeline_kwargs", "{temperature: 0.5"))
    assert "--pipeline_kwargs" in line and "not valid JSON" in line
    line = error_line(hfgen_cli("compare-samplers", small_vae))
    assert f"{small_vae} is not a diffusion model" in line
    assert not (small_vae / "sampler_comparison.md").exists()
    # unbounded work: refused with the estimate before any sampling
    line = error_line(hfgen_cli("sample", small_vae, "--num_images", str(10**12)))
    assert "1,000,000,000,000 images of 1x8x8" in line and "GiB" in line and "lower --num_images" in line


def test_a_read_only_model_folder_loses_no_metrics(small_vae, monkeypatch, capsys):
    import hfgen.jobs.evaluate as evaluate

    def refuse(*_):
        raise OSError(30, "Read-only file system", str(small_vae / "metrics.json"))

    monkeypatch.setattr(evaluate, "write_metrics", refuse)
    metrics = evaluate.evaluate_pipeline(str(small_vae), num_images=66, batch_size=66)
    warning = capsys.readouterr().err
    assert "could not write the metrics into" in warning and "Read-only file system" in warning
    saved = warning.rsplit("saved to ", 1)[1].strip()
    assert json.loads(open(saved).read())["fid"] == pytest.approx(metrics["fid"])
    assert not (small_vae / "metrics.json").exists()


def test_a_corrupt_scheduler_config_names_the_file_not_the_hub(tmp_path):
    out = tmp_path / "ddpm"
    hfgen.train("ddpm", output_dir=out, max_train_steps=2, **TINY_DDPM)
    config = out / "scheduler" / "scheduler_config.json"
    config.write_text("{ not json")
    line = error_line(hfgen_cli("sample", out, "--num_images", "2"))
    assert str(config) in line and "corrupt" in line and "huggingface.co" not in line


def test_resuming_with_another_seed_warns(tmp_path):
    out = tmp_path / "run"
    flags = [*tiny_ddpm_flags(checkpointing_steps=2), "--output_dir", out]
    assert hfgen_cli("train", "ddpm", *flags, "--max_train_steps", "2").returncode == 0
    result = hfgen_cli("train", "ddpm", *flags, "--max_train_steps", "4", "--seed", "7",
                       "--resume_from_checkpoint", "latest")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "was trained with --seed 0, this run uses --seed 7" in result.stderr and "--seed 0 for an exact" in (
        result.stderr
    )


def test_a_training_step_that_cannot_fit_in_memory_is_refused_with_the_estimate(tmp_path):
    import numpy as np
    import torch

    from hfgen.training.memory import estimate_step_bytes

    np.save(tmp_path / "tiny.npy", np.random.default_rng(0).integers(0, 255, (8, 8, 8), dtype=np.uint8))
    out = tmp_path / "huge"
    line = error_line(hfgen_cli("train", "ddpm", "--train_data_dir", tmp_path / "tiny.npy", "--resolution", "1024",
                                "--train_batch_size", "4", "--max_train_steps", "1", "--output_dir", out))  # fmt: skip
    assert "one training step at --resolution 1024 with --train_batch_size" in line and "GiB" in line
    assert "lower --resolution or --train_batch_size" in line and not out.exists()
    # the estimate grows with the batch and the image area, and the probe leaves torch as it was
    from hfgen.training.arguments import parse_train_kwargs, resolve_defaults
    from hfgen.training.objectives import get_objective
    from hfgen.training.objectives.base import TrainingContext

    sizes = {}
    for resolution, batch in ((16, 8), (16, 16), (32, 8)):
        objective = get_objective("vae")
        data, training, model = parse_train_kwargs(objective, {"resolution": resolution, "latent_dim": 2})
        resolve_defaults(objective, data, training, model)
        context = TrainingContext(data, training, model, num_channels=1, resolution=resolution, num_train_images=9,
                                  dataset_label="t")  # fmt: skip
        models = objective.build_models(context)
        sizes[resolution, batch] = estimate_step_bytes(objective, models, batch, 1, resolution, context)
    assert sizes[16, 8] < sizes[16, 16] < 2.2 * sizes[16, 8]
    assert sizes[32, 8] > 2 * sizes[16, 8]
    assert "item" not in torch.Tensor.__dict__ and torch.tensor(3.0).item() == 3.0


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_loadable(tmp_path, monkeypatch):
    import os

    import accelerate

    from hfgen.errors import CheckpointError
    from hfgen.output_folder.layout import list_checkpoints

    original = accelerate.Accelerator.save_state
    calls = []

    def full_disk(self, output_dir=None, *args, **kwargs):
        calls.append(output_dir)
        if len(calls) == 2:  # the second checkpoint: half a file, then torch's disk-full error
            os.makedirs(output_dir, exist_ok=True)
            with open(os.path.join(output_dir, "optimizer.bin"), "wb") as handle:
                handle.write(b"\0" * 10)
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1536 vs 1454")
        return original(self, output_dir, *args, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "save_state", full_disk)
    out = tmp_path / "run"
    flags = {**TINY_DDPM, "checkpointing_steps": 2}
    with pytest.raises(CheckpointError, match="most likely a full disk") as info:
        hfgen.train("ddpm", output_dir=out, max_train_steps=4, **flags)
    assert "checkpoint-4" in str(info.value) and "checkpoint-2 stays loadable" in str(info.value)
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-2"]
    assert not [name for name in os.listdir(out / "checkpoints") if name.startswith(".tmp")]
    assert not (out / ".hfgen.lock").exists()
    monkeypatch.undo()  # space freed: the run resumes from the last complete checkpoint
    result = hfgen.train("ddpm", output_dir=out, max_train_steps=4, resume_from_checkpoint="latest", **flags)
    assert result.global_step == 4 and (out / "model_index.json").exists()


def test_garbage_files_are_one_line_naming_the_file(tmp_path):
    garbage = tmp_path / "config.json"
    garbage.write_text("garbage{")
    out = tmp_path / "out"
    line = error_line(hfgen_cli("train", "ddpm", "--model_config_name_or_path", garbage, "--output_dir", out))
    assert f"{garbage} is not a readable JSON config" in line and "UNet2DModel config.json" in line
    not_a_unet = tmp_path / "other.json"
    not_a_unet.write_text('{"hidden_size": 8}')
    line = error_line(hfgen_cli("train", "ncsn", "--model_config_name_or_path", not_a_unet, "--output_dir", out))
    assert "not a UNet2DModel config (no block_out_channels)" in line
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    line = error_line(hfgen_cli("train", "vae", "--train_data_dir", empty, "--output_dir", out))
    assert f"{empty}: cannot read as a .npy array (the file is empty)" in line
    assert not out.exists()
