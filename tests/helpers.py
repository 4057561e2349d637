"""Helpers shared by the test modules: the tiny DDPM settings, functions, the Hub stand-in (fixtures: conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import huggingface_hub
from huggingface_hub.utils import filter_repo_objects

from hfgen.cli import main

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


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`hfgen ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def hfgen_cli(*args) -> subprocess.CompletedProcess:
    """`hfgen ARGS` run in this process (no interpreter and torch start-up per call): a
    `subprocess.CompletedProcess` with ``returncode`` and what was written to ``sys.stdout`` / ``sys.stderr`` (progress
    bars, `print`, argparse and hfgen errors). Not captured, unlike `hfgen_subprocess`: `warnings` and `logging`
    records (pytest takes them) and output of other processes. An exception that escapes `main` is raised here (in a
    subprocess it would be a traceback and exit code 1)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return subprocess.CompletedProcess(["hfgen", *map(str, args)], code, stdout.getvalue(), stderr.getvalue())


# One OpenMP thread: the tiny models are not faster on two, and two threads stall badly when another process
# (a parallel test worker) holds the second core.
SUBPROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def hfgen_subprocess(*args, timeout=240) -> subprocess.CompletedProcess:
    """`python -m hfgen ARGS` in a subprocess, as a user runs it: for tests where the process itself is the point
    (start-up, exit codes, kills, environment)."""
    return subprocess.run(
        [sys.executable, "-m", "hfgen", *map(str, args)],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=timeout,
    )


def error_line(code: int | subprocess.CompletedProcess, err: str | None = None) -> str:
    """The single `hfgen: error:` line of a failed command (exit code 2, no traceback, printed last), from
    ``(exit code, stderr)`` or a `subprocess.CompletedProcess`."""
    if isinstance(code, subprocess.CompletedProcess):
        code, err = code.returncode, code.stderr
    assert code == 2, f"exit code {code}\n{err}"
    assert "Traceback" not in err, err
    lines = [line for line in re.split(r"[\r\n]+", err) if line.strip()]
    errors = [line for line in lines if line.startswith("hfgen: error:")]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], "the error is the last thing printed"
    return errors[0]


def quiet(pipeline):
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class HubRecorder:
    """Stands in for `huggingface_hub.create_repo` / `upload_folder`, recording their keyword arguments."""

    def __init__(self, upload_error: Exception | None = None):
        self.create_calls, self.upload_calls = [], []
        self.upload_error = upload_error

    def create_repo(self, repo_id, **kwargs):
        self.create_calls.append({"repo_id": repo_id, **kwargs})
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.upload_calls.append(kwargs)
        if self.upload_error is not None:
            raise self.upload_error
        # what the upload would send: the folder's files minus the ignore patterns
        folder = kwargs["folder_path"]
        files = [str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file()]
        self.uploaded = list(filter_repo_objects(files, ignore_patterns=kwargs.get("ignore_patterns")))

        class Commit:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc123"

        return Commit()

    def install(self, monkeypatch):
        monkeypatch.setattr(huggingface_hub, "create_repo", self.create_repo)
        monkeypatch.setattr(huggingface_hub, "upload_folder", self.upload_folder)
