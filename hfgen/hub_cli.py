"""`hfgen push OUTPUT_DIR --hub_model_id ID`: argument parsing for `hfgen.output_folder.hub.push_folder` (called by
`hfgen.cli.main`)."""

from __future__ import annotations

from hfgen.command_line import ArgumentParser


def push_main(argv: list[str]) -> None:
    """``hfgen push OUTPUT_DIR --hub_model_id NAMESPACE/NAME [--private] [--hub_token TOKEN]``."""
    from hfgen.output_folder.hub import push_folder

    parser = ArgumentParser(
        prog="hfgen push",
        description="Upload a trained folder to the Hub: the model card re-rendered for the repo (its id in every "
        "snippet, the sample grid in a gallery, the evaluations in the model-index), checkpoints and logs left out. "
        "The token comes from `hf auth login` or HF_TOKEN and is never written anywhere.",
    )
    parser.add_argument("output_dir", help="A trained folder.")
    parser.add_argument("--hub_model_id", required=True, help="The repository, namespace/name.")
    parser.add_argument("--private", action="store_true", help="Create the repository private.")
    parser.add_argument("--hub_token", default=None, help="A token (default: the stored login or HF_TOKEN).")
    args = parser.parse_args(argv)
    url = push_folder(args.output_dir, args.hub_model_id, token=args.hub_token, private=args.private)
    print(f"pushed {args.output_dir} to https://huggingface.co/{args.hub_model_id} ({url})")
