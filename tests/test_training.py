"""The one training loop: exact resumption, atomic checkpoints, divergence handling, the output-folder contract."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

import hfgen
from hfgen.errors import CheckpointError, TrainingDivergedError
from hfgen.output_folder.layout import list_checkpoints


def unet_weights(output_dir):
    return load_file(os.path.join(output_dir, "unet", "diffusion_pytorch_model.safetensors"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs by {(a[key] - b[key]).abs().max().item():.3g}"


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_ddpm):
    common = dict(tiny_ddpm, lr_scheduler="constant", use_ema=True, checkpointing_steps=20, seed=3)
    hfgen.train("ddpm", output_dir=str(tmp_path / "straight"), max_train_steps=40, **common)
    hfgen.train("ddpm", output_dir=str(tmp_path / "resumed"), max_train_steps=20, **common)
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "resumed"))] == ["checkpoint-20"]
    result = hfgen.train(
        "ddpm", output_dir=str(tmp_path / "resumed"), max_train_steps=40, resume_from_checkpoint="latest", **common
    )
    assert result.global_step == 40
    assert_same_weights(unet_weights(tmp_path / "straight"), unet_weights(tmp_path / "resumed"))
    # the loss history survives the resume: one point per step
    assert [s for s, _ in result.loss_history["loss"]] == list(range(1, 41))


def test_different_seeds_give_different_weights(tmp_path, tiny_ddpm):
    hfgen.train("ddpm", output_dir=str(tmp_path / "a"), max_train_steps=3, seed=0, **tiny_ddpm)
    hfgen.train("ddpm", output_dir=str(tmp_path / "b"), max_train_steps=3, seed=1, **tiny_ddpm)
    a, b = unet_weights(tmp_path / "a"), unet_weights(tmp_path / "b")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_ema_weights_are_what_is_saved(tmp_path, tiny_ddpm):
    out = tmp_path / "ema"
    hfgen.train(
        "ddpm", output_dir=str(out), max_train_steps=10, **dict(tiny_ddpm, use_ema=True, checkpointing_steps=10)
    )
    saved = unet_weights(out)
    raw = load_file(os.path.join(out, "checkpoints", "checkpoint-10", "model.safetensors"))
    ema = load_file(
        os.path.join(out, "checkpoints", "checkpoint-10", "ema", "unet", "diffusion_pytorch_model.safetensors")
    )
    assert_same_weights(saved, ema)
    assert any(not torch.equal(saved[k], raw[k]) for k in saved), "EMA weights equal the raw weights"


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import accelerate
    import torch
    import hfgen

    torch.set_num_threads(1)  # as the test process: bitwise equality needs the same reduction order

    original = accelerate.Accelerator.save_state

    def save_state_then_die(self, output_dir=None, **kwargs):
        result = original(self, output_dir, **kwargs)
        if output_dir.endswith("checkpoint-20"):
            os.kill(os.getpid(), signal.SIGKILL)  # killed while the checkpoint is being written
        return result

    accelerate.Accelerator.save_state = save_state_then_die
    flags = dict(__FLAGS__)
    hfgen.train("ddpm", output_dir=sys.argv[1], max_train_steps=30, **flags)
    """
)


def test_a_run_killed_during_a_checkpoint_write_resumes_from_the_previous_checkpoint(tmp_path, tiny_ddpm):
    out = tmp_path / "killed"
    flags = dict(tiny_ddpm, lr_scheduler="cosine", lr_warmup_steps=5, seed=7, checkpointing_steps=10)
    script = KILL_SCRIPT.replace("__FLAGS__", repr(flags))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    names = sorted(os.listdir(out / "checkpoints"))
    assert names == [".tmp-checkpoint-20", "checkpoint-10"]
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-10"]
    assert not (out / "model_index.json").exists()

    result = hfgen.train("ddpm", output_dir=str(out), max_train_steps=30, resume_from_checkpoint="latest", **flags)
    assert result.global_step == 30
    assert not (out / "checkpoints" / ".tmp-checkpoint-20").exists()
    hfgen.train("ddpm", output_dir=str(tmp_path / "straight"), max_train_steps=30, **flags)
    assert_same_weights(unet_weights(out), unet_weights(tmp_path / "straight"))


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, tiny_ddpm):
    out = tmp_path / "nan"
    sane = dict(tiny_ddpm, lr_scheduler="constant", checkpointing_steps=2)
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=2, **sane)
    before = load_file(os.path.join(out, "checkpoints", "checkpoint-2", "model.safetensors"))
    exploding = dict(sane, learning_rate=1e6, max_grad_norm=0.0, checkpointing_steps=1000)
    with pytest.raises(TrainingDivergedError) as info:
        hfgen.train("ddpm", output_dir=str(out), max_train_steps=200, resume_from_checkpoint="latest", **exploding)
    message = str(info.value)
    assert "diverged at step" in message and "learning_rate" in message and "checkpoint-2" in message
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-2"]
    assert_same_weights(before, load_file(os.path.join(out, "checkpoints", "checkpoint-2", "model.safetensors")))
    # the intact checkpoint resumes with a sane learning rate and trains on with finite losses
    result = hfgen.train("ddpm", output_dir=str(out), max_train_steps=5, resume_from_checkpoint="latest", **sane)
    assert result.global_step == 5
    assert all(torch.isfinite(torch.tensor(v)) for _, v in result.loss_history["loss"])


