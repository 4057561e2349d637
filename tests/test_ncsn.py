"""NCSN: the annealed Langevin scheduler (checked against exact Gaussian scores, no training), the DSM objective,
the pipeline, `hfgen train ncsn` and its evaluation."""

import json
import math

import pytest
import torch
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput
from helpers import error_line, quiet, run_cli

import hfgen
from hfgen import AnnealedLangevinPipeline, AnnealedLangevinScheduler
from hfgen.training.objectives.ncsn import denoising_score_matching_loss, largest_pairwise_distance

TINY = {
    "resolution": 8,
    "block_out_channels": [8, 16],
    "attention_levels": [],
    "norm_num_groups": 4,
    "num_noise_levels": 4,
    "steps_per_level": 2,
    "train_batch_size": 16,
    "num_sample_images": 4,
    "logger": "none",
    "lr_warmup_steps": 0,
    "checkpointing_steps": 1000,
}


class GaussianScore(ModelMixin, ConfigMixin):
    """The exact score of N(mu, s² I) perturbed by N(0, σ² I): -(x - mu) / (s² + σ²), as a stand-in UNet."""

    @register_to_config
    def __init__(self, mu: float = 0.3, std: float = 0.5, sample_size: int = 4, in_channels: int = 1):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a dtype and a device
        self.scheduler = None

    def forward(self, sample, timestep):
        sigma = self.scheduler.sigma_for_timesteps(timestep).reshape(-1, 1, 1, 1)
        score = -(sample - self.config.mu) / (self.config.std**2 + sigma**2)
        if self.scheduler.config.scale_output_by_sigma:
            score = score * sigma  # the network outputs σ·s when the scheduler divides by σ
        return UNet2DOutput(sample=score)


def run_langevin(scheduler, mu, std, shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = scheduler.init_noise(shape, generator=generator)
    for t in scheduler.timesteps:
        sigma = scheduler.sigma_for_timesteps(t)
        x = scheduler.step(-(x - mu) / (std**2 + sigma**2), t, x, generator=generator).prev_sample
    return x


# ---------------------------------------------------------------------------------------------- the scheduler
@pytest.mark.parametrize("init_distribution", ["uniform", "gaussian"])
def test_annealed_langevin_with_the_exact_score_samples_the_gaussian(init_distribution):
    mu, std = 0.3, 0.5
    scheduler = AnnealedLangevinScheduler(sigma_max=2.0, init_distribution=init_distribution)
    scheduler.set_timesteps(steps_per_level=100, epsilon=5e-4)
    x = run_langevin(scheduler, mu, std, (4000, 16))
    assert x.mean().item() == pytest.approx(mu, rel=0.03)
    assert x.var().item() == pytest.approx(std**2, rel=0.03)


def test_too_few_langevin_steps_leave_the_variance_of_a_higher_noise_level():
    """The check above is not vacuous: 2 steps per level cannot shrink the initial spread to s²."""
    scheduler = AnnealedLangevinScheduler(sigma_max=2.0, init_distribution="gaussian")
    scheduler.set_timesteps(steps_per_level=2, epsilon=5e-4, denoise=False)
    x = run_langevin(scheduler, 0.3, 0.5, (4000, 16))
    assert x.var().item() > 1.2 * 0.25


def test_noise_levels_are_geometric_and_timesteps_cover_every_level():
    scheduler = AnnealedLangevinScheduler(num_noise_levels=5, sigma_max=8.0, sigma_min=0.5, steps_per_level=3)
    sigmas = scheduler.sigmas
    assert sigmas[0].item() == pytest.approx(8.0) and sigmas[-1].item() == pytest.approx(0.5)
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 0.5), rtol=1e-5)  # (0.5/8)^(1/4)
    assert scheduler.timesteps.tolist() == [4] * 3 + [3] * 3 + [2] * 3 + [1] * 3 + [0] * 3 + [0]
    assert scheduler.sigma_for_timesteps(torch.tensor([4, 0])).tolist() == pytest.approx([8.0, 0.5])
    scheduler.set_timesteps(steps_per_level=2, denoise=False)
    assert len(scheduler.timesteps) == 10 and scheduler.num_inference_steps == 10
    with pytest.raises(ValueError, match="0..4"):
        scheduler.sigma_for_timesteps(5)


