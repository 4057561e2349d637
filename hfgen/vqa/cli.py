"""`hfgen vqa make-dataset | finetune | evaluate` (thin: parse, then call the library)."""

from __future__ import annotations

import sys

from hfgen.command_line import ArgumentParser, hf_argument_parser

USAGE = """usage: hfgen vqa <command> [flags]

commands:
  make-dataset --output_dir DIR [--num_images N] [--seed S]
                 draw CLEVR-style scenes offline and write them in the CLEVR_v1.0 layout
  finetune (--tiny | --model_name_or_path M) --clevr_dir DIR --output_dir OUT [flags]
                 LoRA fine-tuning of PaliGemma (`hfgen vqa finetune --help` lists the flags)
  evaluate (--tiny | --model_name_or_path M) --clevr_dir DIR [--adapter OUT] [--compare_to_base]
                 greedy answers, ROUGE-1/2/L, exact match per question kind, majority baseline
"""


def _make_dataset(argv: list[str]) -> None:
    from hfgen.data.clevr import make_clevr_dataset

    parser = ArgumentParser(prog="hfgen vqa make-dataset", description="CLEVR-style scenes, drawn offline.")
    parser.add_argument("--output_dir", required=True, help="Where the CLEVR_v1.0-layout folder is written.")
    parser.add_argument("--num_images", type=int, default=300, help="Scenes to draw (train + val).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the scenes and questions.")
    parser.add_argument("--val_fraction", type=float, default=0.2, help="Share of the scenes in the val split.")
    args = parser.parse_args(argv)
    summary = make_clevr_dataset(args.output_dir, num_images=args.num_images, seed=args.seed,
                                 val_fraction=args.val_fraction)  # fmt: skip
    print(f"wrote {args.output_dir} (CLEVR_v1.0 layout)")
    print(summary_text(summary))


def summary_text(summary: dict) -> str:
    """One readable line per entry of `make_clevr_dataset`'s summary."""
    return "\n".join(f"  {key}: {value}" for key, value in summary.items())


def _finetune(argv: list[str]) -> None:

    from hfgen.vqa.finetune import VQAFinetuneArguments, finetune

    parser = hf_argument_parser(VQAFinetuneArguments)
    parser.prog = "hfgen vqa finetune"
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    info = finetune(args)
    if info:
        trainable = ", ".join(f"{k} {v:,}" for k, v in info["trainable_parameters"].items())
        print(f"saved the LoRA adapter, processor and model card to {args.output_dir}")
        print(f"steps {info['steps']}, final loss {info['train_loss']:.4f}, {info['seconds'] / 60:.1f} min")
        print(f"trainable parameters: {trainable}")


def _evaluate(argv: list[str]) -> None:
    from hfgen.vqa.evaluation import run_evaluation

    parser = ArgumentParser(prog="hfgen vqa evaluate", description="Score PaliGemma answers on CLEVR.")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model_name_or_path", default=None, help="A local PaliGemma folder or a Hub id (online).")
    model.add_argument("--tiny", action="store_true", help="The tiny offline model (with --adapter: its own base).")
    parser.add_argument("--clevr_dir", required=True, help="A CLEVR_v1.0 folder.")
    parser.add_argument("--adapter", default=None, help="A LoRA adapter folder (`hfgen vqa finetune` output).")
    parser.add_argument("--split", default="val", help="The split to answer (val; CLEVR's test has no answers).")
    parser.add_argument("--max_questions", type=int, default=None, help="Answer this many questions (shuffled).")
    parser.add_argument("--compare_to_base", action="store_true", help="Also answer with the base model: a table.")
    parser.add_argument("--batch_size", type=int, default=8, help="Questions per generation batch.")
    parser.add_argument("--max_new_tokens", type=int, default=10, help="Longest answer generated.")
    parser.add_argument("--output_dir", default=None, help="Where results go (default: the adapter, or vqa-eval).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the question subsample (and the tiny model).")
    args = parser.parse_args(argv)
    result = run_evaluation(
        args.clevr_dir, model_name_or_path=args.model_name_or_path, tiny=args.tiny, adapter=args.adapter,
        split=args.split, max_questions=args.max_questions, compare_to_base=args.compare_to_base,
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, output_dir=args.output_dir, seed=args.seed,
    )  # fmt: skip
    print(f"{result['split']} split, {result['num_questions']} questions")
    print(result["table"])
    print()
    print(result["per_type_table"])


def main(argv: list[str]) -> None:
    """Dispatch `hfgen vqa COMMAND ...`."""
    commands = {"make-dataset": _make_dataset, "finetune": _finetune, "evaluate": _evaluate}
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    if argv[0] not in commands:
        from hfgen.errors import CommandLineError

        raise CommandLineError(f"unknown vqa command {argv[0]!r}; commands: {', '.join(commands)}")
    commands[argv[0]](argv[1:])
