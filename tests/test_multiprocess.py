"""`accelerate launch --num_processes 2 --cpu scripts/train.py MODEL ...` trains with two gloo processes: DDPM through
the script, every other family through `tests/multiprocess_worker.py` (the ranks end identical, resuming is exact)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import tiny_ddpm_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def accelerate_launch(script: str, *args, timeout: int) -> subprocess.CompletedProcess:
    """`accelerate launch --num_processes 2 --cpu SCRIPT ARGS` (one OpenMP thread per process, offline)."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or "accelerate"
    command = [
        accelerate, "launch", "--num_processes", "2", "--cpu", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", script, *map(str, args),
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_accelerate_launch_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    proc = accelerate_launch(
        os.path.join(REPO, "scripts", "train.py"), "ddpm", "--output_dir", out, "--max_train_steps", "4",
        *tiny_ddpm_flags(checkpointing_steps=2), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "batch 8 x 2 process(es)" in proc.stdout
    assert proc.stdout.count("Saved the trained pipeline") == 1  # saved once, by the main process
    args = json.load(open(out / "training_args.json"))
    assert args["num_processes"] == 2
    checkpoint = out / "checkpoints" / "checkpoint-4"
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors"} <= set(os.listdir(checkpoint))
    state = json.load(open(checkpoint / "trainer_state.json"))
    assert state["global_step"] == 4 and len(state["loss_history"]["loss"]) == 4
    from diffusers import DDPMPipeline

    pipeline = DDPMPipeline.from_pretrained(str(out))
    assert pipeline.unet.config.sample_size == 8


# Every other family under two gloo processes (issue 16): GANs (two optimisers, several critic updates per step, weight
# clipping, the gradient penalty's double backward), the autoencoder, the VAE, the flow and NCSN. Tiny settings: the
# point is the synchronisation.
UNET = {"block_out_channels": [8, 16], "attention_levels": [1], "norm_num_groups": 4}
FAMILY_SETTINGS = {
    "autoencoder": {"latent_dim": 2, "block_out_channels": [8, 16]},
    "vae": {"latent_dim": 2, "block_out_channels": [8, 16]},
    "dcgan": {"latent_dim": 8, "generator_channels": 8, "critic_channels": 8},
    "wgan": {"latent_dim": 8, "generator_channels": 8, "critic_channels": 8, "n_critic": 2},
    "wgan-gp": {"latent_dim": 8, "generator_channels": 8, "critic_channels": 8, "n_critic": 2},
    "realnvp": {"num_scales": 1, "hidden_channels": 8, "num_blocks": 1},
    "ncsn": {**UNET, "num_noise_levels": 4, "sample_steps_per_level": 2},
}


def family_settings(model: str, **kwargs) -> dict:
    return {"resolution": 8, "train_batch_size": 8, "num_sample_images": 4, "logger": "none",
            "save_images_steps": 10_000, "seed": 0, **FAMILY_SETTINGS[model], **kwargs}  # fmt: skip


CHECKPOINT_2 = os.path.join("checkpoints", "checkpoint-2")


def launch_jobs(root, part: str, jobs: list[dict]) -> None:
    """Run ``jobs`` one after the other in one `accelerate launch --num_processes 2 --cpu` of the worker."""
    (root / f"{part}.json").write_text(json.dumps(jobs))
    worker = os.path.join(REPO, "tests", "multiprocess_worker.py")
    proc = accelerate_launch(worker, root / f"{part}.json", root / "digests", timeout=900)
    started = [line for line in proc.stdout.splitlines() if line.startswith("Training ")]
    assert proc.returncode == 0, f"{part} runs; last started: {started[-1:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """Every family trained to step 4 under `accelerate launch --num_processes 2 --cpu` (one launch for all), then
    resumed from its step-2 checkpoint into another folder by fresh processes (a second launch).

    Returns {model: {"whole"|"resumed": (folder, {rank: digest record})}}."""
    root = tmp_path_factory.mktemp("two-processes")
    common = dict(max_train_steps=4, checkpointing_steps=2)
    models = sorted(FAMILY_SETTINGS)
    launch_jobs(root, "whole", [
        {"name": f"{model}-whole", "model": model,
         "kwargs": family_settings(model, output_dir=str(root / model / "whole"), **common)}
        for model in models
    ])  # fmt: skip
    launch_jobs(root, "resumed", [
        {"name": f"{model}-resumed", "model": model,
         "kwargs": family_settings(model, output_dir=str(root / model / "resumed"), **common,
                                   resume_from_checkpoint=str(root / model / "whole" / CHECKPOINT_2))}
        for model in models
    ])  # fmt: skip

    def ranks(name):
        return {
            path.stem: json.loads(path.read_text()) for path in sorted((root / "digests" / name).glob("rank*.json"))
        }

    return {model: {part: (root / model / part, ranks(f"{model}-{part}")) for part in ("whole", "resumed")}
            for model in models}  # fmt: skip


def saved_weights(folder) -> dict:
    from safetensors.torch import load_file

    return {f"{p.parent.name}/{k}": v for p in sorted(folder.glob("*/*.safetensors")) for k, v in load_file(p).items()}


@pytest.mark.parametrize("model", sorted(FAMILY_SETTINGS))
def test_two_processes_end_identical_and_resume_exactly(two_process_runs, model):
    whole, ranks = two_process_runs[model]["whole"]
    assert set(ranks) == {"rank0", "rank1"}, "both processes must train"
    assert ranks["rank0"]["digest"] == ranks["rank1"]["digest"], f"{model}: the ranks' weights differ"
    assert ranks["rank0"]["global_step"] == 4 and ranks["rank0"]["steps_run"] == 4
    args = json.load(open(whole / "training_args.json"))
    assert args["num_processes"] == 2
    # the 2-process run resumed from its step-2 checkpoint in another folder: the same weights at step 4
    resumed, ranks = two_process_runs[model]["resumed"]
    assert set(ranks) == {"rank0", "rank1"} and ranks["rank0"]["digest"] == ranks["rank1"]["digest"]
    assert ranks["rank0"]["steps_run"] == 2, "the resumed run trains steps 3 and 4 only"
    expected, got = saved_weights(whole), saved_weights(resumed)
    assert expected and set(expected) == set(got)
    for key in expected:
        assert torch.equal(expected[key], got[key]), f"{model}: {key} differs after resuming"
