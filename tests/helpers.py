"""Helpers shared by the test modules (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import re

from hfgen.cli import main


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


def error_line(code: int, err: str) -> str:
    """The single `hfgen: error:` line of a failed command (exit code 2, no traceback, printed last)."""
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
