"""`hfgen compare`: every family trained and measured side by side, reuse and retraining, failures kept apart."""

import json
import math

import pytest
from helpers import error_line, hfgen_cli

from hfgen.jobs.compare import _convert, _typed_flags, parse_family_flags, trilemma_scores
from hfgen.training.objectives import get_objective

ROW_KEYS = ("fid", "fid_floor", "precision", "recall", "coverage", "nfe", "images_per_second", "train_seconds",
            "num_parameters", "bits_per_dim")  # fmt: skip


def _rows(folder):
    with open(folder / "compare.json") as handle:
        return json.load(handle)["rows"]


def test_compare_trains_measures_reuses_and_retrains(tmp_path):
    out = tmp_path / "c"
    flags = ["--models", "vae,dcgan", "--max_train_steps", "30", "--num_images", "100", "--output_dir", out]
    first = hfgen_cli("compare", *flags)
    assert "Training vae" in first.stderr  # the loop's progress bar is captured: its absence below means something
    assert first.returncode == 0, first.stderr
    for name in ("compare.md", "compare.json", "trilemma.png", "samples.png"):
        assert (out / name).stat().st_size > 0, name
    rows = _rows(out)
    assert [row["model"] for row in rows] == ["vae", "dcgan"]
    for row in rows:
        assert row["status"] == "ok"
        assert all(key in row for key in ROW_KEYS), row
        assert row["train_steps"] == 30 and row["reused"] is False
        assert row["fid"] > row["fid_floor"] > 0
        assert row["nfe"] == 1 and row["images_per_second"] > 0 and row["num_parameters"] > 1000
    vae, dcgan = rows
    assert vae["bits_per_dim"] > 0 and vae["likelihood"] == "negative ELBO bound"
    assert dcgan["bits_per_dim"] is None  # a GAN has no likelihood
    assert dcgan["num_parameters"] > dcgan["num_sampling_parameters"]  # the discriminator counted, not sampled
    assert "vae (" in first.stdout and "real-data floor" in first.stdout
    assert "vae: start" in first.stderr and "dcgan: done" in first.stderr

    again = hfgen_cli("compare", *flags)
    assert again.returncode == 0, again.stderr
    reused = _rows(out)
    assert all(row["reused"] for row in reused)
    assert "Training" not in again.stderr  # no progress bar of the training loop: nothing trained
    assert [row["fid"] for row in reused] == pytest.approx([row["fid"] for row in rows])  # same folder, same seed

    changed = hfgen_cli("compare", *flags[:3], "31", *flags[4:])  # other settings, same folders
    assert changed.returncode == 1  # every family refused: reusing would mix two runs
    assert _rows(out)[0]["status"] == "failed" and "--retrain" in _rows(out)[0]["error"]

    retrained = hfgen_cli("compare", *flags, "--models", "dcgan", "--retrain")
    assert retrained.returncode == 0, retrained.stderr
    assert _rows(out)[0]["reused"] is False


def test_a_failing_family_fails_alone(tmp_path):
    out = tmp_path / "c"
    flags = ["--models", "vae,dcgan", "--max_train_steps", "10", "--num_images", "70", "--output_dir", out,
             "--family_flags", "vae.latent_dim=0"]  # fmt: skip
    result = hfgen_cli("compare", *flags)
    assert result.returncode == 0, result.stderr
    vae, dcgan = _rows(out)
    assert vae["status"] == "failed" and "latent_dim" in vae["error"]
    assert dcgan["status"] == "ok" and dcgan["fid"] > 0
    assert "failed: " in (out / "compare.md").read_text()
    strict = hfgen_cli("compare", *flags, "--strict")
    assert strict.returncode == 1 and "1 family failed: vae" in strict.stderr


