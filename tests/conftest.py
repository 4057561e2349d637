"""Shared test set-up: offline, tiny models, fast runs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from helpers import TINY_DDPM  # noqa: E402


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
