"""The model card of a PaliGemma CLEVR LoRA adapter (``model_cards/paligemma_clevr_lora.md``)."""

from __future__ import annotations

import json
import os

from hfgen.output_folder.layout import MODEL_CARD, TRAINING_ARGS


def write_vqa_model_card(output_dir: str, evaluation: dict | None = None) -> str:
    """Render ``OUTPUT_DIR/README.md`` from the run's ``training_args.json`` and, when given (or saved as
    ``eval_results.json``), the evaluation of `hfgen.vqa.evaluation.run_evaluation` (YAML ``model-index`` + table).

    The Hub token is never written. Returns the path of the card.
    """
    from huggingface_hub import EvalResult

    from hfgen.output_folder.model_card import hub_id_placeholder, library_versions, render_model_card
    from hfgen.vqa.modeling import BASE_MODEL_ID

    with open(os.path.join(output_dir, TRAINING_ARGS)) as handle:
        args = json.load(handle)
    results_path = os.path.join(output_dir, "eval_results.json")
    if evaluation is None and os.path.isfile(results_path):
        with open(results_path) as handle:
            evaluation = json.load(handle)
    base = args.get("model_name_or_path") or BASE_MODEL_ID
    tiny = bool(args.get("tiny"))
    repo_id = args.get("hub_model_id") or hub_id_placeholder(output_dir)
    card_data = {
        "library_name": "peft",
        "license": "apache-2.0" if tiny else "gemma",
        "base_model": base if not tiny else None,
        "pipeline_tag": "image-text-to-text",
        "tags": ["hfgen", "paligemma", "lora", "vqa", "clevr"],
    }
    fine_tuned = (evaluation or {}).get("models", {}).get("fine-tuned")
    if fine_tuned:
        card_data["model_name"] = repo_id
        card_data["eval_results"] = [
            EvalResult(
                task_type="visual-question-answering",
                dataset_type="clevr",
                dataset_name=f"CLEVR ({evaluation['split']}, {evaluation['num_questions']} questions)",
                metric_type=key,
                metric_name=label,
                metric_value=round(fine_tuned[key], 4),
            )  # fmt: skip
            for key, label in (("rouge1", "ROUGE-1"), ("rougeL", "ROUGE-L"), ("exact_match", "Exact match"))
        ]
    command = ["hfgen vqa finetune"]
    for key in ("tiny", "model_name_or_path", "clevr_dir", "max_questions", "max_train_steps", "train_batch_size",
                "learning_rate", "lora_r", "lora_alpha", "mixed_precision", "output_dir"):  # fmt: skip
        value = args.get(key)
        if value in (None, False):
            continue
        command.append(f"--{key}" if value is True else f"--{key} {value}")
    card = render_model_card(
        "paligemma_clevr_lora.md",
        {k: v for k, v in card_data.items() if v is not None},
        repo_id=repo_id,
        base_model=base,
        tiny=tiny,
        args=args,
        trainable=args.get("result_trainable_parameters", {}),
        train_minutes=f"{args.get('result_seconds', 0) / 60:.1f}",
        evaluation=evaluation,
        training_command=" ".join(command),
        versions=library_versions(),
    )
    path = os.path.join(output_dir, MODEL_CARD)
    card.save(path)
    return path