def test_nan_loss_from_scratch_names_the_step(tmp_path, tiny_ddpm):
    flags = dict(tiny_ddpm, learning_rate=1e6, max_grad_norm=0.0, lr_scheduler="constant")
    with pytest.raises(
        TrainingDivergedError, match=r"diverged at step \d+: loss nan.*no good checkpoint was written yet"
    ):
        hfgen.train("ddpm", output_dir=str(tmp_path / "nan"), max_train_steps=200, **flags)


def test_checkpoint_rotation_keeps_the_newest(tmp_path, tiny_ddpm):
    out = tmp_path / "rot"
    flags = dict(tiny_ddpm, checkpointing_steps=2, checkpoints_total_limit=2)
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=8, **flags)
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-6", "checkpoint-8"]


def test_existing_checkpoints_are_not_silently_overwritten(tmp_path, tiny_ddpm):
    out = tmp_path / "twice"
    flags = dict(tiny_ddpm, checkpointing_steps=2)
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=2, **flags)
    with pytest.raises(CheckpointError, match="resume_from_checkpoint latest"):
        hfgen.train("ddpm", output_dir=str(out), max_train_steps=2, **flags)
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=2, overwrite_output_dir=True, **flags)


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, tiny_ddpm):
    out = tmp_path / "corrupt"
    flags = dict(tiny_ddpm, checkpointing_steps=2)
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=2, **flags)
    with open(out / "checkpoints" / "checkpoint-2" / "model.safetensors", "wb") as handle:
        handle.write(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="checkpoint-2 is corrupt"):
        hfgen.train("ddpm", output_dir=str(out), max_train_steps=4, resume_from_checkpoint="latest", **flags)
    with pytest.raises(CheckpointError, match="does not exist"):
        hfgen.train(
            "ddpm", output_dir=str(out), max_train_steps=4, resume_from_checkpoint=str(tmp_path / "nope"), **flags
        )


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    """k micro-batches of b give the same weights as one batch of k*b (the autoencoder: a deterministic loss and no
    batch-dependent layers), and the optimizer steps once per k micro-batches, not k times."""
    common = dict(
        resolution=8, block_out_channels=[8, 16], latent_dim=4, learning_rate=1e-3, lr_scheduler="constant",
        lr_warmup_steps=0, logger="none", save_images_steps=1000, checkpointing_steps=3, num_sample_images=4,
    )  # fmt: skip
    accumulated, large = tmp_path / "accumulated", tmp_path / "large"
    hfgen.train("autoencoder", output_dir=str(accumulated), max_train_steps=3, train_batch_size=4,
                gradient_accumulation_steps=3, **common)  # fmt: skip
    hfgen.train("autoencoder", output_dir=str(large), max_train_steps=3, train_batch_size=12, **common)
    a = load_file(accumulated / "autoencoder" / "diffusion_pytorch_model.safetensors")
    b = load_file(large / "autoencoder" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)
    optimizer = torch.load(accumulated / "checkpoints" / "checkpoint-3" / "optimizer.bin", weights_only=True)
    assert {float(state["step"]) for state in optimizer["state"].values()} == {3.0}
    # and the comparison can fail: a run with half the batch ends elsewhere
    half = tmp_path / "half"
    hfgen.train("autoencoder", output_dir=str(half), max_train_steps=3, train_batch_size=6, **common)
    c = load_file(half / "autoencoder" / "diffusion_pytorch_model.safetensors")
    assert max((a[key] - c[key]).abs().max().item() for key in a) > 1e-4


def test_output_folder_contract(tmp_path, tiny_ddpm):
    out = tmp_path / "contract"
    flags = dict(tiny_ddpm, save_images_steps=2, checkpointing_steps=2, logger="tensorboard")
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=4, **flags)
    for name in ("model_index.json", "unet", "scheduler", "README.md", "training_args.json", "loss.png", "logs"):
        assert (out / name).exists(), name
    assert sorted(os.listdir(out / "samples")) == ["step-000002.png", "step-000004.png"]
    assert any(f.startswith("events.out.tfevents") for _, _, files in os.walk(out / "logs") for f in files)
    args = json.load(open(out / "training_args.json"))
    assert args["model"] == "ddpm" and args["resolution"] == 8 and args["block_out_channels"] == [8, 16]
    index = json.load(open(out / "model_index.json"))
    assert index["_class_name"] == "DDPMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"]
