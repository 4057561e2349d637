"""Real NVP: exact inversion, log-determinants against autograd Jacobians, densities, pipeline and training."""

from __future__ import annotations

import math

import pytest
import torch

import hfgen
from hfgen.models.realnvp import LOGIT_ALPHA, AffineCoupling, RealNVPModel, nats_to_bits_per_dim, squeeze, unsqueeze
from hfgen.pipelines import FlowPipeline

TINY = {"num_scales": 1, "hidden_channels": 8, "num_blocks": 1}


def randomised(module: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Give every weight (the zero-initialised last s/t layers included) random values, so couplings are not the
    identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return module


def jacobian_log_det(function, x: torch.Tensor) -> float:
    """log|det J| of ``function`` at one input ``x`` (any shape), from `torch.autograd.functional.jacobian`."""
    flat = x.reshape(-1)
    jacobian = torch.autograd.functional.jacobian(lambda v: function(v.reshape(x.shape)).reshape(-1), flat)
    return torch.linalg.slogdet(jacobian)[1].item()


@pytest.mark.parametrize("mask", ["checkerboard", "channel"])
@pytest.mark.parametrize("parity", [0, 1])
def test_coupling_log_det_matches_the_jacobian_and_inverts(mask, parity):
    layer = randomised(AffineCoupling(2, mask, parity, hidden_channels=4, num_blocks=1)).double()
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.double)
    y, log_det = layer(x)
    assert not torch.allclose(y, x), "a randomised coupling is not the identity"
    assert log_det.item() == pytest.approx(jacobian_log_det(lambda v: layer(v)[0], x), abs=1e-8)
    back, inverse_log_det = layer(y, reverse=True)
    torch.testing.assert_close(back, x)
    torch.testing.assert_close(inverse_log_det, -log_det)


def test_squeeze_is_a_volume_preserving_permutation():
    x = torch.randn(1, 2, 4, 4, dtype=torch.double)
    assert squeeze(x).shape == (1, 8, 2, 2)
    torch.testing.assert_close(unsqueeze(squeeze(x)), x)
    assert jacobian_log_det(squeeze, x) == pytest.approx(0.0, abs=1e-10)
    assert sorted(squeeze(x).flatten().tolist()) == sorted(x.flatten().tolist())


def test_logit_transform_log_det_matches_the_jacobian():
    y = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.double) * 0.98 + 0.01
    _, log_det = RealNVPModel._logit(y)
    assert log_det.item() == pytest.approx(jacobian_log_det(lambda v: RealNVPModel._logit(v)[0], y), abs=1e-8)


@pytest.mark.parametrize("num_scales", [0, 1, 2])
def test_whole_flow_log_det_matches_the_jacobian(num_scales):
    model = randomised(RealNVPModel(sample_size=8, num_scales=num_scales, hidden_channels=4, num_blocks=1)).double()
    h = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.double)
    latents, log_det = model.flow_forward(h)
    assert latents.shape == (1, 64)
    assert log_det.item() == pytest.approx(jacobian_log_det(lambda v: model.flow_forward(v)[0], h), abs=1e-6)


def test_inverse_of_forward_is_the_identity_in_float32():
    model = randomised(RealNVPModel(sample_size=16, num_scales=2, hidden_channels=8, num_blocks=1), std=0.05)
    generator = torch.Generator().manual_seed(4)
    h = torch.randn(8, 1, 16, 16, generator=generator)
    latents, _ = model.flow_forward(h)
    assert (model.flow_inverse(latents) - h).abs().max().item() < 1e-4
    images = torch.rand(8, 1, 16, 16, generator=generator) * 2 - 1
    output = model(images, dequantize=False)
    assert (model.inverse(output.latents) - images).abs().max().item() < 1e-4


