"""The argument parsers of hfgen's commands (`hfgen.cli`, `hfgen.vqa.cli`, `hfgen.demo.cli`, `hfgen.hub_cli`): a bad
flag is one ``hfgen: error: ...`` line naming the command and the flag (exit code 2) instead of argparse's usage
block, and flags are never abbreviated (``--lr`` is not ``--lr_scheduler``: a typo must not pick a flag)."""

from __future__ import annotations

import argparse
import sys


def fail(message: str) -> None:
    """Print ``hfgen: error: MESSAGE`` on stderr and exit with code 2."""
    print(f"hfgen: error: {message}", file=sys.stderr)
    sys.exit(2)


class OneLineErrors:
    """Mixin for `argparse.ArgumentParser` subclasses: ``error`` is one `fail` line."""

    def error(self, message: str):
        fail(f"{self.prog}: {message} (see `{self.prog} --help`)")


class ArgumentParser(OneLineErrors, argparse.ArgumentParser):
    """`argparse.ArgumentParser` with one-line errors and ``allow_abbrev=False``."""

    def __init__(self, *args, allow_abbrev: bool = False, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)


def hf_argument_parser(dataclass_types, **kwargs):
    """`transformers.HfArgumentParser` over ``dataclass_types`` with one-line errors and ``allow_abbrev=False``
    (transformers is imported here, only by the commands that parse dataclasses)."""
    from transformers import HfArgumentParser

    class Parser(OneLineErrors, HfArgumentParser):
        def parse_args_into_dataclasses(self, args=None, **kwargs):
            """transformers' method; an unknown flag is an argparse-style error (one line), not a ValueError."""
            kwargs["return_remaining_strings"] = True
            *parsed, remaining = super().parse_args_into_dataclasses(args=args, **kwargs)
            if remaining:
                self.error(f"unrecognized arguments: {' '.join(remaining)}")
            return tuple(parsed)

    kwargs.setdefault("allow_abbrev", False)
    return Parser(dataclass_types, **kwargs)
