"""Shared test set-up: offline, tiny models, fast runs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

# A tiny DDPM that trains a step in milliseconds: 8x8 images, a 2-level UNet without attention, T = 50.
TINY_DDPM = {
    "resolution": 8,
    "block_out_channels": [8, 16],
    "attention_levels": [1],
    "norm_num_groups": 4,
    "layers_per_block": 1,
    "ddpm_num_steps": 50,
    "sample_num_inference_steps": 2,
    "train_batch_size": 8,
    "num_sample_images": 4,
    "logger": "none",
    "save_images_steps": 1000,
    "checkpointing_steps": 1000,
    "learning_rate": 1e-3,
    "lr_warmup_steps": 0,
}


def tiny_ddpm_flags(**overrides) -> list[str]:
    """TINY_DDPM (+ overrides) as `hfgen train ddpm` command-line flags."""
    flags = []
    for key, value in {**TINY_DDPM, **overrides}.items():
        if isinstance(value, bool):
            if value:
                flags.append(f"--{key}")
            continue
        flags.append(f"--{key}")
        flags.extend(str(v) for v in value) if isinstance(value, list) else flags.append(str(value))
    return flags


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run fastest on one thread, and two threads stall badly when another process holds a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_ddpm():
    """A dict of keyword arguments for `hfgen.train("ddpm", **tiny_ddpm, ...)`."""
    return dict(TINY_DDPM)
