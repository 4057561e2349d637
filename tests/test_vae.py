"""The VAE / β-VAE and the deterministic autoencoder: the loss terms against textbook formulas, training that
improves the held-out ELBO, the latent-space pipeline methods, save/load, `hfgen explore`, `hfgen evaluate` and the
errors of the command line."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import error_line, quiet, run_cli
from PIL import Image
from torch.distributions import Bernoulli, Normal, kl_divergence

import hfgen
from hfgen.cli import main
from hfgen.errors import ConfigurationError, HfgenError, ImageShapeError, UnsupportedOperationError
from hfgen.models.autoencoder import AutoencoderModel
from hfgen.models.vae import DiagonalGaussianDistribution, VAEModel
from hfgen.pipelines import AutoencoderPipeline, VAEPipeline
from hfgen.pipelines.utils import slerp

# Tiny runs: 2 levels of 8/16 channels at 16x16, no warm-up, constant LR, no periodic grids/checkpoints on the way.
TINY = {
    "block_out_channels": [8, 16],
    "train_batch_size": 32,
    "logger": "none",
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,
    "learning_rate": 3e-3,
    "save_images_steps": 10_000,
    "checkpointing_steps": 10_000,
    "seed": 0,
}
FIGURES = ("reconstructions", "prior_samples", "latent_map", "latent_manifold", "traversal", "morphing",
           "attribute_vector")  # fmt: skip

# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def held_out():
    """The digits test split at 16x16 (never trained on): images in [-1, 1] and labels."""
    from hfgen.data.images import images_to_tensor, load_image_dataset

    images, labels = images_to_tensor(load_image_dataset("digits", split="test"), resolution=16, num_channels=1)
    assert images.shape == (360, 1, 16, 16)
    return images, torch.as_tensor(labels)


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A tiny VAE (4 latent dimensions) trained 300 steps on digits (~4 s)."""
    output_dir = tmp_path_factory.mktemp("vae") / "tiny-vae"
    result = hfgen.train("vae", output_dir=str(output_dir), max_train_steps=300, latent_dim=4, **TINY)
    assert result.global_step == 300
    return output_dir


@pytest.fixture(scope="module")
def vae(tiny_vae_dir) -> VAEPipeline:
    return quiet(VAEPipeline.from_pretrained(str(tiny_vae_dir)))


@pytest.fixture(scope="module")
def tiny_autoencoder_dir(tmp_path_factory) -> Path:
    """A tiny autoencoder trained 150 steps on digits by `hfgen train autoencoder`; its loss must halve."""
    output_dir = tmp_path_factory.mktemp("ae") / "tiny-autoencoder"
    result = hfgen.train("autoencoder", output_dir=str(output_dir), max_train_steps=150, latent_dim=2, **TINY)
    losses = [value for _, value in result.loss_history["loss"]]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, "the autoencoder did not learn"
    return output_dir


@pytest.fixture(scope="module")
def autoencoder(tiny_autoencoder_dir) -> AutoencoderPipeline:
    pipeline = quiet(hfgen.load_pipeline(str(tiny_autoencoder_dir)))
    assert type(pipeline) is AutoencoderPipeline
    return pipeline


@pytest.fixture(scope="module")
def acceptance_dir(tmp_path_factory) -> Path:
    """The acceptance command, verbatim: `hfgen train vae --max_train_steps 30 --output_dir DIR`."""
    output_dir = tmp_path_factory.mktemp("acceptance") / "vae-digits"
    try:
        main(["train", "vae", "--max_train_steps", "30", "--output_dir", str(output_dir)])
    except SystemExit as exit_:  # main() only exits on errors
        pytest.fail(f"hfgen train vae exited with {exit_.code}")
    return output_dir


# ------------------------------------------------------------------------------------------------ 1. KL