def test_step_sizes_follow_epsilon_sigma_i_squared_over_sigma_l_squared():
    scheduler = AnnealedLangevinScheduler(num_noise_levels=4, sigma_max=1.0, sigma_min=0.01, epsilon=3e-5)
    expected = [3e-5 * (s / 0.01) ** 2 for s in scheduler.sigmas.tolist()]
    assert scheduler.step_sizes.tolist() == pytest.approx(expected, rel=1e-5)
    assert scheduler.step_sizes[0].item() == pytest.approx(3e-5 * 1e4, rel=1e-5)
    # the update itself: x + α/2·s + √α·z with the generator's z
    scheduler.set_timesteps(steps_per_level=1, epsilon=3e-5, denoise=False)
    sample, score = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    for index, t in enumerate(scheduler.timesteps):
        alpha = expected[index]
        z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(index))
        out = scheduler.step(score, t, sample, generator=torch.Generator().manual_seed(index))
        assert torch.allclose(out.prev_sample, sample + alpha / 2 * score + math.sqrt(alpha) * z, atol=1e-6)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(score, 0, sample)


def test_final_denoising_step_is_tweedie_and_output_scaling_divides_by_sigma():
    scheduler = AnnealedLangevinScheduler(num_noise_levels=3, sigma_max=1.0, sigma_min=0.1, steps_per_level=1)
    sample, score = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    for t in scheduler.timesteps[:-1]:
        scheduler.step(score, t, sample)
    final = scheduler.step(score, 0, sample, generator=torch.Generator().manual_seed(0)).prev_sample
    assert torch.allclose(final, sample + 0.1**2 * score)  # no noise in the denoising step
    scaled = AnnealedLangevinScheduler(num_noise_levels=3, sigma_max=1.0, sigma_min=0.1, scale_output_by_sigma=True)
    converted = scaled.model_output_to_score(score, torch.tensor([2, 0]))
    assert torch.allclose(converted[0], score[0] / 1.0) and torch.allclose(converted[1], score[1] / 0.1)


def test_add_noise_perturbs_by_each_samples_sigma():
    scheduler = AnnealedLangevinScheduler(num_noise_levels=3, sigma_max=4.0, sigma_min=1.0)
    x, z = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    noisy = scheduler.add_noise(x, z, torch.tensor([2, 1, 0]))
    assert noisy[:, 0, 0, 0].tolist() == pytest.approx([4.0, 2.0, 1.0])


def test_scheduler_config_round_trips(tmp_path):
    scheduler = AnnealedLangevinScheduler(
        num_noise_levels=7, sigma_max=12.5, sigma_min=0.02, steps_per_level=9, epsilon=1e-4, denoise=False,
        scale_output_by_sigma=True, init_distribution="gaussian",
    )  # fmt: skip
    scheduler.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "scheduler_config.json").read_text())["sigma_max"] == 12.5
    loaded = AnnealedLangevinScheduler.from_pretrained(tmp_path)
    assert dict(loaded.config) == dict(scheduler.config)
    assert torch.equal(loaded.sigmas, scheduler.sigmas) and torch.equal(loaded.timesteps, scheduler.timesteps)
    assert loaded.init_noise_sigma == 12.5


@pytest.mark.parametrize(
    "kwargs", [{"sigma_min": 0.0}, {"sigma_max": 0.005}, {"num_noise_levels": 0}, {"epsilon": 0.0},
               {"steps_per_level": 0}, {"init_distribution": "laplace"}],
)  # fmt: skip
def test_invalid_scheduler_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AnnealedLangevinScheduler(**kwargs)


