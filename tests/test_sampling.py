"""Scheduler swapping (`hfgen.pipelines.scheduling`) and batched sampling (`hfgen.pipelines.sampling`)."""

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UNet2DModel,
    UniPCMultistepScheduler,
)

from hfgen.errors import UnknownNameError
from hfgen.pipelines.sampling import SamplingResult, sample_images
from hfgen.pipelines.scheduling import SCHEDULERS, UnconditionalDiffusionPipeline, make_scheduler, scheduler_names

pytestmark = pytest.mark.unit  # `make test-fast`


def tiny_unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


@pytest.fixture
def stock_pipeline() -> DDPMPipeline:
    pipeline = DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=50))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def count_unet_calls(unet):
    calls = []
    handle = unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    return calls, handle


def test_ddim_matches_stock_ddpm_pipeline_exactly(stock_pipeline):
    config = stock_pipeline.scheduler.config
    stock = DDPMPipeline(unet=stock_pipeline.unet, scheduler=DDIMScheduler.from_config(config))
    ours = UnconditionalDiffusionPipeline(unet=stock_pipeline.unet, scheduler=DDIMScheduler.from_config(config))
    for pipeline in (stock, ours):
        pipeline.set_progress_bar_config(disable=True)
    expected = stock(batch_size=3, generator=torch.Generator().manual_seed(7), num_inference_steps=6, output_type="np")
    actual = ours(batch_size=3, generator=torch.Generator().manual_seed(7), num_inference_steps=6, output_type="np")
    assert actual.images.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(actual.images, expected.images)
    # A different seed must give different images, or the comparison above proves nothing.
    other = ours(batch_size=3, generator=torch.Generator().manual_seed(8), num_inference_steps=6, output_type="np")
    assert not np.array_equal(other.images, expected.images)


def test_ddpm_scheduler_matches_stock_pipeline_including_step_noise(stock_pipeline):
    ours = UnconditionalDiffusionPipeline(unet=stock_pipeline.unet, scheduler=stock_pipeline.scheduler)
    ours.set_progress_bar_config(disable=True)
    expected = stock_pipeline(batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=5)
    actual = ours(batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=5, output_type="pt")
    expected_array = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in expected.images])
    assert actual.images.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(actual.images.permute(0, 2, 3, 1).numpy(), expected_array[..., None], atol=1 / 255)


def test_make_scheduler_short_names_and_class_names(stock_pipeline):
    config = stock_pipeline.scheduler.config
    ddim = make_scheduler("ddim", config)
    assert type(ddim) is DDIMScheduler
    assert ddim.config.num_train_timesteps == 50

    dpm = make_scheduler("dpmsolver++", config)
    assert type(dpm) is DPMSolverMultistepScheduler
    assert dpm.config.algorithm_type == "dpmsolver++"
    assert dpm.config.num_train_timesteps == 50

    sde = make_scheduler("sde-dpmsolver++", config)
    assert type(sde) is DPMSolverMultistepScheduler
    assert sde.config.algorithm_type == "sde-dpmsolver++" and sde.config.use_exponential_sigmas

    euler = make_scheduler("euler", config)
    assert type(euler) is EulerDiscreteScheduler
    assert euler.config.num_train_timesteps == 50

    unipc = make_scheduler("UniPCMultistepScheduler", config)
    assert type(unipc) is UniPCMultistepScheduler
    assert unipc.config.num_train_timesteps == 50

    assert type(make_scheduler("DDIM", config)) is DDIMScheduler
    assert set(scheduler_names()) == set(SCHEDULERS)