def test_kl_matches_the_closed_form_and_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    logvar = torch.rand(6, 5, generator=g, dtype=torch.float64) * 6 - 3
    posterior = DiagonalGaussianDistribution(torch.cat([mu, logvar], dim=1))
    sigma = torch.exp(0.5 * logvar)

    direct = 0.5 * (mu**2 + sigma**2 - 1 - torch.log(sigma**2)).sum(-1)
    reference = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(-1)
    assert posterior.kl().shape == (6,)
    torch.testing.assert_close(posterior.kl(), direct)
    torch.testing.assert_close(posterior.kl(), reference)
    torch.testing.assert_close(posterior.kl_per_dim(), kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)))
    assert (posterior.kl() > 0).all()
    torch.testing.assert_close(posterior.mode(), mu)

    # KL(q || N(0, I)) is 0 exactly at q = N(0, I)
    standard = DiagonalGaussianDistribution(torch.zeros(3, 10, dtype=torch.float64))
    assert torch.equal(standard.kl(), torch.zeros(3, dtype=torch.float64))

    # against another diagonal Gaussian
    mu2, logvar2 = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g).double()
    other = DiagonalGaussianDistribution(torch.cat([mu2, logvar2], dim=1))
    expected = kl_divergence(Normal(mu, sigma), Normal(mu2, torch.exp(0.5 * logvar2))).sum(-1)
    torch.testing.assert_close(posterior.kl(other), expected)


def test_posterior_sample_is_the_reparameterisation():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    posterior = DiagonalGaussianDistribution(torch.cat([mu, logvar], dim=1))
    z = posterior.sample(generator=torch.Generator().manual_seed(7))
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)


def test_model_kl_is_the_kl_of_the_encoder_outputs(held_out):
    torch.manual_seed(0)
    model = VAEModel(latent_dim=3, block_out_channels=(8, 16))
    images = held_out[0][:16]
    with torch.no_grad():
        output = model(images, generator=torch.Generator().manual_seed(0))
        mu, logvar = model.encoder(images).chunk(2, dim=1)
    sigma = torch.exp(0.5 * logvar)
    torch.testing.assert_close(output.kl, kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(-1))
    torch.testing.assert_close(output.latent_dist.mean, mu)
    eps = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(output.latents, mu + sigma * eps)  # z ~ q(z|x) with the given generator


# ------------------------------------------------------------------------------------------- 2. ELBO


def test_training_improves_the_held_out_elbo_and_reconstructions(vae, held_out):
    images = held_out[0]
    torch.manual_seed(0)  # the trainer's initialisation (set_seed(seed) before building the model)
    untrained = quiet(VAEPipeline(vae=VAEModel.from_config(vae.vae.config)))
    results = {}
    for name, pipeline in (("trained", vae), ("untrained", untrained)):
        nelbo = pipeline.negative_elbo(images, generator=torch.Generator().manual_seed(1), num_samples=2)
        assert nelbo.shape == (360,) and torch.isfinite(nelbo).all()
        reconstructions = pipeline.reconstruct(images, output_type="pt").images
        mse = float(((reconstructions - (images + 1) / 2) ** 2).mean())
        results[name] = (float(nelbo.mean()), mse)
    (trained_nelbo, trained_mse), (untrained_nelbo, untrained_mse) = results["trained"], results["untrained"]
    # an untrained bernoulli decoder outputs ~0.5 everywhere: ~256 ln 2 = 177 nats per image
    assert untrained_nelbo == pytest.approx(256 * math.log(2), rel=0.05)
    assert trained_nelbo < 0.8 * untrained_nelbo, results
    assert trained_mse < 0.5 * untrained_mse, results


