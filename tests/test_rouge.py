"""hfgen's own ROUGE `evaluate` module (hfgen/metrics/rouge/rouge.py): offline loading, parity with rouge_score."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import evaluate
import pytest
from rouge_score import rouge_scorer

import hfgen
import hfgen.metrics

pytestmark = pytest.mark.unit  # `make test-fast`

REPO = Path(__file__).resolve().parent.parent
ALL_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

PREDICTIONS = [
    "a red cube",
    "the cat sat on the mat",
    "There are two large metal spheres behind the cylinder",
    "running dogs jumped over fences",
    "first line of a summary\nsecond line of it",
    "completely unrelated words",
]
REFERENCES = [
    "the red cube",
    "the cat is sitting on the mat",
    "two big metallic spheres are behind a green cylinder",
    "the dog runs and jumps over the fence",
    "second line of a summary\nfirst line of it",
    "nothing in common here",
]
MULTI_REFERENCES = [
    ["the red cube", "a red cube"],
    ["a cat on a mat", "the cat is sitting on the mat", "mat"],
    ["two big metallic spheres are behind a green cylinder"],
    ["dogs run", "the dog runs and jumps over the fence"],
    ["first line of a summary\nsecond line", "another reference"],
    ["nothing in common here", "still nothing"],
]


@pytest.fixture(scope="module")
def rouge(tmp_path_factory):
    """The metric, loaded once for the module from the path the package exposes."""
    return evaluate.load(hfgen.metrics.ROUGE_PATH, cache_dir=str(tmp_path_factory.mktemp("evaluate")))


@pytest.fixture
def fresh_rouge(tmp_path):
    """A metric of its own, for tests that make `compute` fail: evaluate keeps the half-initialised writer (and its
    selected input format) of a failed `compute`, so the next `compute` on that instance would inherit it."""
    return evaluate.load(hfgen.metrics.ROUGE_PATH, cache_dir=str(tmp_path))


def direct_scores(references, predictions, rouge_types=ALL_TYPES, use_stemmer=False, tokenizer=None):
    """Per-example F-measures computed by rouge_score itself, without evaluate."""
    scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)
    scores = [
        scorer.score_multi(ref, pred) if isinstance(ref, list) else scorer.score(ref, pred)
        for ref, pred in zip(references, predictions)
    ]
    return {key: [score[key].fmeasure for score in scores] for key in rouge_types}


# -- where it lives and how it loads --------------------------------------------------------------------------------


def test_rouge_path_is_a_script_shipped_inside_the_package():
    path = Path(hfgen.metrics.ROUGE_PATH)
    assert path.is_absolute() and path.is_file() and path.name == "rouge.py"
    package_dir = Path(hfgen.__file__).resolve().parent
    assert path.parent.parent == Path(hfgen.metrics.__file__).resolve().parent
    assert path.is_relative_to(package_dir)
    # A metric script folder, not a Python package of hfgen: nothing imports it but evaluate.
    assert not (path.parent / "__init__.py").exists()
    # setup.cfg ships it as package data of hfgen.metrics, so a non-editable install carries it too.
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["hfgen.metrics"].split(",")]
    relative = path.relative_to(Path(hfgen.metrics.__file__).resolve().parent).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), (relative, patterns)


def test_loads_offline_without_any_network_call(monkeypatch, tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by conftest.py before evaluate is imported

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while loading the local ROUGE module: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    rouge_dir = Path(hfgen.metrics.ROUGE_PATH).parent
    before = sorted(p.name for p in rouge_dir.iterdir() if p.name != "__pycache__")

    metric = evaluate.load(hfgen.metrics.ROUGE_PATH, cache_dir=str(tmp_path))
    scores = metric.compute(predictions=["a red cube"], references=["the red cube"])

    assert isinstance(metric, evaluate.Metric) and type(metric).__name__ == "Rouge"
    assert metric.name == "rouge"
    expected = direct_scores(["the red cube"], ["a red cube"])
    assert scores == pytest.approx({key: values[0] for key, values in expected.items()})
    # evaluate copies the script into its modules cache; the package folder is left as it was.
    assert type(metric).__module__.startswith("evaluate_modules.")
    assert sorted(p.name for p in rouge_dir.iterdir() if p.name != "__pycache__") == before


def test_loads_from_its_folder_too(tmp_path):
    metric = evaluate.load(str(Path(hfgen.metrics.ROUGE_PATH).parent), cache_dir=str(tmp_path))
    assert type(metric).__name__ == "Rouge"


def test_acceptance_command_offline(tmp_path):
    """The issue's one-liner, in a fresh process with HF_HUB_OFFLINE=1 and the sockets cut, from outside the repo."""
    code = (
        "import socket\n"
        "def _no_network(*a, **k): raise OSError('network access attempted')\n"
        "socket.socket.connect = socket.create_connection = socket.getaddrinfo = _no_network\n"
        "import evaluate, hfgen.metrics; m = evaluate.load(hfgen.metrics.ROUGE_PATH); "
        "print(m.compute(predictions=['a red cube'], references=['the red cube']))"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),  # a cold modules cache: nothing cached from earlier loads
        "HF_EVALUATE_CACHE": str(tmp_path / "evaluate"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("HF_EVALUATE_OFFLINE", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    scores = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    expected = {key: values[0] for key, values in direct_scores(["the red cube"], ["a red cube"]).items()}
    assert scores == pytest.approx(expected)
    assert scores["rouge1"] == pytest.approx(2 / 3) and scores["rouge2"] == pytest.approx(0.5)
    assert list((tmp_path / "modules").rglob("rouge.py")), "evaluate imports its own copy from the modules cache"


def test_describes_itself_like_the_hub_metric(rouge):
    assert "lin-2004-rouge" in rouge.citation
    assert "deterministic" in rouge.description and '"mid"' in rouge.description
    for argument in ["rouge_types", "use_aggregator", "use_stemmer", "tokenizer"]:
        assert argument in rouge.inputs_description
    assert "use_aggregator" in rouge.compute.__doc__  # evaluate appends the inputs description
    # Like the Hub metric: one reference (a string) or several (a sequence of strings) per prediction.
    features = rouge.info.features
    assert isinstance(features, list) and len(features) == 2
    assert all(f["predictions"] == datasets.Value("string", id="sequence") for f in features)
    assert features[0]["references"] == datasets.Sequence(datasets.Value("string", id="sequence"))
    assert features[1]["references"] == datasets.Value("string", id="sequence")


# -- parity with rouge_score -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_matches_rouge_score_single_reference(rouge, use_stemmer):
    expected = direct_scores(REFERENCES, PREDICTIONS, use_stemmer=use_stemmer)
    per_example = rouge.compute(
        predictions=PREDICTIONS, references=REFERENCES, use_stemmer=use_stemmer, use_aggregator=False
    )
    assert per_example == expected  # same library, same arithmetic: exactly equal
    mean = rouge.compute(predictions=PREDICTIONS, references=REFERENCES, use_stemmer=use_stemmer)
    assert mean == pytest.approx({key: sum(values) / len(values) for key, values in expected.items()}, abs=1e-12)


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_matches_rouge_score_multiple_references(rouge, use_stemmer):
    expected = direct_scores(MULTI_REFERENCES, PREDICTIONS, use_stemmer=use_stemmer)
    per_example = rouge.compute(
        predictions=PREDICTIONS, references=MULTI_REFERENCES, use_stemmer=use_stemmer, use_aggregator=False
    )
    assert per_example == expected
    # The best reference counts: "a red cube" has an exact reference.
    assert per_example["rouge1"][0] == 1.0 and per_example["rouge2"][0] == 1.0


def test_stemmer_changes_scores(rouge):
    plain = rouge.compute(predictions=["running dogs"], references=["the dog runs"])
    stemmed = rouge.compute(predictions=["running dogs"], references=["the dog runs"], use_stemmer=True)
    assert plain["rouge1"] == 0.0 and stemmed["rouge1"] == pytest.approx(0.8)


def test_rougelsum_splits_on_newlines(rouge):
    prediction, reference = "first line of a summary\nsecond line of it", "second line of a summary\nfirst line of it"
    scores = rouge.compute(predictions=[prediction], references=[reference])
    expected = direct_scores([reference], [prediction])
    assert scores["rougeLsum"] == expected["rougeLsum"][0]
    assert scores["rougeLsum"] != scores["rougeL"]


def test_tokenizer_callable_is_used(rouge):
    # rouge_score's default tokenizer lower-cases; str.split does not.
    default = rouge.compute(predictions=["A Red cube"], references=["a red cube"])
    split = rouge.compute(predictions=["A Red cube"], references=["a red cube"], tokenizer=str.split)
    assert default["rouge1"] == 1.0
    assert split["rouge1"] == pytest.approx(1 / 3)

    class Split:
        def tokenize(self, text):
            return text.split()

    assert split == {
        key: values[0] for key, values in direct_scores(["a red cube"], ["A Red cube"], tokenizer=Split()).items()
    }


# -- aggregation ----------------------------------------------------------------------------------------------------


def test_mean_is_the_mean_of_per_example_scores(rouge):
    per_example = rouge.compute(predictions=PREDICTIONS, references=MULTI_REFERENCES, use_aggregator=False)
    mean = rouge.compute(predictions=PREDICTIONS, references=MULTI_REFERENCES, use_aggregator=True)
    assert set(mean) == set(ALL_TYPES)
    for key in ALL_TYPES:
        assert isinstance(mean[key], float)
        assert mean[key] == math.fsum(per_example[key]) / len(PREDICTIONS)
    # The default is the aggregate.
    assert rouge.compute(predictions=PREDICTIONS, references=MULTI_REFERENCES) == mean


def test_deterministic_across_runs_and_seeds(tmp_path):
    """The Hub metric's bootstrap "mid" depends on numpy's seed; the mean does not."""
    results = []
    for seed in [0, 1, 12345]:
        metric = evaluate.load(hfgen.metrics.ROUGE_PATH, cache_dir=str(tmp_path / str(seed)), seed=seed)
        results.append(metric.compute(predictions=PREDICTIONS, references=REFERENCES))
        results.append(metric.compute(predictions=PREDICTIONS, references=REFERENCES))
    assert all(result == results[0] for result in results)
    # Order of the examples does not matter either.
    reversed_result = metric.compute(predictions=PREDICTIONS[::-1], references=REFERENCES[::-1])
    assert reversed_result == results[0]


def test_use_aggregator_false_returns_per_example_lists(rouge):
    scores = rouge.compute(predictions=PREDICTIONS, references=REFERENCES, use_aggregator=False)
    assert set(scores) == set(ALL_TYPES)
    for values in scores.values():
        assert isinstance(values, list) and len(values) == len(PREDICTIONS)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)
    assert scores["rouge1"][-1] == 0.0


def test_rouge_types_subset(rouge):
    full = rouge.compute(predictions=PREDICTIONS, references=REFERENCES)
    subset = rouge.compute(predictions=PREDICTIONS, references=REFERENCES, rouge_types=["rouge2", "rougeL"])
    assert subset == {"rouge2": full["rouge2"], "rougeL": full["rougeL"]}
    single = rouge.compute(predictions=PREDICTIONS, references=REFERENCES, rouge_types="rouge1")
    assert single == {"rouge1": full["rouge1"]}
    rouge3 = rouge.compute(
        predictions=PREDICTIONS, references=REFERENCES, rouge_types=["rouge3"], use_aggregator=False
    )
    assert rouge3 == direct_scores(REFERENCES, PREDICTIONS, rouge_types=["rouge3"])


def test_add_batch_then_compute_equals_one_compute(rouge):
    rouge.add_batch(predictions=PREDICTIONS[:3], references=REFERENCES[:3])
    rouge.add_batch(predictions=PREDICTIONS[3:], references=REFERENCES[3:])
    assert rouge.compute() == rouge.compute(predictions=PREDICTIONS, references=REFERENCES)


# -- errors ---------------------------------------------------------------------------------------------------------


def test_empty_predictions_raise_a_clear_error(fresh_rouge):
    with pytest.raises(ValueError, match="at least one prediction"):
        fresh_rouge.compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="at least one prediction"):
        fresh_rouge.compute(predictions=[], references=["the red cube"])


def test_mismatched_lengths_raise_a_clear_error(fresh_rouge):
    with pytest.raises(ValueError, match=r"Mismatch in the number of predictions \(2\) and references \(1\)"):
        fresh_rouge.compute(predictions=["a red cube", "a blue ball"], references=["the red cube"])


def test_example_without_references_raises(fresh_rouge):
    with pytest.raises(ValueError, match=r"at least one reference.*\[1\]"):
        fresh_rouge.compute(predictions=["a red cube", "a blue ball"], references=[["the red cube"], []])


def test_unknown_rouge_type_raises(fresh_rouge):
    with pytest.raises(ValueError, match="rougeX"):
        fresh_rouge.compute(predictions=PREDICTIONS, references=REFERENCES, rouge_types=["rougeX"])