@pytest.mark.parametrize("name", ["nope", "DDPMPipeline", "UNet2DModel"])
def test_make_scheduler_unknown_name_lists_valid_names(stock_pipeline, name):
    with pytest.raises(UnknownNameError) as info:
        make_scheduler(name, stock_pipeline.scheduler.config)
    message = str(info.value)
    assert repr(name) in message
    for valid in ("ddim", "dpmsolver++", "euler", "heun"):
        assert valid in message


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_short_scheduler_name_builds_and_samples(stock_pipeline, name):
    scheduler = make_scheduler(name, stock_pipeline.scheduler.config)
    assert type(scheduler).__name__ == SCHEDULERS[name][0]
    for key, value in SCHEDULERS[name][1].items():
        assert scheduler.config[key] == value
    result = sample_images(
        stock_pipeline,
        num_images=2,
        scheduler_name=name,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.images.shape == (2, 1, 8, 8)
    assert torch.isfinite(result.images).all()
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    assert result.network_evaluations >= 3


def test_sample_images_heun_counts_two_evaluations_per_step_but_the_last(stock_pipeline):
    calls, handle = count_unet_calls(stock_pipeline.unet)
    try:
        result = sample_images(
            stock_pipeline,
            num_images=5,
            scheduler_name="heun",
            num_inference_steps=3,
            batch_size=2,
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        handle.remove()
    assert isinstance(result, SamplingResult)
    assert result.scheduler_name == "HeunDiscreteScheduler"
    assert result.num_inference_steps == 3
    assert result.network_evaluations == 2 * 3 - 1
    # batches of 2, 2 and 1 images, each with 2 * 3 - 1 UNet calls
    assert calls == [2] * 5 + [2] * 5 + [1] * 5
    assert result.images.shape == (5, 1, 8, 8)
    assert result.images.dtype == torch.float32
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0


def test_sample_images_ddim_counts_one_evaluation_per_step(stock_pipeline):
    calls, handle = count_unet_calls(stock_pipeline.unet)
    try:
        result = sample_images(
            stock_pipeline,
            num_images=7,
            scheduler_name="ddim",
            num_inference_steps=4,
            batch_size=3,
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        handle.remove()
    assert result.scheduler_name == "DDIMScheduler"
    assert result.network_evaluations == 4
    assert calls == [3] * 4 + [3] * 4 + [1] * 4
    assert result.images.shape == (7, 1, 8, 8)
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    assert result.images.std() > 0  # not a constant image
    # the sampler's hook is removed afterwards: the stock pipeline's UNet has no hook left
    assert not stock_pipeline.unet._forward_hooks


def test_sample_images_is_reproducible_and_defaults_to_the_trained_scheduler(stock_pipeline):
    def run(seed):
        return sample_images(
            stock_pipeline, num_images=2, num_inference_steps=3, generator=torch.Generator().manual_seed(seed)
        )

    first, again, other = run(1), run(1), run(2)
    assert first.scheduler_name == "DDPMScheduler"
    assert first.network_evaluations == 3
    torch.testing.assert_close(first.images, again.images, rtol=0, atol=0)
    assert not torch.equal(first.images, other.images)


def test_sample_images_rejects_non_positive_counts(stock_pipeline):
    from hfgen.errors import HfgenError

    with pytest.raises(HfgenError):
        sample_images(stock_pipeline, num_images=0)
    with pytest.raises(HfgenError):
        sample_images(stock_pipeline, num_images=2, batch_size=0)


class _Recorder:
    """Records the latent each scheduler call sees and the first UNet input; the UNet predicts zero noise."""

    def __init__(self, unet):
        self.unet_inputs = []
        self.handle = unet.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.unet_inputs.append(args[0].detach().clone())
        output.sample = torch.zeros_like(output.sample)
        return output


def _first_latent_std(pipeline, scheduler) -> tuple[float, float]:
    """(std of the latent handed to the first `scheduler.step`, std of the first UNet input)."""
    pipeline.scheduler = scheduler
    latents = []
    original_step = scheduler.step

    def step(model_output, timestep, sample, *args, **kwargs):
        latents.append(sample.detach().clone())
        return original_step(model_output, timestep, sample, *args, **kwargs)

    scheduler.step = step
    recorder = _Recorder(pipeline.unet)
    try:
        pipeline(batch_size=16, generator=torch.Generator().manual_seed(0), num_inference_steps=4, output_type="np")
    finally:
        recorder.handle.remove()
    return latents[0].std().item(), recorder.unet_inputs[0].std().item()


def test_euler_initial_noise_is_scaled_by_init_noise_sigma(stock_pipeline):
    unet = stock_pipeline.unet
    # T = 1000 with the default betas: sigma_max ~ 157 (with T = 50 it is below 1 and the check would be weak)
    config = DDPMScheduler(num_train_timesteps=1000).config

    ours = UnconditionalDiffusionPipeline(unet=unet, scheduler=EulerDiscreteScheduler.from_config(config))
    ours.set_progress_bar_config(disable=True)
    euler = EulerDiscreteScheduler.from_config(config)
    euler.set_timesteps(4)
    sigma = float(euler.init_noise_sigma)
    assert sigma > 2.0  # otherwise scaled and unscaled noise are hard to tell apart

    latent_std, unet_input_std = _first_latent_std(ours, EulerDiscreteScheduler.from_config(config))
    assert latent_std == pytest.approx(sigma, rel=0.1)
    # scale_model_input divides by sqrt(sigma^2 + 1): the UNet sees unit-variance input, as in training
    assert unet_input_std == pytest.approx(1.0, rel=0.1)

    # The stock DDPMPipeline skips both calls: its latent starts at std 1, a bug hfgen's pipeline fixes.
    stock = DDPMPipeline(unet=unet, scheduler=EulerDiscreteScheduler.from_config(config))
    stock.set_progress_bar_config(disable=True)
    stock_latent_std, stock_unet_input_std = _first_latent_std(stock, EulerDiscreteScheduler.from_config(config))
    assert stock_latent_std == pytest.approx(1.0, rel=0.1)
    assert stock_unet_input_std == pytest.approx(1.0, rel=0.1)


def test_ddim_needs_no_scaling_and_heun_runs_through_our_pipeline(stock_pipeline):
    config = stock_pipeline.scheduler.config
    ours = UnconditionalDiffusionPipeline(unet=stock_pipeline.unet, scheduler=DDIMScheduler.from_config(config))
    ours.set_progress_bar_config(disable=True)
    latent_std, unet_input_std = _first_latent_std(ours, DDIMScheduler.from_config(config))
    assert latent_std == pytest.approx(1.0, rel=0.1)
    assert unet_input_std == pytest.approx(1.0, rel=0.1)

    # HeunDiscreteScheduler.step takes no generator; the pipeline must not pass one
    ours.scheduler = HeunDiscreteScheduler.from_config(config)
    out = ours(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=2, output_type="pt")
    assert out.images.shape == (2, 1, 8, 8)
    assert torch.isfinite(out.images).all()


@pytest.mark.parametrize("name", ["dpmsolver++", "unipc", "deis"])
def test_multistep_solvers_refuse_a_repeated_first_timestep_before_sampling(stock_pipeline, name):
    """With as many steps as trained timesteps these solvers used to crash mid-sampling (IndexError/AssertionError in
    diffusers, huggingface/diffusers#10575): now one error names the largest count that works, and that count runs."""
    from hfgen.errors import ConfigurationError

    # the scheduler as a saved folder loads it: every key explicit (so "leading" spacing reaches the solver)
    config = {k: v for k, v in stock_pipeline.scheduler.config.items() if not k.startswith("_")}
    stock_pipeline.scheduler = DDPMScheduler.from_config(config)
    calls, handle = count_unet_calls(stock_pipeline.unet)
    for steps in (50, 80):
        with pytest.raises(ConfigurationError, match=f"cannot take {steps} steps on a model trained with 50.*49 or"):
            sample_images(stock_pipeline, num_images=2, scheduler_name=name, num_inference_steps=steps)
    assert calls == []  # refused before the first network evaluation
    result = sample_images(stock_pipeline, num_images=2, scheduler_name=name, num_inference_steps=49)
    handle.remove()
    assert result.images.shape == (2, 1, 8, 8) and torch.isfinite(result.images).all()
    # PNDM repeats a timestep by design and Heun evaluates each twice: neither is refused
    sample_images(stock_pipeline, num_images=2, scheduler_name="pndm", num_inference_steps=50)
