"""The DDPM objective's loss options: Min-SNR-gamma weighting (``--snr_gamma``) for every prediction type."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from helpers import TINY_DDPM, error_line, run_cli, tiny_ddpm_flags

from hfgen.training.arguments import parse_train_kwargs, resolve_defaults
from hfgen.training.objectives import get_objective
from hfgen.training.objectives.base import TrainingContext
from hfgen.training.objectives.ddpm import min_snr_weights


def snr_by_hand(scheduler: DDPMScheduler, t: int) -> float:
    alpha_bar = float(scheduler.alphas_cumprod[t])
    return alpha_bar / (1 - alpha_bar)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_min_snr_weights_follow_the_paper(prediction_type):
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type=prediction_type)
    timesteps = torch.tensor([0, 10, 100, 400, 999])
    weights = min_snr_weights(scheduler, timesteps, 5.0)
    for t, weight in zip(timesteps.tolist(), weights.tolist()):
        snr = snr_by_hand(scheduler, t)
        expected = {"epsilon": min(snr, 5) / snr, "v_prediction": min(snr, 5) / (snr + 1), "sample": min(snr, 5)}
        assert weight == pytest.approx(expected[prediction_type], rel=1e-4), (t, snr)
    # low noise (high SNR) is down-weighted for epsilon; the noisiest step keeps full weight
    if prediction_type == "epsilon":
        assert weights[0] < 0.01 and weights[-1] == pytest.approx(1.0)


def test_min_snr_weights_are_finite_where_the_cosine_schedule_reaches_snr_zero():
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    assert snr_by_hand(scheduler, 999) < 1e-6  # the schedule's last step is (almost) pure noise
    weights = min_snr_weights(scheduler, torch.arange(1000), 5.0)
    assert torch.isfinite(weights).all()
    assert weights[-1] == pytest.approx(1.0)


def build_ddpm(**flags):
    objective = get_objective("ddpm")
    data_args, training_args, model_args = parse_train_kwargs(objective, {**TINY_DDPM, **flags})
    resolve_defaults(objective, data_args, training_args, model_args)
    context = TrainingContext(data_args, training_args, model_args, 1, 8, 100, "t")
    torch.manual_seed(0)
    return objective, objective.build_models(context)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_loss_with_snr_gamma_is_the_weighted_per_image_mse(prediction_type):
    """Replays the loss's own noise and timesteps and weights each image's MSE by hand."""
    gamma = 2.0
    objective, models = build_ddpm(snr_gamma=gamma, prediction_type=prediction_type)
    seen = {}
    models["unet"].register_forward_hook(lambda m, args, out: seen.update(t=args[1], out=out.sample.detach()))
    images = torch.rand(16, 1, 8, 8) * 2 - 1
    loss, _ = objective.compute_loss(models, images, torch.Generator().manual_seed(3))

    replay = torch.Generator().manual_seed(3)
    noise = torch.randn(images.shape, generator=replay)
    timesteps = torch.randint(0, 50, (16,), generator=replay)
    assert torch.equal(timesteps, seen["t"])
    scheduler = objective.noise_scheduler
    target = noise if prediction_type == "epsilon" else scheduler.get_velocity(images, noise, timesteps)
    per_image = ((seen["out"] - target) ** 2).mean(dim=(1, 2, 3))
    snr = torch.tensor([snr_by_hand(scheduler, t) for t in timesteps.tolist()])
    weights = torch.clamp(snr, max=gamma) / (snr if prediction_type == "epsilon" else snr + 1)
    assert loss.item() == pytest.approx(float((per_image * weights).mean()), rel=1e-5)
    assert loss.item() != pytest.approx(float(F.mse_loss(seen["out"], target)), rel=1e-3)  # the weighting acts


def test_without_snr_gamma_the_loss_is_the_plain_mse():
    objective, models = build_ddpm()
    seen = {}
    models["unet"].register_forward_hook(lambda m, args, out: seen.update(out=out.sample.detach()))
    images = torch.zeros(8, 1, 8, 8)
    loss, _ = objective.compute_loss(models, images, torch.Generator().manual_seed(1))
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(float(F.mse_loss(seen["out"], noise)), rel=1e-6)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_snr_gamma_is_checked_when_parsed(capsys, tmp_path, value):
    code, _, err = run_cli(capsys, "train", "ddpm", "--snr_gamma", value, "--output_dir", tmp_path / "m")
    assert "--snr_gamma must be a positive number" in error_line(code, err)
    assert not (tmp_path / "m").exists()


def test_a_model_card_names_the_loss_weighting(tmp_path):
    import hfgen

    folder = tmp_path / "snr"
    hfgen.train("ddpm", output_dir=str(folder), max_train_steps=2, snr_gamma=5.0, report_to="none", **TINY_DDPM)
    card = (folder / "README.md").read_text()
    assert "Min-SNR-γ, γ = 5.0" in card


@pytest.mark.parametrize("flag, expected", [(None, True), ("true", True), ("false", False)])
def test_add_attention_switches_the_mid_block_attention(capsys, tmp_path, flag, expected):
    from hfgen.pipelines import load_pipeline

    folder = tmp_path / "run"
    extra = [] if flag is None else ["--add_attention", flag]
    code, out, err = run_cli(capsys, "train", "ddpm", "--output_dir", folder, "--max_train_steps", "1",
                             *tiny_ddpm_flags(attention_levels=["none"]), *extra)  # fmt: skip
    assert code == 0, err
    unet = load_pipeline(str(folder)).unet
    assert unet.config.add_attention is expected
    has_attention = any(type(m).__name__ == "Attention" for m in unet.modules())  # no level has any: only the middle
    assert has_attention is expected


@pytest.mark.parametrize(
    "flags, spacing, clip",
    [
        ([], "leading", True),
        (["--ddpm_timestep_spacing", "trailing", "--ddpm_clip_sample", "false"], "trailing", False),
    ],
)
def test_sampling_flags_are_saved_and_followed_by_every_sampler(capsys, tmp_path, flags, spacing, clip):
    """--ddpm_timestep_spacing / --ddpm_clip_sample land in the saved scheduler config and the model card, and
    sampling with any scheduler built from it starts where the spacing says: with T = 50 and 10 steps, trailing
    starts at 49 (the last trained timestep, pure noise); leading before it (DDIM at 45, DPM-Solver++ at 40)."""
    from hfgen.pipelines import load_pipeline
    from hfgen.pipelines.sampling import sample_images

    folder = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "ddpm", "--output_dir", folder, "--max_train_steps", "1",
                             *tiny_ddpm_flags(), *flags)  # fmt: skip
    assert code == 0, err
    pipeline = load_pipeline(str(folder))
    assert pipeline.scheduler.config.timestep_spacing == spacing
    assert pipeline.scheduler.config.clip_sample is clip
    assert (
        f'`timestep_spacing="{spacing}"`, x0 clipping {"on" if clip else "off"}' in (folder / "README.md").read_text()
    )
    for scheduler_name in ("ddim", "dpmsolver++", "unipc"):
        seen = []
        hook = pipeline.unet.register_forward_pre_hook(
            lambda module, args, seen=seen: seen.append(int(args[1].flatten()[0]))
        )
        try:
            sample_images(pipeline, 2, scheduler_name, 10, show_progress=False, generator=torch.manual_seed(0))
        finally:
            hook.remove()
        leading_start = {"ddim": 45, "dpmsolver++": 40, "unipc": 40}[scheduler_name]  # 9 * 50 // 10; 10 * (50 // 11)
        assert seen[0] == (49 if spacing == "trailing" else leading_start), (scheduler_name, seen)
        assert len(seen) == 10


def test_an_unknown_timestep_spacing_is_one_error_line(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "ddpm", "--output_dir", tmp_path / "run",
                             "--ddpm_timestep_spacing", "trail")  # fmt: skip
    assert "--ddpm_timestep_spacing 'trail' is unknown; choose leading, linspace, trailing" in error_line(code, err)
    assert not (tmp_path / "run").exists()