# ---------------------------------------------------------------------------------------------- the objective
def test_dsm_loss_is_lowest_for_the_exact_score_of_a_gaussian_mixture():
    generator = torch.Generator().manual_seed(0)
    means, std, n, dims = torch.tensor([[-2.0] * 4, [2.0] * 4]), 0.3, 20000, 4
    x = means[torch.randint(0, 2, (n,), generator=generator)] + std * torch.randn(n, dims, generator=generator)
    sigmas = torch.tensor([0.1, 0.5, 2.0])[torch.randint(0, 3, (n,), generator=generator)]
    z = torch.randn(n, dims, generator=generator)
    noisy = x + sigmas[:, None] * z
    variance = (std**2 + sigmas**2)[:, None, None]  # each component, perturbed: N(mu_k, (s² + σ²) I)
    diff = noisy[:, None, :] - means[None]  # (n, K, dims)
    weights = torch.softmax(-(diff**2).sum(-1) / (2 * variance[:, :, 0]), dim=1)
    exact = (weights[:, :, None] * (-diff / variance)).sum(1)
    exact_loss = denoising_score_matching_loss(exact, z, sigmas).mean()
    assert exact_loss < denoising_score_matching_loss(exact * 1.2, z, sigmas).mean()
    assert exact_loss < denoising_score_matching_loss(exact + 0.2 * torch.randn(n, dims), z, sigmas).mean()
    # the mixture's exact score beats the score of a single Gaussian fitted to the data
    single = -(noisy - x.mean(0)) / (x.var(0) + sigmas[:, None] ** 2)
    assert exact_loss < denoising_score_matching_loss(single, z, sigmas).mean()
    # and DSM with λ(σ) = σ² is ½‖σ·s + z‖² per sample
    assert denoising_score_matching_loss(torch.zeros(2, 3), torch.ones(2, 3), torch.ones(2)).tolist() == [1.5, 1.5]


def test_largest_pairwise_distance_matches_brute_force():
    images = torch.randn(37, 1, 3, 3)
    brute = max((a - b).norm().item() for a in images for b in images)
    assert largest_pairwise_distance(images, chunk_size=5) == pytest.approx(brute, rel=1e-6)
    with pytest.raises(ValueError, match="two images"):
        largest_pairwise_distance(images[:1])


# ---------------------------------------------------------------------------------------------- the pipeline
def test_pipeline_with_the_exact_score_samples_the_gaussian_and_returns_each_level():
    scheduler = AnnealedLangevinScheduler(num_noise_levels=6, sigma_max=2.0, steps_per_level=100, epsilon=5e-4)
    unet = GaussianScore(mu=0.1, std=0.25, sample_size=8)  # well inside [-1, 1], which the output is clamped to
    unet.scheduler = scheduler
    pipeline = quiet(AnnealedLangevinPipeline(unet=unet, scheduler=scheduler))
    out = pipeline(
        batch_size=200, generator=torch.Generator().manual_seed(0), return_intermediates=True, output_type="pt",
    )  # fmt: skip
    x = out.images * 2 - 1  # back to [-1, 1]; the Gaussian sits well inside it
    assert x.mean().item() == pytest.approx(0.1, abs=0.005) and x.var().item() == pytest.approx(0.0625, rel=0.03)
    assert out.intermediates.shape == (6, 200, 1, 8, 8) and len(out.sigmas) == 6
    spread = [(level * 2 - 1).std().item() for level in out.intermediates]
    assert spread[0] > spread[-1] and spread[-1] == pytest.approx(0.25, rel=0.05)  # the samples converge
    unet.scheduler = scheduler = AnnealedLangevinScheduler(
        num_noise_levels=6, sigma_max=2.0, scale_output_by_sigma=True
    )
    scaled = quiet(AnnealedLangevinPipeline(unet=unet, scheduler=scheduler))
    x = scaled(batch_size=200, generator=torch.Generator().manual_seed(0), steps_per_level=100, epsilon=5e-4,
               output_type="pt").images * 2 - 1  # fmt: skip
    assert x.var().item() == pytest.approx(0.0625, rel=0.03)


@pytest.fixture(scope="module")
def ncsn_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ncsn") / "run"
    result = hfgen.train("ncsn", output_dir=str(out), max_train_steps=20, save_images_steps=20, **TINY)
    return out, result


