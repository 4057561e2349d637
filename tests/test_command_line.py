"""hfgen's argument parsers (`hfgen.command_line`): one-line flag errors without patching argparse for everyone, and
no abbreviated flags."""

import argparse

import pytest

import hfgen.cli
from hfgen.command_line import ArgumentParser, hf_argument_parser

pytestmark = pytest.mark.unit  # `make test-fast`


def error_of(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        hfgen.cli.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    return caught.value.code, lines


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["sample", "somewhere", "--num_im", "4"], "--num_im"),  # an abbreviation of --num_images is refused
        (["evaluate", "somewhere", "--num_ima", "4"], "--num_ima"),
        (["train", "ddpm", "--max_train", "3"], "--max_train"),
        (["demo", "somewhere", "--po", "1"], "--po"),
        (["push", "somewhere", "--hub_model", "a/b"], "--hub_model"),
    ],
)
def test_abbreviated_flags_are_one_line_errors(capsys, argv, flag):
    code, lines = error_of(capsys, argv)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hfgen: error: hfgen ") and flag in lines[0]


def test_argparse_itself_is_left_alone(capsys):
    """Only hfgen's parsers print one-line errors: argparse.ArgumentParser keeps its own behaviour (no patch)."""
    error_of(capsys, ["sample", "somewhere", "--num_images", "many"])
    plain = argparse.ArgumentParser(prog="other")
    plain.add_argument("--x", type=int)
    with pytest.raises(SystemExit):
        plain.parse_args(["--x", "y"])
    assert "usage: other" in capsys.readouterr().err  # argparse's own usage block, not hfgen's line


def test_parsers_refuse_abbreviations_and_speak_in_one_line(capsys):
    from hfgen.training.arguments import TrainingArguments

    parser = ArgumentParser(prog="hfgen x")
    parser.add_argument("--alpha")
    assert parser.allow_abbrev is False
    dataclass_parser = hf_argument_parser([TrainingArguments], prog="hfgen y")
    assert dataclass_parser.allow_abbrev is False
    with pytest.raises(SystemExit) as caught:
        dataclass_parser.parse_args_into_dataclasses(args=["--output_dir", "o", "--seed", "x"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hfgen: error: hfgen y: argument --seed")
