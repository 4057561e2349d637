"""`hfgen demo` and `hfgen space`: argument parsing for `hfgen.demo` (called by `hfgen.cli.main`)."""

from __future__ import annotations

import argparse

from hfgen.command_line import ArgumentParser
from hfgen.errors import CommandLineError


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be a whole number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be between 0 and 65535 (0: any free port), got {port}")
    return port


def demo_main(argv: list[str]) -> None:
    """``hfgen demo OUTPUT_DIR [OUTPUT_DIR ...] [--port 7860] [--host 127.0.0.1] [--share]``."""
    from hfgen.demo.app import launch_demo

    parser = ArgumentParser(
        prog="hfgen demo",
        description="A local Gradio app with one tab per trained folder: diffusion (scheduler, steps, seed, class, "
        "guidance, the chain), VAE/autoencoder (latent sliders, morph, attribute vector), GAN (seeds, "
        "interpolation), flow (temperature, bits/dim of an upload) and VQA adapters (image + question). Needs "
        "`pip install 'hfgen[demo]'`.",
    )
    parser.add_argument("output_dirs", nargs="+", metavar="OUTPUT_DIR", help="Trained folders (or Hub ids).")
    parser.add_argument("--port", type=_port, default=7860, help="Port to serve on (0: any free port).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
    parser.add_argument("--share", action="store_true", help="Also a public gradio.live link (needs the network).")
    args = parser.parse_args(argv)
    launch_demo(args.output_dirs, port=args.port, share=args.share, host=args.host)


def space_main(argv: list[str]) -> None:
    """``hfgen space OUTPUT_DIR --to SPACE_DIR [--hub_model_id ID] [--hfgen_requirement SPEC] [--overwrite]``."""
    from hfgen.demo.space import write_space

    parser = ArgumentParser(
        prog="hfgen space",
        description="Write a Space-ready folder (app.py, requirements.txt, README with `sdk: gradio`, the model) "
        "that runs `hfgen demo` on a Hugging Face Space or locally with `python app.py`.",
    )
    parser.add_argument("output_dir", help="A trained folder.")
    parser.add_argument("--to", required=True, help="The Space folder to write.")
    parser.add_argument("--hub_model_id", default=None, help="Load the model from this Hub repo instead of a copy.")
    parser.add_argument(
        "--hfgen_requirement",
        default=None,
        help="requirements.txt line installing hfgen (default hfgen[demo]==VERSION).",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing non-empty --to folder.")
    args = parser.parse_args(argv)
    if not args.to.strip():
        raise CommandLineError("--to must name a folder")
    paths = write_space(args.output_dir, args.to, args.hub_model_id, args.hfgen_requirement, args.overwrite)
    for role, path in paths.items():
        print(f"{role:>12}: {path}")
    print(f"run it: cd {args.to} && python app.py")