def test_negative_elbo_is_at_least_the_reconstruction_term(vae, held_out):
    images = held_out[0][:200]
    with torch.no_grad():
        for sample_posterior in (True, False):
            out = vae.vae(images, generator=torch.Generator().manual_seed(2), sample_posterior=sample_posterior)
            assert out.reconstruction_loss.shape == out.kl.shape == out.negative_elbo.shape == (200,)
            assert (out.kl >= 0).all()
            assert (out.negative_elbo >= out.reconstruction_loss).all()
            torch.testing.assert_close(out.negative_elbo, out.reconstruction_loss + out.kl)
            torch.testing.assert_close(out.loss, out.negative_elbo.mean())  # beta == 1: loss is the mean -ELBO
            assert (out.kl > 0).any(), "a trained encoder is not the prior"
        # the pipeline's -ELBO is the model's, with the same noise
        direct = vae.vae(images, generator=torch.Generator().manual_seed(3)).negative_elbo
    via_pipeline = vae.negative_elbo(images, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(via_pipeline, direct)


def test_reconstruction_term_is_the_bernoulli_log_likelihood(vae, held_out):
    images = held_out[0][:32]
    with torch.no_grad():
        out = vae.vae(images, sample_posterior=False)
        logits = vae.vae.decoder(out.latents)
    torch.testing.assert_close(out.latents, out.latent_dist.mean)
    targets = (images + 1) / 2  # digits pixels are not all binary: the usual continuous-target surrogate
    expected = -Bernoulli(logits=logits, validate_args=False).log_prob(targets).flatten(1).sum(1)
    torch.testing.assert_close(out.reconstruction_loss, expected)
    torch.testing.assert_close(out.sample, torch.sigmoid(logits) * 2 - 1)


def test_gaussian_reconstruction_nll_matches_torch_distributions():
    torch.manual_seed(0)
    model = VAEModel(latent_dim=2, block_out_channels=(8, 16), likelihood="gaussian", observation_std=0.3)
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(5, 1, 16, 16, generator=g) * 1.5
    sample = torch.rand(5, 1, 16, 16, generator=g) * 2 - 1
    expected = -Normal(raw, 0.3).log_prob(sample).flatten(1).sum(1)
    torch.testing.assert_close(model.reconstruction_nll(raw, sample), expected)

    with torch.no_grad():
        out = model(sample, sample_posterior=False)
        mean = model.decoder(out.latents)
    torch.testing.assert_close(out.reconstruction_loss, -Normal(mean, 0.3).log_prob(sample).flatten(1).sum(1))
    torch.testing.assert_close(out.sample, mean.clamp(-1, 1))


def test_gaussian_likelihood_metrics_use_the_8_bit_scale(held_out):
    torch.manual_seed(0)
    pipeline = VAEPipeline(vae=VAEModel(latent_dim=2, block_out_channels=(8, 16), likelihood="gaussian"))
    images = held_out[0][:40]
    metrics = pipeline.likelihood_metrics(images, generator=torch.Generator().manual_seed(5))
    nelbo = pipeline.negative_elbo(images, generator=torch.Generator().manual_seed(5), num_samples=4)
    assert metrics["likelihood"] == "gaussian" and metrics["num_likelihood_images"] == 40
    assert metrics["negative_elbo_nats"] == pytest.approx(float(nelbo.mean()), rel=1e-6)
    expected_bpd = (metrics["negative_elbo_nats"] / 256 + math.log(127.5)) / math.log(2)
    assert metrics["bits_per_dim"] == pytest.approx(expected_bpd, rel=1e-9)


# --------------------------------------------------------------------------------------------- 3. beta


def test_beta_weights_only_the_kl_term(held_out):
    from hfgen.training.objectives.vae import VAEObjective

    torch.manual_seed(0)
    base = VAEModel(latent_dim=3, block_out_channels=(8, 16), beta=1.0)
    images = held_out[0][:24]
    terms = {}
    for beta in (0.0, 1.0, 4.0):
        model = VAEModel(latent_dim=3, block_out_channels=(8, 16), beta=beta)
        model.load_state_dict(base.state_dict())
        with torch.no_grad():
            out = model(images, generator=torch.Generator().manual_seed(11))
            loss, logs = VAEObjective().compute_loss({"vae": model}, images, torch.Generator().manual_seed(11))
        torch.testing.assert_close(out.loss, (out.reconstruction_loss + beta * out.kl).mean())
        torch.testing.assert_close(loss, out.loss)  # the training objective is the model's loss
        assert logs["kl"] == pytest.approx(float(out.kl.mean()), rel=1e-6)
        assert logs["reconstruction_loss"] == pytest.approx(float(out.reconstruction_loss.mean()), rel=1e-6)
        assert logs["negative_elbo"] == pytest.approx(float(out.negative_elbo.mean()), rel=1e-6)
        terms[beta] = (out.reconstruction_loss, out.kl, out.negative_elbo, out.loss)
    for beta in (0.0, 4.0):  # the terms do not depend on beta, only their weighting does
        for a, b in zip(terms[beta][:3], terms[1.0][:3]):
            assert torch.equal(a, b)
    assert float(terms[4.0][3]) > float(terms[1.0][3]) > float(terms[0.0][3])  # KL > 0


def test_beta_reaches_the_training_loop_and_the_saved_model(tmp_path):
    output_dir = tmp_path / "beta4"
    result = hfgen.train("vae", output_dir=str(output_dir), max_train_steps=5, beta=4.0, **TINY)
    history = result.loss_history
    assert [s for s, _ in history["loss"]] == [1, 2, 3, 4, 5]
    for (_, loss), (_, rec), (_, kl), (_, nelbo) in zip(
        history["loss"], history["reconstruction_loss"], history["kl"], history["negative_elbo"]
    ):
        assert loss == pytest.approx(rec + 4.0 * kl, rel=1e-5)
        assert nelbo == pytest.approx(rec + kl, rel=1e-5)
    assert json.loads((output_dir / "vae" / "config.json").read_text())["beta"] == 4.0
    assert json.loads((output_dir / "training_args.json").read_text())["beta"] == 4.0
    assert "β-VAE" in (output_dir / "README.md").read_text()


def test_invalid_model_settings_are_refused():
    with pytest.raises(ValueError, match="likelihood"):
        VAEModel(likelihood="poisson")
    with pytest.raises(ValueError, match="beta"):
        VAEModel(beta=-1.0)
    with pytest.raises(ValueError, match="observation_std"):
        VAEModel(observation_std=0.0)
    with pytest.raises(ValueError, match="valid resolutions are multiples of 8: 8, 16, 24, 32"):
        AutoencoderModel(sample_size=12, block_out_channels=(8, 16, 32))


def test_autoencoder_output_activation_keeps_the_gradient_where_tanh_saturates():
    """The MNIST collapse: decoder pre-activations near -800 (mostly-black data). With tanh the loss has no
    gradient there and training stays stuck; with the default clamp output the loss sees the raw output."""
    images = torch.full((4, 1, 16, 16), -1.0)
    images[:, :, 6:10, 6:10] = 1.0  # a bright stroke on black
    gradients = {}
    for activation in ("tanh", "clamp"):
        torch.manual_seed(0)
        model = AutoencoderModel(sample_size=16, output_activation=activation)
        final = model.decoder.features[-1]
        with torch.no_grad():
            final.bias.fill_(-800.0)
        output = model(images)
        assert output.sample.min() >= -1 and output.sample.max() <= 1
        output.loss.backward()
        gradients[activation] = float(final.bias.grad.abs().sum())
    assert gradients["tanh"] == 0.0
    assert gradients["clamp"] > 100  # d/db mean((b - x)^2) ~ 2 * 800
    assert AutoencoderModel(sample_size=16).config.output_activation == "clamp"
    with pytest.raises(ValueError, match="output_activation 'relu' is unknown; choose clamp, tanh"):
        AutoencoderModel(sample_size=16, output_activation="relu")


# ------------------------------------------------------------------------------------- 4. interpolation


def test_slerp_endpoints_and_geometry():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 7)
    for _ in range(50):
        a, b = torch.randn(6, generator=g), torch.randn(6, generator=g)
        out = slerp(a, b, t)
        assert out.shape == (7, 6)
        torch.testing.assert_close(out[0], a, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(out[-1], b, rtol=1e-6, atol=1e-6)
    # unit vectors: every point stays on the unit sphere, at angle t * omega from a
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    out = slerp(a, b, t)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(7))
    torch.testing.assert_close(torch.arccos((out @ a).clamp(-1, 1)), t * math.pi / 2)
    # parallel endpoints: linear interpolation
    a = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(slerp(a, 3 * a, torch.tensor([0.0, 0.5, 1.0])), torch.stack([a, 2 * a, 3 * a]))


