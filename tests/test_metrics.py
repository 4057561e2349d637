"""Sample-quality metrics: the shipped digits classifier, FID/KID/CMMD/PRDC, the real-data floor, the commands."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import hfgen_cli

import hfgen
from hfgen.errors import ConfigurationError, UnknownNameError
from hfgen.metrics.features import DigitsClassifier, load_feature_extractor
from hfgen.metrics.image_quality import (
    MetricScorer,
    NotEnoughSamplesError,
    classifier_scores,
    cmmd,
    evaluate_images,
    extract_features,
    frechet_distance,
    kernel_inception_distance,
    load_reference_sets,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def digits16():
    return load_reference_sets("digits", resolution=16, num_channels=1)


@pytest.fixture(scope="module")
def scorer(digits16):
    return MetricScorer(digits16, "digits", 16, 1)


def gaussian_blur(images, sigma):
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))


# ---------------------------------------------------------------------------------------------- classifier


def test_shipped_digits_classifier_is_small_low_dimensional_and_accurate_on_held_out_digits(digits16):
    path = os.path.join(REPO, "hfgen", "metrics", "weights", "digits_classifier.safetensors")
    assert os.path.getsize(path) < 1024 * 1024
    model = DigitsClassifier.from_pretrained()
    assert model.num_features <= 64
    test = hfgen.load_image_dataset("digits", split="test")
    with torch.no_grad():
        predictions = model.classify(digits16.reference).argmax(1)
    accuracy = (predictions == torch.tensor(test["label"])).float().mean().item()
    assert accuracy >= 0.97
    features = model(digits16.reference[:5])
    assert features.shape == (5, model.num_features)
    # 3-channel and differently sized inputs are accepted (greyscale + resize)
    rgb = F.interpolate(digits16.reference[:5].repeat(1, 3, 1, 1), size=(32, 32), mode="bilinear")
    assert model(rgb).shape == (5, model.num_features)


def test_corrupt_classifier_weights_give_a_clear_error(tmp_path):
    from hfgen.errors import CheckpointError

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="train_digits_classifier"):
        DigitsClassifier.from_pretrained(str(bad))
    with pytest.raises(CheckpointError, match="missing"):
        DigitsClassifier.from_pretrained(str(tmp_path / "none.safetensors"))


def test_unknown_features_are_named():
    with pytest.raises(UnknownNameError, match="'digits', 'mnist', 'cifar10', 'celeba'.*'clip:PATH'"):
        load_feature_extractor("nope")


def test_inception_features_load_from_safetensors_only(tmp_path):
    from safetensors.torch import save_file

    from hfgen.errors import CheckpointError
    from hfgen.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in FIDInceptionV3().state_dict().items()}
    state["fc.weight"] = torch.zeros(1008, 2048)  # pytorch-fid's file also holds the classifier; it is ignored
    save_file(state, tmp_path / "inception.safetensors")
    extractor = load_feature_extractor(f"inception:{tmp_path / 'inception.safetensors'}")
    assert extractor.num_features == 2048 and not extractor.training
    with torch.no_grad():
        features = extractor(torch.rand(2, 1, 16, 16))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    torch.save(state, tmp_path / "inception.pth")
    with pytest.raises(CheckpointError, match="safetensors only"):
        load_feature_extractor(f"inception:{tmp_path / 'inception.pth'}")
    del state["Mixed_7c.branch_pool.conv.weight"]
    save_file(state, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match="does not hold FID Inception-v3 weights"):
        load_feature_extractor(f"inception:{tmp_path / 'broken.safetensors'}")


def test_clip_features_load_from_a_local_folder_with_random_weights(tmp_path, digits16):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    extractor = load_feature_extractor(f"clip:{tmp_path / 'clip'}")
    assert extractor.num_features == 16
    features = extractor(digits16.reference[:6])
    assert features.shape == (6, 16) and torch.isfinite(features).all()
    metrics = evaluate_images(digits16.floor[:40], digits16, features=extractor)
    assert metrics["num_features"] == 16 and np.isfinite(metrics["fid"]) and "confident_share" not in metrics


# ---------------------------------------------------------------------------------------------- metrics


def test_fid_of_a_set_with_itself_is_zero(scorer):
    features = scorer.reference_features
    assert abs(frechet_distance(features, features)) < 1e-6


def test_fid_grows_monotonically_with_noise_and_with_blur(digits16, scorer):
    clean = digits16.reference
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=generator)

    def fid(images):
        return frechet_distance(scorer.reference_features, extract_features(scorer.extractor, images)[0])

    noisy = [fid((clean + s * noise).clamp(0, 1)) for s in (0.0, 0.1, 0.2, 0.4)]
    assert noisy[0] < 1e-6
    assert all(a < b for a, b in zip(noisy, noisy[1:])), noisy
    blurred = [fid(gaussian_blur(clean, s)) for s in (0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(blurred, blurred[1:])), blurred


def test_kid_between_two_real_splits_is_zero_within_its_std(scorer):
    floor = scorer.floor(1000)
    assert floor["num_images"] == 1000
    assert abs(floor["kid_mean"]) <= 2 * floor["kid_std"], floor
    # and clearly not zero for a degraded set
    generator = torch.Generator().manual_seed(1)
    noisy = (scorer.sets.floor[:500] + 0.3 * torch.randn((500, 1, 16, 16), generator=generator)).clamp(0, 1)
    mean, std = kernel_inception_distance(scorer.reference_features, extract_features(scorer.extractor, noisy)[0])
    assert mean > 3 * std


def test_cmmd_matches_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 12)), rng.normal(loc=0.3, size=(40, 12))

    def reference(x, y, sigma=10.0, scale=1000.0):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        y = y / np.linalg.norm(y, axis=1, keepdims=True)

        def k(a, b):
            d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
            return np.exp(-d2 / (2 * sigma**2)).mean()

        return scale * (k(x, x) + k(y, y) - 2 * k(x, y))

    expected = reference(x, y)
    assert expected > 0
    assert cmmd(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, rel=1e-9)
    assert cmmd(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0.0, abs=1e-12)


def test_classifier_scores_measure_confidence_and_mode_coverage():
    collapsed = torch.full((20, 10), -10.0)
    collapsed[:, 3] = 10.0
    scores = classifier_scores(collapsed)
    assert scores == {"confident_share": 1.0, "class_entropy_bits": 0.0, "classes_covered": 1}
    uniform = torch.eye(10).repeat(3, 1) * 20
    assert classifier_scores(uniform)["class_entropy_bits"] == pytest.approx(np.log2(10))
    unsure = torch.zeros((5, 10))
    assert classifier_scores(unsure)["confident_share"] == 0.0


def test_too_few_samples_give_a_clear_error(digits16):
    with pytest.raises(NotEnoughSamplesError, match="FID with 64-dimensional features needs at least 65 images"):
        evaluate_images(digits16.floor[:20], digits16)


def test_evaluate_images_reports_the_real_data_floor_next_to_each_metric(digits16):
    metrics = evaluate_images(digits16.floor[:300], digits16)
    floor = metrics["real_data_floor"]
    for key in ("fid", "kid_mean", "kid_std", "cmmd", "precision", "recall", "density", "coverage"):
        assert key in metrics and key in floor
    assert floor["num_images"] == metrics["num_images"] == 300
    assert 0 <= metrics["precision"] <= 1 and 0 <= metrics["coverage"] <= 1
    assert metrics["classes_covered"] == 10 and metrics["confident_share"] > 0.9


# ---------------------------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    from helpers import TINY_DDPM

    out = tmp_path_factory.mktemp("eval") / "tiny"
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=4, **TINY_DDPM)
    return out


def test_evaluate_command_writes_metrics_json_and_the_model_card(tiny_trained):
    flags = ["--num_images", 100, "--scheduler", "ddim", "--num_inference_steps", 2]
    result = hfgen_cli("evaluate", tiny_trained, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "real-data floor" in result.stdout
    metrics = json.load(open(tiny_trained / "metrics.json"))
    for key in ("fid", "kid_mean", "kid_std", "cmmd", "precision", "recall", "density", "coverage",
                "images_per_second", "nfe", "real_data_floor"):  # fmt: skip
        assert key in metrics, key
    assert metrics["nfe"] == 2 and metrics["num_images"] == 100 and metrics["images_per_second"] > 0
    assert metrics["real_data_floor"]["num_images"] == 100
    assert metrics["real_data_floor"]["fid"] < metrics["fid"]  # 4 training steps are far from real digits
    # a second evaluation is merged, not overwritten
    result = hfgen_cli("evaluate", tiny_trained, "--num_images", 100, "--scheduler", "dpmsolver++",
                     "--num_inference_steps", 3)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.load(open(tiny_trained / "metrics.json"))
    assert sorted(metrics["evaluations"]) == [
        "DDIMScheduler-2steps-100images",
        "DPMSolverMultistepScheduler-3steps-100images",
    ]
    assert metrics["scheduler"] == "DPMSolverMultistepScheduler"
    from huggingface_hub import ModelCard

    card = ModelCard.load(tiny_trained / "README.md")
    assert {r.metric_type for r in card.data.eval_results} >= {"fid", "kid_mean", "cmmd", "coverage"}
    assert len([r for r in card.data.eval_results if r.metric_type == "fid"]) == 2
    assert card.text.count("## Evaluation") == 1 and "DPMSolverMultistepScheduler" in card.text


def test_evaluate_with_too_few_images_is_one_clear_line(tiny_trained):
    result = hfgen_cli("evaluate", tiny_trained, "--num_images", 10, "--scheduler", "ddim", "--num_inference_steps", 2)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "needs at least 65 images" in result.stderr.strip().splitlines()[-1]


def test_compare_samplers_writes_table_json_and_plot(tiny_trained):
    from hfgen.jobs.compare_samplers import compare_samplers

    rows = compare_samplers(str(tiny_trained), num_images=80, configs=[("ddim", 5), ("dpmsolver++", 3)],
                            extra_configs=[("euler", 2)])  # fmt: skip
    assert [row["scheduler"] for row in rows] == ["ddpm", "ddim", "dpmsolver++", "euler"]
    assert rows[0]["num_inference_steps"] == 50 and rows[0]["speedup_vs_ddpm"] == 1.0
    assert rows[1]["nfe"] == 5 and rows[1]["speedup_vs_ddpm"] > 1.0
    saved = json.load(open(tiny_trained / "sampler_comparison.json"))
    for key in ("scheduler", "num_inference_steps", "fid", "kid_mean", "coverage", "images_per_second",
                "speedup_vs_ddpm"):  # fmt: skip
        assert all(key in row for row in saved), key
    table = (tiny_trained / "sampler_comparison.md").read_text()
    assert "| ddim | 5 | 5 |" in table and "real-data floor" in table
    from PIL import Image

    with Image.open(tiny_trained / "sampler_comparison.png") as plot:
        assert plot.format == "PNG" and plot.width > 300


def test_parse_sampler_configs():
    from hfgen.errors import HfgenError
    from hfgen.jobs.compare_samplers import parse_sampler_configs

    assert parse_sampler_configs("euler:30, unipc:10") == [("euler", 30), ("unipc", 10)]
    assert parse_sampler_configs(None) == []
    with pytest.raises(HfgenError, match="NAME:STEPS"):
        parse_sampler_configs("euler")


def test_training_with_eval_steps_logs_fid_and_keeps_the_best(tmp_path, tiny_ddpm):
    out = tmp_path / "evaluated"
    flags = dict(tiny_ddpm, eval_steps=3, eval_num_images=80, save_best=True, checkpointing_steps=3)
    hfgen.train("ddpm", output_dir=str(out), max_train_steps=6, **flags)
    best = json.load(open(out / "best" / "best_metrics.json"))
    assert best["step"] in (3, 6) and best["num_images"] == 80
    assert (out / "best" / "model_index.json").exists() and (out / "fid.png").exists()
    state = json.load(open(out / "checkpoints" / "checkpoint-6" / "trainer_state.json"))
    assert [s for s, _ in state["eval_history"]["fid"]] == [3, 6]
    assert state["best_fid"] == pytest.approx(min(v for _, v in state["eval_history"]["fid"]))
    assert best["fid"] == pytest.approx(state["best_fid"])
    with pytest.raises(ValueError, match="--save_best needs --eval_steps"):
        hfgen.train("ddpm", output_dir=str(tmp_path / "x"), max_train_steps=1, **dict(tiny_ddpm, save_best=True))
    # coverage and the class metrics of the digits classifier are kept over training too, not only FID
    assert {"fid", "kid_mean", "coverage", "classes_covered", "class_entropy_bits"} <= set(state["eval_history"])
    assert all(1 <= v <= 10 for _, v in state["eval_history"]["classes_covered"])


def test_too_few_eval_images_for_fid_is_refused_before_training(tmp_path, tiny_ddpm):
    out = tmp_path / "few"
    with pytest.raises(ConfigurationError, match=r"--eval_num_images 20 is too few for FID with \d+-dimensional"):
        flags = dict(tiny_ddpm, eval_steps=2, eval_num_images=20)
        hfgen.train("ddpm", output_dir=str(out), max_train_steps=4, **flags)
    assert not (out / "checkpoints").exists()  # refused before the first step, not at the first evaluation


@pytest.mark.unit
def test_a_second_scorer_on_the_same_reference_reuses_its_features_and_floors(digits16, monkeypatch):
    import hfgen.metrics.image_quality as image_quality

    monkeypatch.setattr(image_quality, "_SCORER_CACHE", {})
    calls = []
    extract = image_quality.extract_features
    monkeypatch.setattr(
        image_quality, "extract_features", lambda e, images: calls.append(len(images)) or extract(e, images)
    )
    first = MetricScorer(digits16, "digits", 16, 1)
    floor = first.floor(200)
    assert calls == [len(digits16.reference), 200]
    floor["fid"] = -1.0  # a caller's change to the returned dict never reaches the cache
    second = MetricScorer(digits16, "digits", 16, 1)
    assert calls == [len(digits16.reference), 200]  # nothing extracted again
    assert torch.equal(second.reference_features, first.reference_features)
    assert second.floor(200)["fid"] == first.floor(200)["fid"] > 0
    # other images, another seed or another extractor are scored afresh
    other = image_quality.ReferenceSets(digits16.reference[:300], digits16.floor, "first 300")
    MetricScorer(other, "digits", 16, 1)
    MetricScorer(digits16, "digits", 16, 1, seed=1)
    assert calls == [len(digits16.reference), 200, 300, len(digits16.reference)]
