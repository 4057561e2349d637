"""`hfgen vqa evaluate`: greedy answers, ROUGE through `evaluate` (hfgen's deterministic module), exact match overall
and per question kind, the majority-answer-per-kind baseline, and the base-vs-fine-tuned table."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

import torch

from hfgen.output_folder.layout import TRAINING_ARGS

_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}
_SPELLINGS = {"colour": "color", "colours": "colors", "grey": "gray"}


def normalize_answer(text: str | None) -> str:
    """Normalise an answer for exact-match scoring against CLEVR's answer vocabulary.

    Lower-cases, strips white space and trailing punctuation, drops the articles "a", "an" and "the", maps the
    number words "zero".."ten" to "0".."10" and British spellings to CLEVR's ("colour" -> "color",
    "grey" -> "gray"), and joins the words with single spaces. ``"The Sphere."`` -> ``"sphere"``,
    ``"Two"`` -> ``"2"``, ``None`` -> ``""``.

    Args:
        text (`str` or `None`): a model's or the data set's answer.

    Returns:
        `str`: the normalised answer (possibly empty).
    """
    if text is None:
        return ""
    words = []
    for word in str(text).lower().split():
        word = word.strip(".,!?;:\"'()[]")
        if not word or word in _ARTICLES:
            continue
        word = _SPELLINGS.get(word, word)
        words.append(_NUMBER_WORDS.get(word, word))
    return " ".join(words)


def generate_answers(model, processor, dataset, batch_size: int = 8, max_new_tokens: int = 10,
                     show_progress: bool = True) -> list[str]:  # fmt: skip
    """Greedy answers to every question of ``dataset`` (rows with ``image`` and ``question``).

    The prompt is sliced off before decoding (generation returns prompt + answer), so each string is the answer only.

    Returns:
        One raw decoded answer per row (normalise with `normalize_answer`).
    """
    from tqdm.auto import tqdm

    from hfgen.vqa.finetune import VQACollator

    collate = VQACollator(processor, train=False)
    model.eval()
    device = next(model.parameters()).device
    answers = []
    indices = list(range(len(dataset)))
    for start in tqdm(range(0, len(indices), batch_size), desc="Answering", unit="batch", disable=not show_progress):
        rows = [dataset[i] for i in indices[start : start + batch_size]]
        inputs = collate(rows).to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        answers.extend(processor.batch_decode(new_tokens, skip_special_tokens=True))
    return answers


def attach_adapter(model, processor, adapter: str):
    """``model`` with the LoRA adapter of the folder ``adapter`` (`peft.PeftModel`, inference only), and the
    processor saved with it when there is one (else ``processor``): ``(model, processor)``.

    Raises:
        CheckpointError: an adapter that does not load.
    """
    from peft import PeftModel

    from hfgen.errors import CheckpointError

    try:
        model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except Exception as err:
        raise CheckpointError(
            f"could not load the LoRA adapter from {adapter} ({type(err).__name__}: {err})"
        ) from None
    processor_files = ("processor_config.json", "preprocessor_config.json")
    if any(os.path.isfile(os.path.join(adapter, name)) for name in processor_files):
        from transformers import PaliGemmaProcessor

        processor = PaliGemmaProcessor.from_pretrained(adapter)
    return model, processor


def score_answers(predictions: list[str], references: list[str], question_types: list[str]) -> dict:
    """ROUGE-1/2/L (hfgen's `evaluate` module: the mean over questions, deterministic) and exact-match accuracy,
    overall and per question kind, on normalised answers.

    Returns:
        dict with ``rouge1``, ``rouge2``, ``rougeL``, ``exact_match`` (all in [0, 1]), ``num_questions`` and
        ``per_type`` (kind -> {``exact_match``, ``rouge1``, ``rougeL``, ``count``}).

    Raises:
        ValueError: for empty or mismatched lists.
    """
    import evaluate

    from hfgen.metrics import ROUGE_PATH

    if not predictions or len(predictions) != len(references) or len(references) != len(question_types):
        raise ValueError(
            f"need as many predictions as references and question types (got {len(predictions)}, "
            f"{len(references)}, {len(question_types)}), and at least one"
        )
    predictions = [normalize_answer(p) for p in predictions]
    references = [normalize_answer(r) for r in references]
    rouge = evaluate.load(ROUGE_PATH)
    per_example = rouge.compute(predictions=predictions, references=references, use_aggregator=False)
    exact = [float(p == r) for p, r in zip(predictions, references)]
    groups = defaultdict(list)
    for index, kind in enumerate(question_types):
        groups[kind].append(index)
    return {
        **{key: float(sum(per_example[key]) / len(exact)) for key in ("rouge1", "rouge2", "rougeL")},
        "exact_match": sum(exact) / len(exact),
        "num_questions": len(exact),
        "per_type": {
            kind: {
                "exact_match": sum(exact[i] for i in idx) / len(idx),
                "rouge1": sum(per_example["rouge1"][i] for i in idx) / len(idx),
                "rougeL": sum(per_example["rougeL"][i] for i in idx) / len(idx),
                "count": len(idx),
            }
            for kind, idx in sorted(groups.items())
        },
    }


def majority_answers(train_answers: list[str], train_types: list[str]) -> dict[str, str]:
    """The most frequent (normalised) training answer of each question kind, ties broken alphabetically; key ``""``
    holds the overall majority for kinds never seen in training."""
    by_type = defaultdict(Counter)
    overall = Counter()
    for answer, kind in zip(train_answers, train_types):
        if answer is None:
            continue
        by_type[kind][normalize_answer(answer)] += 1
        overall[normalize_answer(answer)] += 1

    def top(counter):
        return min(counter.items(), key=lambda item: (-item[1], item[0]))[0]

    return {"": top(overall) if overall else "", **{kind: top(counter) for kind, counter in by_type.items()}}


def write_predictions(path: str, dataset, predictions: list[str]) -> str:
    """One JSON object per line: ``question``, ``answer``, ``prediction`` (raw and normalised), ``question_type``,
    ``image_filename``, ``correct``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    columns = {c: dataset[c] for c in ("question", "answer", "question_type", "image_filename")}
    with open(path, "w") as handle:
        for i, prediction in enumerate(predictions):
            row = {c: columns[c][i] for c in columns}
            row.update(prediction=prediction, normalized_prediction=normalize_answer(prediction))
            row["correct"] = row["normalized_prediction"] == normalize_answer(row["answer"] or "")
            handle.write(json.dumps(row) + "\n")
    return path


def comparison_table(rows: dict[str, dict]) -> str:
    """The base-vs-fine-tuned markdown table: one row per model, ROUGE-1, ROUGE-L and exact match."""
    lines = ["| model | ROUGE-1 | ROUGE-L | exact match |", "|---|---|---|---|"]
    for name, scores in rows.items():
        lines.append(f"| {name} | {scores['rouge1']:.2f} | {scores['rougeL']:.2f} | {scores['exact_match']:.2f} |")
    return "\n".join(lines)


def per_type_table(rows: dict[str, dict]) -> str:
    """Exact match per question kind (columns: the models of ``rows``)."""
    names = list(rows)
    kinds = sorted({kind for scores in rows.values() for kind in scores["per_type"]})
    lines = ["| question kind | count | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for kind in kinds:
        count = next(s["per_type"][kind]["count"] for s in rows.values() if kind in s["per_type"])
        cells = [f"{rows[n]['per_type'].get(kind, {}).get('exact_match', float('nan')):.2f}" for n in names]
        lines.append(f"| {kind} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_evaluation(
    clevr_dir: str,
    model_name_or_path: str | None = None,
    tiny: bool = False,
    adapter: str | None = None,
    split: str = "val",
    max_questions: int | None = None,
    compare_to_base: bool = False,
    batch_size: int = 8,
    max_new_tokens: int = 10,
    output_dir: str | None = None,
    seed: int = 0,
) -> dict:
    """Answer ``split``'s questions with the base model, or the base + LoRA ``adapter``, and score them.

    Writes into ``output_dir`` (default: the adapter folder, else ``./vqa-eval``) ``eval_results.json``,
    ``predictions.jsonl`` (+ ``predictions_base.jsonl`` with ``compare_to_base``) and ``comparison.md``; an adapter
    folder's model card gets the metrics.

    Returns:
        dict: ``{"models": {name: scores}, "table": markdown, "per_type_table": markdown, ...}`` where the names are
        ``"base"``, ``"fine-tuned"`` and ``"majority answer per kind"`` (scores: see `score_answers`).

    Raises:
        ConfigurationError, CheckpointError, DatasetError: with a message naming the fix.
    """
    from hfgen.data.clevr import load_clevr
    from hfgen.errors import CheckpointError
    from hfgen.vqa.modeling import load_base_model

    if adapter is not None and not os.path.isfile(os.path.join(adapter, "adapter_config.json")):
        raise CheckpointError(
            f"--adapter {adapter} has no adapter_config.json; pass the --output_dir of `hfgen vqa finetune`"
        )
    dataset = load_clevr(clevr_dir, split, max_questions=max_questions, seed=seed)
    references, kinds = dataset["answer"], dataset["question_type"]
    if any(r is None for r in references):
        raise ValueError(f"split {split!r} has no answers to score against (CLEVR's test split); use val")
    model, processor = load_base_model(model_name_or_path, tiny=tiny, clevr_dir=clevr_dir, adapter=adapter, seed=seed)
    if torch.cuda.is_available():
        model = model.to("cuda")
    output_dir = output_dir or adapter or "vqa-eval"
    os.makedirs(output_dir, exist_ok=True)
    models, files = {}, {}
    if adapter is None or compare_to_base:
        base_answers = generate_answers(model, processor, dataset, batch_size, max_new_tokens)
        models["base"] = score_answers(base_answers, references, kinds)
        name = "predictions_base.jsonl" if adapter else "predictions.jsonl"
        files["base"] = write_predictions(os.path.join(output_dir, name), dataset, base_answers)
    if adapter is not None:
        model, processor = attach_adapter(model, processor, adapter)
        answers = generate_answers(model, processor, dataset, batch_size, max_new_tokens)
        models["fine-tuned"] = score_answers(answers, references, kinds)
        files["fine-tuned"] = write_predictions(os.path.join(output_dir, "predictions.jsonl"), dataset, answers)
    train = load_clevr(clevr_dir, "train")
    majority = majority_answers(train["answer"], train["question_type"])
    baseline = [majority.get(kind, majority[""]) for kind in kinds]
    models["majority answer per kind"] = score_answers(baseline, references, kinds)
    result = {
        "models": models,
        "table": comparison_table(models),
        "per_type_table": per_type_table(models),
        "split": split,
        "num_questions": len(dataset),
        "clevr_dir": os.path.abspath(clevr_dir),
        "base_model": model_name_or_path or "tiny",
        "adapter": adapter,
        "predictions": files,
    }
    with open(os.path.join(output_dir, "eval_results.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    with open(os.path.join(output_dir, "comparison.md"), "w") as handle:
        handle.write(result["table"] + "\n\n" + result["per_type_table"] + "\n")
    if adapter is not None and os.path.isfile(os.path.join(adapter, TRAINING_ARGS)):
        from hfgen.vqa.card import write_vqa_model_card

        write_vqa_model_card(adapter, result)
    return result