def test_slerp_returns_exactly_the_endpoints():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 5)
    for _ in range(100):
        a, b = torch.randn(8, generator=g), torch.randn(8, generator=g)
        out = slerp(a, b, t)
        assert torch.equal(out[0], a) and torch.equal(out[-1], b)


@pytest.mark.parametrize("method", ["slerp", "linear"])
@pytest.mark.parametrize("kind", ["vae", "autoencoder"])
def test_interpolation_endpoints_are_the_reconstructions(kind, method, request, held_out, monkeypatch):
    pipeline = request.getfixturevalue(kind)
    images = held_out[0]
    a, b = images[3], images[10]
    reconstructions = pipeline.reconstruct(torch.stack([a, b]), output_type="pt").images
    codes = torch.stack([pipeline.encode(a)[0], pipeline.encode(b)[0]])  # one at a time, as interpolate does

    seen = []
    original_decode = pipeline.model.decode
    monkeypatch.setattr(pipeline.model, "decode", lambda z: seen.append(z.clone()) or original_decode(z))
    row = pipeline.interpolate(a, b, steps=6, method=method, output_type="pt").images
    assert row.shape == (6, 1, 16, 16)
    torch.testing.assert_close(row[0], reconstructions[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(row[-1], reconstructions[1], rtol=0, atol=1e-5)
    assert not torch.allclose(row[0], row[-1], atol=1e-3)

    (latents,) = seen
    t = torch.linspace(0, 1, 6)
    expected = (
        slerp(codes[0], codes[1], t) if method == "slerp" else (1 - t[:, None]) * codes[0] + t[:, None] * codes[1]
    )
    torch.testing.assert_close(latents, expected)
    if method == "linear":
        assert torch.equal(latents[0], codes[0]) and torch.equal(latents[-1], codes[1])


def test_interpolate_rejects_bad_arguments(vae, held_out):
    a, b = held_out[0][0], held_out[0][1]
    with pytest.raises(ValueError, match="steps"):
        vae.interpolate(a, b, steps=1)
    with pytest.raises(ValueError, match="slerp"):
        vae.interpolate(a, b, method="cubic")


# ------------------------------------------------------------------------------------ 5. save and load


def test_save_and_load_round_trip_gives_identical_outputs(vae, held_out, tmp_path):
    vae.save_pretrained(str(tmp_path / "copy"), safe_serialization=True)
    images = held_out[0][:12]
    loaded = [
        quiet(VAEPipeline.from_pretrained(str(tmp_path / "copy"))),
        quiet(hfgen.load_pipeline(str(tmp_path / "copy"))),
    ]
    reference_samples = vae(batch_size=5, generator=torch.Generator().manual_seed(4), output_type="pt").images
    reference_reconstructions = vae.reconstruct(images, output_type="pt").images
    for pipeline in loaded:
        assert type(pipeline) is VAEPipeline
        public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
        assert public(pipeline.vae.config) == public(vae.vae.config)
        samples = pipeline(batch_size=5, generator=torch.Generator().manual_seed(4), output_type="pt").images
        assert torch.equal(samples, reference_samples)
        assert torch.equal(pipeline.reconstruct(images, output_type="pt").images, reference_reconstructions)
        assert torch.equal(pipeline.encode(images), vae.encode(images))
    # a different seed gives different samples (the comparison above is not vacuous)
    other = vae(batch_size=5, generator=torch.Generator().manual_seed(5), output_type="pt").images
    assert not torch.equal(other, reference_samples)


def test_autoencoder_save_and_load_round_trip(autoencoder, tmp_path):
    autoencoder.save_pretrained(str(tmp_path / "ae"), safe_serialization=True)
    loaded = quiet(hfgen.load_pipeline(str(tmp_path / "ae")))
    assert type(loaded) is AutoencoderPipeline
    saved, restored = autoencoder.autoencoder.state_dict(), loaded.autoencoder.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    latents = torch.randn(6, autoencoder.latent_dim, generator=torch.Generator().manual_seed(0))
    decoded = loaded.decode(latents, output_type="pt").images
    assert torch.equal(decoded, autoencoder.decode(latents, output_type="pt").images)
    assert decoded.shape == (6, 1, 16, 16)


def test_autoencoder_encode_returns_the_codes(autoencoder, held_out):
    images = held_out[0][:20]
    with torch.no_grad():
        expected = autoencoder.autoencoder.encode(images)
    torch.testing.assert_close(autoencoder.encode(images), expected)
    reconstructions = autoencoder.reconstruct(images, output_type="pt").images
    with torch.no_grad():
        torch.testing.assert_close(reconstructions, (autoencoder.autoencoder(images).sample + 1) / 2)


def test_train_autoencoder_saves_a_loadable_folder(tmp_path):
    output_dir = tmp_path / "ae"
    hfgen.train("autoencoder", output_dir=str(output_dir), max_train_steps=5, **TINY)
    for name in ("model_index.json", "README.md", "loss.png", "training_args.json"):
        assert (output_dir / name).is_file(), name
    pipeline = hfgen.load_pipeline(str(output_dir))
    assert type(pipeline) is AutoencoderPipeline
    assert pipeline.reconstruct(torch.zeros(2, 1, 16, 16), output_type="pt").images.shape == (2, 1, 16, 16)


def test_sampling_options(vae):
    zeros = vae.decode(torch.zeros(1, vae.latent_dim), output_type="pt").images
    cold = vae(batch_size=3, generator=torch.Generator().manual_seed(0), temperature=0.0, output_type="pt").images
    torch.testing.assert_close(cold, zeros.expand(3, -1, -1, -1))
    latents = torch.randn(2, vae.latent_dim, generator=torch.Generator().manual_seed(1))
    given = vae(batch_size=2, latents=latents, output_type="pt").images
    torch.testing.assert_close(given, vae.decode(latents, output_type="pt").images)
    warm = vae(batch_size=4, generator=torch.Generator().manual_seed(0), temperature=2.0, output_type="np").images
    assert warm.shape == (4, 16, 16, 1) and warm.min() >= 0 and warm.max() <= 1
    pil = vae(batch_size=2, generator=torch.Generator().manual_seed(0))
    assert len(pil.images) == 2 and isinstance(pil.images[0], Image.Image) and pil.images[0].size == (16, 16)
    with pytest.raises(ValueError, match="batch_size"):
        vae(batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        vae(batch_size=1, temperature=-1.0)


# ------------------------------------------------------------------------- 6. autoencoder has no prior


def test_autoencoder_pipeline_refuses_to_sample(autoencoder):
    with pytest.raises(UnsupportedOperationError, match="no prior") as caught:
        autoencoder(batch_size=2)
    assert isinstance(caught.value, HfgenError)
    assert "hfgen train vae" in str(caught.value)


def test_evaluate_on_an_autoencoder_fails_on_the_command_line(tiny_autoencoder_dir, capsys):
    code, _, err = run_cli(capsys, "evaluate", tiny_autoencoder_dir, "--num_images", 70)
    line = error_line(code, err)
    assert "no prior" in line
    assert not (tiny_autoencoder_dir / "metrics.json").exists()


def test_eval_steps_with_an_autoencoder_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="--eval_steps"):
        hfgen.train("autoencoder", output_dir=str(tmp_path / "ae"), max_train_steps=2, eval_steps=1, **TINY)
    assert not (tmp_path / "ae" / "model_index.json").exists()


# ----------------------------------------------------------------------------------------- acceptance


def test_acceptance_folder_samples_and_loads(acceptance_dir):
    pipeline = quiet(VAEPipeline.from_pretrained(str(acceptance_dir)))
    images = pipeline(batch_size=3, output_type="np").images
    assert images.shape == (3, 16, 16, 1)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    loaded = hfgen.load_pipeline(str(acceptance_dir))
    assert isinstance(loaded, VAEPipeline)
    assert loaded.vae.config.latent_dim == 2 and loaded.vae.config.likelihood == "bernoulli"


def test_acceptance_folder_contents(acceptance_dir):
    from huggingface_hub import ModelCard

    card = ModelCard.load(acceptance_dir / "README.md")
    assert "vae" in card.data.tags
    assert "variational autoencoder" in card.text.lower() and "VAEPipeline" in card.text
    with Image.open(acceptance_dir / "loss.png") as image:
        assert image.format == "PNG"
    args = json.loads((acceptance_dir / "training_args.json").read_text())
    assert args["model"] == "vae"
    assert args["max_train_steps"] == 30
    assert args["latent_dim"] == 2 and args["beta"] == 1.0 and args["likelihood"] == "bernoulli"
    index = json.loads((acceptance_dir / "model_index.json").read_text())
    assert index["_class_name"] == ["hfgen_pipeline_vae", "VAEPipeline"]  # the written source, for diffusers alone


def test_explore_writes_every_figure_of_a_vae(acceptance_dir, capsys):
    code, out, err = run_cli(capsys, "explore", acceptance_dir)
    assert code == 0, err
    for name in FIGURES:
        path = acceptance_dir / "figures" / f"{name}.png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100
        assert str(path) in out


def test_explore_an_autoencoder_has_no_prior_samples(tiny_autoencoder_dir, tmp_path):
    from hfgen.jobs.explore import explore

    paths = explore(str(tiny_autoencoder_dir), figures_dir=str(tmp_path / "figures"))
    assert set(paths) == set(FIGURES) - {"prior_samples"}
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(f"{n}.png" for n in paths)
    for path in paths.values():
        with Image.open(path) as image:
            assert image.format == "PNG"


# -------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 1, 8, 8), (2, 1, 16, 8), (16, 16), (1, 1, 1, 16, 16)])
@pytest.mark.parametrize("kind", ["vae", "autoencoder"])
def test_reconstruct_rejects_images_of_the_wrong_shape(kind, shape, request):
    pipeline = request.getfixturevalue(kind)
    with pytest.raises(ImageShapeError, match=r"\(batch_size, 1, 16, 16\)"):
        pipeline.reconstruct(torch.zeros(shape))
    with pytest.raises(ImageShapeError, match="16x16"):
        pipeline.model.encode(torch.zeros(shape))


def test_reconstruct_accepts_pil_images_of_another_size(vae):
    image = Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8))
    out = vae.reconstruct([image, image], output_type="np").images
    assert out.shape == (2, 16, 16, 1)
    np.testing.assert_array_equal(out[0], out[1])