def test_log_prob_of_an_identity_flow_is_the_closed_form():
    model = RealNVPModel(sample_size=8, **TINY)  # zero-initialised s/t outputs: every coupling is the identity
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    y = ((images + 1) * 127.5 + 0.5) / 256
    p = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * y
    z = torch.log(p) - torch.log1p(-p)
    normal = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
    log_det = (math.log(1 - 2 * LOGIT_ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
    torch.testing.assert_close(model.log_prob(images, dequantize=False), normal + log_det, rtol=1e-5, atol=1e-3)


def test_bits_per_dim_is_nats_per_dim_plus_the_dequantisation_offset():
    model = randomised(RealNVPModel(sample_size=8, **TINY), std=0.05)
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(6)) * 2 - 1
    nll = -model.log_prob(images, generator=torch.Generator().manual_seed(7))
    bits = model.bits_per_dim(images, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(bits, (nll + 64 * math.log(256)) / (64 * math.log(2)))
    torch.testing.assert_close(nats_to_bits_per_dim(nll, 64), bits)


def test_dequantisation_noise_stays_inside_each_pixel_bin():
    model = RealNVPModel(sample_size=8, **TINY)
    images = torch.randint(0, 256, (2, 1, 8, 8)).float() / 127.5 - 1
    y = model.dequantize(images, generator=torch.Generator().manual_seed(8))
    values = (images + 1) * 127.5
    assert torch.all(y * 256 >= values - 1e-4) and torch.all(y * 256 < values + 1 + 1e-4)


def test_sizes_that_cannot_be_squeezed_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        RealNVPModel(sample_size=12, num_scales=3)


def test_train_sample_save_and_load(tmp_path):
    out = tmp_path / "flow"
    result = hfgen.train(
        "realnvp", output_dir=str(out), max_train_steps=20, train_batch_size=16, logger="none", lr_warmup_steps=0,
        save_images_steps=10, checkpointing_steps=1000, **TINY,
    )  # fmt: skip
    losses = [v for _, v in result.loss_history["loss"]]
    assert losses[-1] < losses[0], "training lowers bits/dim"
    held_out = result.loss_history["held_out_bits_per_dim"]  # measured on the 360 test digits at each grid
    assert [step for step, _ in held_out] == [10, 20] and held_out[1][1] < held_out[0][1]
    pipeline = FlowPipeline.from_pretrained(str(out))
    pipeline.set_progress_bar_config(disable=True)
    assert type(hfgen.load_pipeline(str(out))) is FlowPipeline
    images = pipeline(batch_size=2, output_type="np", generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 16, 16, 1) and images.min() >= 0 and images.max() <= 1
    again = pipeline(batch_size=2, output_type="np", generator=torch.Generator().manual_seed(0)).images
    assert (images == again).all()
    real = torch.rand(3, 1, 16, 16) * 2 - 1
    reconstructed = pipeline.reconstruct(real, output_type="pt").images
    assert (reconstructed * 2 - 1 - real).abs().max() < 1e-3
    bits = pipeline.bits_per_dim(real, generator=torch.Generator().manual_seed(1))
    assert bits.shape == (3,) and torch.isfinite(bits).all()
    metrics = pipeline.likelihood_metrics(real, generator=torch.Generator().manual_seed(1))
    assert metrics["bits_per_dim"] == pytest.approx(float(bits.mean()), rel=1e-4)


def test_png_baseline_counts_the_png_bytes():
    import io

    from PIL import Image

    from hfgen.metrics.likelihood import png_bits_per_dim, png_bits_per_image

    generator = torch.Generator().manual_seed(9)
    flat = torch.zeros(1, 1, 16, 16)
    noise = torch.randint(0, 256, (1, 1, 16, 16), generator=generator).float() / 127.5 - 1
    buffer = io.BytesIO()
    array = ((noise[0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    assert png_bits_per_image(noise).item() == 8 * buffer.tell()
    assert png_bits_per_image(flat).item() < png_bits_per_image(noise).item()  # a constant image compresses
    many = torch.cat([flat] * 64)
    figures = png_bits_per_dim(many)
    assert figures["png_tiled_bits_per_dim"] < figures["png_bits_per_dim"] / 10  # shared header and redundancy


def test_evaluate_reports_bits_per_dim_next_to_png(tmp_path):
    from hfgen.jobs.evaluate import evaluate_pipeline

    out = tmp_path / "flow"
    hfgen.train(
        "realnvp", output_dir=str(out), max_train_steps=3, train_batch_size=16, logger="none",
        save_images_steps=1000, checkpointing_steps=1000, **TINY,
    )  # fmt: skip
    metrics = evaluate_pipeline(str(out), num_images=66, batch_size=66)
    assert metrics["nfe"] == 1 and metrics["num_likelihood_images"] == 360
    expected = nats_to_bits_per_dim(torch.tensor(metrics["nll_nats"]), 256).item()
    assert metrics["bits_per_dim"] == pytest.approx(expected, rel=1e-6)
    assert 0 < metrics["png_tiled_bits_per_dim"] < metrics["png_bits_per_dim"]


def test_auroc_and_ood_detection(tmp_path):
    from hfgen.errors import DatasetError, HfgenError
    from hfgen.jobs.ood import auroc, detect_ood

    assert auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])) == 0.5
    out = tmp_path / "flow"
    hfgen.train(
        "realnvp", output_dir=str(out), max_train_steps=2, train_batch_size=16, logger="none",
        save_images_steps=1000, checkpointing_steps=1000, **TINY,
    )  # fmt: skip
    rows = detect_ood(str(out), ["noise", "constant", "flipped"])
    assert [row["ood"] for row in rows[1:]] == ["noise", "constant", "flipped"]
    for row in rows[1:]:
        assert all(0 <= row[f"auroc_{s}"] <= 1 for s in ("nll", "typicality", "complexity"))
    for name in ("ood.md", "ood.json", "ood_histograms.png"):
        assert (out / "ood" / name).is_file()
    with pytest.raises(DatasetError, match="neither a built-in"):
        detect_ood(str(out), ["no-such-set"])
    vae = tmp_path / "vae"
    hfgen.train("vae", output_dir=str(vae), max_train_steps=1, logger="none", block_out_channels=[8, 16])
    with pytest.raises(HfgenError, match="no exact likelihood"):
        detect_ood(str(vae), ["noise"])


def test_clevr_ood_set_is_drawn_by_the_vqa_generator():
    from hfgen.jobs.ood import load_ood_images

    in_images = torch.zeros(6, 1, 16, 16)
    scenes = load_ood_images("clevr", in_images, seed=3)
    assert scenes.shape == (6, 1, 16, 16) and -1 <= scenes.min() and scenes.max() <= 1
    assert scenes.std() > 0.05  # objects on a floor, not a blank image
    assert torch.equal(scenes, load_ood_images("clevr", in_images, seed=3))
    assert not torch.equal(scenes, load_ood_images("clevr", in_images, seed=4))