def test_bad_compare_input_is_one_clear_line(tmp_path):
    unknown = error_line(hfgen_cli("compare", "--models", "vae,stylegan", "--output_dir", tmp_path))
    assert "stylegan" in unknown and "ddpm" in unknown and "wgan-gp" in unknown  # the valid ones listed
    assert "--budget_minutes must be a positive" in error_line(hfgen_cli("compare", "--budget_minutes", "0"))
    both = error_line(hfgen_cli("compare", "--budget_minutes", "1", "--max_train_steps", "5"))
    assert "not both" in both
    assert "MODEL.FLAG=VALUE" in error_line(hfgen_cli("compare", "--family_flags", "latent_dim=3"))
    assert "not in --models" in error_line(hfgen_cli("compare", "--models", "vae", "--family_flags", "ddpm.use_ema=1"))


def test_family_flags_take_the_types_of_the_train_flags():
    assert parse_family_flags("ddpm.block_out_channels=16,32;vae.beta=4", ["vae", "ddpm"]) == {
        "ddpm": {"block_out_channels": "16,32"}, "vae": {"beta": "4"}}  # fmt: skip
    ddpm = _typed_flags(get_objective("ddpm"), {"block_out_channels": "16,32", "use_ema": "false",
                                                "learning_rate": "2e-4"})  # fmt: skip
    assert ddpm == {"block_out_channels": [16, 32], "use_ema": False, "learning_rate": 2e-4}
    with pytest.raises(ValueError, match="no flag --beta"):
        _typed_flags(get_objective("ddpm"), {"beta": "4"})
    with pytest.raises(ValueError, match="takes a int"):
        _convert("many", int, "latent_dim")


def test_trilemma_scores_put_the_floor_and_the_fastest_sampler_on_the_outer_edge():
    common = {"status": "ok", "fid_floor": 2.0, "coverage_floor": 0.8}
    rows = [
        {**common, "model": "gan", "sampler": "default", "fid": 4.0, "coverage": 0.2, "images_per_second": 10000.0},
        {**common, "model": "ddpm", "sampler": "ddpm-1000", "fid": 2.0, "coverage": 0.9, "images_per_second": 10.0},
        {"model": "vae", "sampler": None, "status": "failed", "error": "x"},
    ]
    scores = trilemma_scores(rows)
    assert set(scores) == {"gan (default)", "ddpm (ddpm-1000)"}  # the failed family has no triangle
    assert scores["gan (default)"] == pytest.approx((0.5, 0.25, 1.0))
    quality, coverage, speed = scores["ddpm (ddpm-1000)"]
    assert (quality, coverage) == (1.0, 1.0)  # at the floor; coverage above the floor's is capped
    assert speed == pytest.approx(1 - math.log10(1000) / 4)  # 1000x slower than the fastest


def test_mixed_precision_bf16_samples_only_the_diffusion_families_in_bf16(tmp_path):
    out = tmp_path / "c"
    tiny_ddpm = "ddpm.block_out_channels=8,16;ddpm.attention_levels=none;ddpm.norm_num_groups=4;ddpm.ddpm_num_steps=50"
    result = hfgen_cli("compare", "--models", "vae,ddpm", "--max_train_steps", "2", "--num_images", "70",
                       "--output_dir", out, "--mixed_precision", "bf16", "--family_flags", tiny_ddpm)  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = json.loads((out / "compare.json").read_text())
    assert written["mixed_precision"] == "bf16" and "--mixed_precision bf16" in written["command"]
    vae, *ddpm = written["rows"]
    assert vae["mixed_precision"] == "no" and "bf16" not in vae["sampler"]  # one network evaluation: nothing to gain
    assert len(ddpm) == 3 and all(row["mixed_precision"] == "bf16" and "bf16 UNet" in row["sampler"] for row in ddpm)
    assert "ddpm (ddpm-50, bf16 UNet)" in (out / "compare.md").read_text()
    line = error_line(hfgen_cli("compare", "--models", "vae", "--mixed_precision", "fp16"))
    assert "--mixed_precision must be one of no, bf16, got 'fp16'" in line