def test_unknown_likelihood_is_a_clear_command_line_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "vae", "--likelihood", "poisson", "--output_dir", tmp_path / "out")
    line = error_line(code, err)
    assert "--likelihood" in line and "'poisson'" in line
    assert "bernoulli" in line and "gaussian" in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------- latent tools


def test_traverse_changes_only_the_traversed_dimension(vae, held_out, monkeypatch):
    image = held_out[0][5]
    z = vae.encode(image)[0]
    seen = []
    original_decode = vae.vae.decode
    monkeypatch.setattr(vae.vae, "decode", lambda latents: seen.append(latents.clone()) or original_decode(latents))
    dims, values = [0, 2, 3], [-2.0, -0.5, 0.0, 1.5]
    images = vae.traverse(image, dims=dims, values=values, output_type="pt").images
    assert images.shape == (len(dims) * len(values), 1, 16, 16)
    (latents,) = seen
    for row, dim in enumerate(dims):
        for col, value in enumerate(values):
            expected = z.clone()
            expected[dim] = value
            assert torch.equal(latents[row * len(values) + col], expected)
        row_images = images[row * len(values) : (row + 1) * len(values)]
        assert (row_images - row_images[:1]).abs().amax() > 1e-3, f"traversing z{dim} changes nothing"

    seen.clear()
    default = vae.traverse(image, output_type="pt").images
    assert default.shape == (vae.latent_dim * 7, 1, 16, 16)  # every dimension (<= 10) x linspace(-3, 3, 7)
    torch.testing.assert_close(seen[0][:7, 0], torch.linspace(-3, 3, 7))
    with pytest.raises(ValueError, match="dims"):
        vae.traverse(image, dims=[vae.latent_dim])


