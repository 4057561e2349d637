"""Shared test set-up: offline, tiny models, fast runs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One OpenMP thread here and in every subprocess a test starts (recipes, launches, the Space): two pytest workers
# already fill both cores, and a third busy thread stalls PyTorch's CPU kernels.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from helpers import TINY_DDPM  # noqa: E402

# The files that take longest (recipes and two-process runs in subprocesses, training runs): collected first, so that
# `make test` (`pytest -n 2`) hands them out first instead of leaving one worker busy at the end.
SLOW_FIRST = ("test_reproduce.py", "test_multiprocess.py", "test_bad_input.py", "test_cli.py", "test_compare.py",
              "test_metrics.py", "test_real_data.py", "test_gan.py", "test_demo.py", "test_training.py")  # fmt: skip
# Files whose tests share no fixture: with pytest-xdist each of their tests may go to either worker.
INDEPENDENT_TESTS = ("test_reproduce.py",)


def pytest_collection_modifyitems(config, items):
    rank = {name: position for position, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: file order kept otherwise


@pytest.hookimpl(optionalhook=True)  # pytest without pytest-xdist runs as before
def pytest_xdist_make_scheduler(config, log):
    """With `pytest -n N` (xdist's default ``--dist load``): each file's tests go to one worker (module fixtures are
    built once, as with ``--dist loadfile``), except the `INDEPENDENT_TESTS` files, whose tests are spread one by one.
    Another ``--dist`` mode is left to xdist."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection order (slow files first), not "most tests first"

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path.endswith(INDEPENDENT_TESTS) else path

    return FileScheduling(config, log)


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
