"""`accelerate launch --num_processes 2 --cpu scripts/train.py ddpm ...` trains with two gloo processes."""

import json
import os
import shutil
import subprocess
import sys

from conftest import tiny_ddpm_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_accelerate_launch_two_cpu_processes(tmp_path):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or "accelerate"
    out = tmp_path / "ddp"
    command = [
        accelerate, "launch", "--num_processes", "2", "--cpu", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", os.path.join(REPO, "scripts", "train.py"), "ddpm", "--output_dir", str(out),
        "--max_train_steps", "4", *tiny_ddpm_flags(checkpointing_steps=2),
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
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