@pytest.mark.parametrize("kind", ["vae", "autoencoder"])
def test_attribute_vector_is_the_mean_difference_of_codes(kind, request, held_out):
    pipeline = request.getfixturevalue(kind)
    images, labels = held_out
    sevens, ones = images[labels == 7], images[labels == 1]
    assert len(sevens) > 10 and len(ones) > 10
    vector = pipeline.attribute_vector(sevens, ones)
    with torch.no_grad():
        if kind == "vae":
            codes_7, codes_1 = pipeline.model.encode(sevens).mean, pipeline.model.encode(ones).mean
        else:
            codes_7, codes_1 = pipeline.model.encode(sevens), pipeline.model.encode(ones)
    torch.testing.assert_close(vector, codes_7.mean(0) - codes_1.mean(0))
    assert vector.shape == (pipeline.latent_dim,) and vector.norm() > 0

    z = pipeline.encode(ones[0])[0]
    row = pipeline.apply_attribute(ones[0], vector, alphas=(0.0, 1.0), output_type="pt").images
    expected = pipeline.decode(torch.stack([z, z + vector]), output_type="pt").images
    torch.testing.assert_close(row, expected)
    with pytest.raises(ValueError, match="attribute vector"):
        pipeline.apply_attribute(ones[0], vector[:1])