def test_training_lowers_the_dsm_loss_and_saves_a_loadable_pipeline(ncsn_folder):
    out, result = ncsn_folder
    losses = [v for _, v in result.loss_history["loss"]]
    assert sum(losses[-5:]) < sum(losses[:5])
    config = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert config["_class_name"] == "AnnealedLangevinScheduler" and config["num_noise_levels"] == 4
    from hfgen.data.images import images_to_tensor, load_image_dataset

    train, _ = images_to_tensor(load_image_dataset("digits", split="train"), 8, 1)
    assert config["sigma_max"] == pytest.approx(largest_pairwise_distance(train), rel=1e-6)  # --sigma_max auto
    pipeline = quiet(hfgen.load_pipeline(str(out)))
    assert type(pipeline) is AnnealedLangevinPipeline and type(pipeline.unet) is UNet2DModel
    images = pipeline(batch_size=2, steps_per_level=2, output_type="np").images
    assert images.shape == (2, 8, 8, 1) and 0 <= images.min() and images.max() <= 1
    assert (out / "figures" / "langevin_convergence.png").is_file()
    card = (out / "README.md").read_text()
    assert "annealed Langevin" in card and "9 network evaluations per image" in card  # 4 levels x 2 steps + 1


def test_sampling_counts_network_evaluations_with_and_without_denoising(ncsn_folder):
    from hfgen.pipelines.sampling import sample_images

    out, _ = ncsn_folder
    pipeline = hfgen.load_pipeline(str(out))
    pipeline.set_progress_bar_config(disable=True)
    result = sample_images(pipeline, num_images=3, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert (result.network_evaluations, result.num_inference_steps) == (9, 9)
    assert result.scheduler_name == "AnnealedLangevinScheduler"
    result = sample_images(pipeline, 3, pipeline_kwargs={"denoise": False, "steps_per_level": 3})
    assert (result.network_evaluations, result.num_inference_steps) == (12, 12)
    with pytest.raises(hfgen.HfgenError, match="pipeline_kwargs"):
        sample_images(pipeline, 3, num_inference_steps=10)
    with pytest.raises(hfgen.HfgenError, match="temperature"):
        sample_images(pipeline, 3, pipeline_kwargs={"temperature": 0.5})


def test_evaluate_records_each_sampler_setting_separately(ncsn_folder, capsys):
    out, _ = ncsn_folder
    code, stdout, err = run_cli(capsys, "evaluate", out, "--num_images", 66, "--batch_size", 66)
    assert code == 0, err
    code, stdout, err = run_cli(
        capsys, "evaluate", out, "--num_images", 66, "--batch_size", 66, "--pipeline_kwargs", '{"denoise": false}'
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nfe"] == 8 and metrics["pipeline_kwargs"] == {"denoise": False}
    keys = sorted(metrics["evaluations"])
    assert keys == [
        "AnnealedLangevinScheduler-8steps-66images-denoise=False",
        "AnnealedLangevinScheduler-9steps-66images",
    ]
    code, stdout, err = run_cli(capsys, "evaluate", out, "--num_images", 66, "--batch_size", 66)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())  # the latest run at the top, not the denoise=False one
    assert metrics["nfe"] == 9 and metrics["pipeline_kwargs"] == {}
    code, _, err = run_cli(capsys, "evaluate", out, "--pipeline_kwargs", "[1]")
    assert code == 2 and "JSON object" in err
    code, _, err = run_cli(capsys, "sample", out, "--num_inference_steps", 5)
    assert "pipeline_kwargs" in error_line(code, err)


def test_bad_ncsn_flags_get_clear_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "ncsn", "--sigma_max", "big", "--output_dir", tmp_path / "a")
    assert "--sigma_max takes a number or 'auto'" in error_line(code, err)
    code, _, err = run_cli(capsys, "train", "ncsn", "--sigma_max", "0.001", "--output_dir", tmp_path / "b")
    assert "must exceed --sigma_min" in error_line(code, err)
