# Copyright 2020 The HuggingFace Evaluate Authors and the hfgen authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""hfgen's ROUGE metric: the Hub's `evaluate-metric/rouge` with a deterministic mean instead of the bootstrap "mid".

This file is an `evaluate` module script, not a module of the `hfgen` package: load it with
`evaluate.load(hfgen.metrics.ROUGE_PATH)`. `evaluate` copies it into its dynamic-modules cache and imports it from
there, so it must stay self-contained (no relative imports), and it imports `evaluate` as a module and never
`from evaluate import Metric`: `evaluate` takes the first `EvaluationModule` subclass in this file's namespace as the
metric class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Library imports only (no relative ones): `evaluate.load` checks them first and names any missing dependency.
import datasets
import evaluate
from rouge_score import rouge_scorer

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    month = jul,
    year = "2004",
    address = "Barcelona, Spain",
    publisher = "Association for Computational Linguistics",
    url = "https://www.aclweb.org/anthology/W04-1013",
    pages = "74--81",
}
"""

_DESCRIPTION = """\
ROUGE, or Recall-Oriented Understudy for Gisting Evaluation, is a set of metrics and a software package used for
evaluating automatic summarization and machine translation software in natural language processing.
The metrics compare an automatically produced summary or translation against a reference or a set of references
(human-produced) summary or translation.

Note that ROUGE is case insensitive, meaning that upper case letters are treated the same way as lower case letters.

This metric is a wrapper around Google Research reimplementation of ROUGE:
https://github.com/google-research/google-research/tree/master/rouge

It is hfgen's copy of the Hub's `rouge` metric (`evaluate.load("rouge")`, which needs the Hub), shipped inside the
hfgen package so that it loads offline, with one deliberate difference: the aggregate it reports is deterministic.
The Hub metric aggregates with `rouge_score.scoring.BootstrapAggregator` and reports the "mid" (median) of
bootstrap-resampled means, which is random: it changes from run to run (by a little, or by a lot on few examples),
so two evaluations of the same predictions disagree. This metric reports instead the plain arithmetic mean over
examples of each F-measure, which is what the bootstrap "mid" estimates, and is the same on every run.
"""

_KWARGS_DESCRIPTION = """
Calculates average rouge scores for a list of hypotheses and references
Args:
    predictions: list of predictions to score. Each prediction
        should be a string with tokens separated by spaces.
    references: list of reference for each prediction, or list of lists of references (several references
        for each prediction: the best-scoring reference counts, as `rouge_score`'s `score_multi` does).
        Each reference should be a string with tokens separated by spaces.
    rouge_types: A list of rouge types to calculate.
        Valid names:
        `"rouge{n}"` (e.g. `"rouge1"`, `"rouge2"`) where: {n} is the n-gram based scoring,
        `"rougeL"`: Longest common subsequence based scoring.
        `"rougeLsum"`: rougeLsum splits text using `"\\n"`.
        See details in https://github.com/huggingface/datasets/issues/617
        Defaults to `["rouge1", "rouge2", "rougeL", "rougeLsum"]`.
    use_aggregator: Return the mean over examples of each score if this is set to True (the default), else the
        list of per-example scores. Unlike the Hub's `rouge` metric, the mean is the plain arithmetic mean, not the
        bootstrap "mid", so it is deterministic.
    use_stemmer: Bool indicating whether Porter stemmer should be used to strip word suffixes.
    tokenizer: Optional callable that splits a string into a list of tokens (e.g. `str.split`), used instead of
        `rouge_score`'s default tokenizer (which lower-cases and keeps only letters and digits).
Returns:
    rouge1: rouge_1 (f1),
    rouge2: rouge_2 (f1),
    rougeL: rouge_l (f1),
    rougeLsum: rouge_lsum (f1)
    (one entry per requested rouge type: a float with `use_aggregator=True`, else a list with one float per example)
Examples:

    >>> import evaluate, hfgen.metrics
    >>> rouge = evaluate.load(hfgen.metrics.ROUGE_PATH)
    >>> predictions = ["hello there", "general kenobi"]
    >>> references = ["hello there", "general kenobi"]
    >>> results = rouge.compute(predictions=predictions, references=references)
    >>> print(results)
    {'rouge1': 1.0, 'rouge2': 1.0, 'rougeL': 1.0, 'rougeLsum': 1.0}
"""

DEFAULT_ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

_EMPTY_MESSAGE = "ROUGE needs at least one prediction and its reference(s): got an empty list of predictions."


class Tokenizer:
    """Helper class to wrap a callable into a class with a `tokenize` method as used by rouge-score."""

    def __init__(self, tokenizer_func: Callable[[str], list[str]]):
        self.tokenizer_func = tokenizer_func

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer_func(text)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    """ROUGE-N/L/Lsum F-measures, averaged deterministically over examples."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Sequence(datasets.Value("string", id="sequence")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Value("string", id="sequence"),
                    }
                ),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=[
                "https://en.wikipedia.org/wiki/ROUGE_(metric)",
                "https://github.com/google-research/google-research/tree/master/rouge",
            ],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute ROUGE over the given predictions and references (and any added with `add`/`add_batch`).

        An empty list of predictions raises a `ValueError` here, where `evaluate` itself would fail with an
        `IndexError` while inferring the input features from the first example.

        Args:
            predictions (`list[str]`, *optional*): Predictions.
            references (`list[str]` or `list[list[str]]`, *optional*): References.
            **kwargs: `rouge_types`, `use_aggregator`, `use_stemmer`, `tokenizer` (see below).

        Return:
            `dict` or `None`: the scores on the main process (`process_id == 0`), `None` on the others.
        """
        if predictions is not None and len(predictions) == 0:
            raise ValueError(_EMPTY_MESSAGE)
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(
        self, predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False, tokenizer=None
    ):
        if len(predictions) == 0:
            raise ValueError(_EMPTY_MESSAGE)
        if len(predictions) != len(references):
            raise ValueError(
                f"Mismatch in the number of predictions ({len(predictions)}) and references ({len(references)})."
            )
        if rouge_types is None:
            rouge_types = DEFAULT_ROUGE_TYPES
        elif isinstance(rouge_types, str):
            rouge_types = [rouge_types]
        rouge_types = list(rouge_types)
        if not rouge_types:
            raise ValueError(f"`rouge_types` is empty: give at least one of {DEFAULT_ROUGE_TYPES} (or rouge3, ...).")

        multi_ref = isinstance(references[0], list)
        if multi_ref:
            empty = [i for i, refs in enumerate(references) if len(refs) == 0]
            if empty:
                raise ValueError(f"Every prediction needs at least one reference: none for example(s) {empty}.")

        if tokenizer is not None:
            tokenizer = Tokenizer(tokenizer)

        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)
        scores = []
        for ref, pred in zip(references, predictions):
            if multi_ref:
                scores.append(scorer.score_multi(ref, pred))
            else:
                scores.append(scorer.score(ref, pred))

        result = {key: [score[key].fmeasure for score in scores] for key in scores[0]}
        if use_aggregator:
            # The plain mean (math.fsum: correctly rounded, so independent of the order of the examples), where the
            # Hub's metric reports the "mid" of a random bootstrap.
            result = {key: math.fsum(values) / len(values) for key, values in result.items()}
        return result