def test_vae_encode_is_the_posterior_mean(vae, held_out):
    images = held_out[0][:20]
    with torch.no_grad():
        expected = vae.vae.encode(images).mean
    torch.testing.assert_close(vae.encode(images), expected)
    torch.testing.assert_close(vae.encode(images, batch_size=7), expected)  # chunking does not change codes


# --------------------------------------------------------------------------------------------- evaluate


def test_evaluate_pipeline_reports_the_negative_elbo(tiny_vae_dir, vae, held_out):
    from hfgen.jobs.evaluate import evaluate_pipeline
    from hfgen.metrics.features import load_feature_extractor
    from hfgen.metrics.image_quality import minimum_samples

    num_images = minimum_samples("fid", load_feature_extractor("digits").num_features) + 1
    metrics = evaluate_pipeline(str(tiny_vae_dir), num_images=num_images, batch_size=num_images)
    assert metrics["num_images"] == num_images and math.isfinite(metrics["fid"])
    assert metrics["scheduler"] == "VAEPipeline" and metrics["nfe"] == 1
    assert metrics["likelihood"] == "bernoulli"
    assert metrics["num_likelihood_images"] == 360  # the held-out digits test split
    nats, bpd = metrics["negative_elbo_nats"], metrics["bits_per_dim"]
    assert bpd == pytest.approx(nats / (16 * 16 * 1 * math.log(2)), rel=1e-12)
    assert 0 < bpd < 1.0  # better than the 1 bit/dim of a decoder that outputs 0.5 everywhere

    # the same figure as the pipeline's own, on the same images with the same seed
    direct = vae.likelihood_metrics(held_out[0], generator=torch.Generator().manual_seed(0))
    assert nats == pytest.approx(direct["negative_elbo_nats"], rel=1e-4)

    saved = json.loads((tiny_vae_dir / "metrics.json").read_text())
    assert saved["negative_elbo_nats"] == pytest.approx(nats)
    card = (tiny_vae_dir / "README.md").read_text()
    assert f"Negative ELBO on 360 held-out images (bernoulli likelihood): **{nats:.2f} nats per image**" in card
