"""``--scheduler_config``: scheduler config options replaced at sampling time (`hfgen sample`, `hfgen evaluate`,
`hfgen compare-samplers` and their Python functions), as diffusers' ``from_config(config, **kwargs)`` does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler
from helpers import TINY_DDPM, error_line, run_cli

import hfgen
from hfgen.errors import ConfigurationError, HfgenError, UnknownNameError
from hfgen.pipelines.sampling import sample_images
from hfgen.pipelines.scheduling import make_scheduler, scheduler_options


@pytest.fixture(scope="module")
def trained_ddpm(tmp_path_factory):
    """A tiny DDPM (T = 50) saved with diffusers' defaults: leading timestep spacing, x0 clipping on."""
    folder = tmp_path_factory.mktemp("ddpm")
    hfgen.train("ddpm", output_dir=str(folder), max_train_steps=20, report_to="none", **TINY_DDPM)
    return str(folder)


@pytest.fixture
def ddpm_copy(tmp_path, trained_ddpm):
    """A copy of the trained folder for tests that write into it (metrics.json, the card, sampler comparisons)."""
    shutil.copytree(trained_ddpm, tmp_path / "copy")
    return str(tmp_path / "copy")


def first_timesteps(pipeline, **kwargs) -> list[int]:
    """The timestep of every UNet call of one 2-image sampling run."""
    seen: list[int] = []
    hook = pipeline.unet.register_forward_pre_hook(lambda module, args: seen.append(int(args[1].flatten()[0])))
    try:
        sample_images(pipeline, 2, show_progress=False, generator=torch.manual_seed(0), **kwargs)
    finally:
        hook.remove()
    return seen


def test_make_scheduler_applies_overrides_and_lists_the_options_of_an_unknown_one():
    config = DDPMScheduler(num_train_timesteps=50).config
    ddim = make_scheduler("ddim", config, timestep_spacing="trailing", clip_sample=False)
    assert (ddim.config.timestep_spacing, ddim.config.clip_sample) == ("trailing", False)
    dpm = make_scheduler("dpmsolver++", config, timestep_spacing="trailing")
    assert dpm.config.algorithm_type == "dpmsolver++" and dpm.config.timestep_spacing == "trailing"
    assert "clip_sample" in scheduler_options("ddim") and "clip_sample" not in scheduler_options("dpmsolver++")
    with pytest.raises(UnknownNameError, match="DPMSolverMultistepScheduler has no config option 'clip_sample'; the"):
        make_scheduler("dpmsolver++", config, clip_sample=False)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"clip_sample": "false"}, "clip_sample must be true or false (a JSON boolean), got 'false'"),
        ({"timestep_spacing": 3}, "timestep_spacing must be a string, got 3"),
        ({"timestep_spacing": "trail"}, "timestep_spacing must be one of leading, linspace, trailing, got 'trail'"),
        ({"steps_offset": "1"}, "steps_offset must be a number"),
        ({"steps_offset": 100}, "puts timesteps outside the trained 0..49"),
        ({"num_train_timesteps": 10}, "num_train_timesteps cannot change at sampling time"),
        ({"prediction_type": "sample"}, "prediction_type cannot change at sampling time"),
    ],
)
def test_make_scheduler_refuses_wrong_types_trained_options_and_timesteps_out_of_range(overrides, message):
    config = DDPMScheduler(num_train_timesteps=50).config
    with pytest.raises(ConfigurationError) as caught:
        make_scheduler("ddim", config, **overrides)
    assert message in str(caught.value)


@pytest.mark.parametrize("scheduler_name", ["ddim", None])  # None: the folder's own DDPMScheduler
def test_timestep_spacing_override_moves_the_first_step_to_pure_noise(trained_ddpm, scheduler_name):
    pipeline = hfgen.load_pipeline(trained_ddpm)
    leading = first_timesteps(pipeline, scheduler_name=scheduler_name, num_inference_steps=10)
    trailing = first_timesteps(pipeline, scheduler_name=scheduler_name, num_inference_steps=10,
                               scheduler_config={"timestep_spacing": "trailing"})  # fmt: skip
    assert leading[0] == 45 and trailing[0] == 49  # T = 50: 9 * 50 // 10, and the last trained timestep
    assert len(leading) == len(trailing) == 10
    assert pipeline.scheduler.config.timestep_spacing == "leading"  # the loaded pipeline is left as it was


def test_an_override_samples_exactly_like_a_folder_saved_with_that_config(tmp_path, trained_ddpm):
    edited = tmp_path / "edited"
    shutil.copytree(trained_ddpm, edited)
    config_path = edited / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update(clip_sample=False, timestep_spacing="trailing")
    config_path.write_text(json.dumps(config))
    overrides = {"clip_sample": False, "timestep_spacing": "trailing"}
    options = {"scheduler_name": "ddim", "num_inference_steps": 10, "show_progress": False}
    by_override = sample_images(hfgen.load_pipeline(trained_ddpm), 4, generator=torch.manual_seed(0),
                                scheduler_config=overrides, **options)  # fmt: skip
    by_folder = sample_images(hfgen.load_pipeline(str(edited)), 4, generator=torch.manual_seed(0), **options)
    default = sample_images(hfgen.load_pipeline(trained_ddpm), 4, generator=torch.manual_seed(0), **options)
    assert torch.equal(by_override.images, by_folder.images)
    assert not torch.allclose(by_override.images, default.images, atol=1e-3)


def test_a_pipeline_without_a_diffusers_scheduler_refuses_scheduler_config(tmp_path):
    vae = tmp_path / "vae"
    hfgen.train("vae", output_dir=str(vae), max_train_steps=1, report_to="none", resolution=8, latent_dim=2,
                block_out_channels=[8, 16], save_images_steps=1000, checkpointing_steps=1000)  # fmt: skip
    with pytest.raises(HfgenError, match="has no diffusers scheduler whose config could be changed; drop "):
        sample_images(hfgen.load_pipeline(str(vae)), 2, scheduler_config={"clip_sample": False}, show_progress=False)


def test_the_command_line_refuses_unknown_options_and_bad_json_in_one_line(capsys, trained_ddpm):
    misspelt = '{"timestep_spacin": "trailing"}'
    for command in ("sample", "evaluate"):
        code, out, err = run_cli(capsys, command, trained_ddpm, "--scheduler", "ddim", "--num_inference_steps", "3",
                                 "--num_images", "70", "--scheduler_config", misspelt)  # fmt: skip
        line = error_line(code, err)
        assert "DDIMScheduler has no config option 'timestep_spacin'" in line and "timestep_spacing" in line, line
    line = error_line(*run_cli(capsys, "sample", trained_ddpm, "--scheduler_config", "{timestep_spacing")[::2])
    assert "--scheduler_config" in line and "not valid JSON" in line, line


def test_hfgen_evaluate_records_the_overrides_in_its_own_metrics_entry(capsys, ddpm_copy):
    trailing = '{"timestep_spacing": "trailing"}'
    code, out, err = run_cli(capsys, "evaluate", ddpm_copy, "--scheduler", "ddim", "--num_inference_steps", "3",
                             "--num_images", "70", "--scheduler_config", trailing)  # fmt: skip
    assert code == 0, err
    written = json.loads((Path(ddpm_copy) / "metrics.json").read_text())
    entry = written["evaluations"]["DDIMScheduler-3steps-70images-timestep_spacing=trailing"]
    assert entry["scheduler_config"] == {"timestep_spacing": "trailing"} and entry["nfe"] == 3
    assert "| DDIMScheduler, timestep_spacing=trailing | 3 | 70 |" in (Path(ddpm_copy) / "README.md").read_text()

    code, out, err = run_cli(capsys, "evaluate", ddpm_copy, "--scheduler", "ddim", "--num_inference_steps", "3",
                             "--num_images", "70")  # fmt: skip
    assert code == 0, err
    written = json.loads((Path(ddpm_copy) / "metrics.json").read_text())
    assert written["scheduler_config"] == {}  # the top level is the latest evaluation, not a leftover
    assert set(written["evaluations"]) >= {"DDIMScheduler-3steps-70images",
                                            "DDIMScheduler-3steps-70images-timestep_spacing=trailing"}  # fmt: skip


def test_compare_samplers_applies_each_option_where_the_scheduler_has_it(capsys, ddpm_copy):
    from hfgen.jobs.compare_samplers import compare_samplers

    options = '{"clip_sample": false, "timestep_spacing": "trailing"}'
    code, out, err = run_cli(
        capsys, "compare-samplers", ddpm_copy, "--num_images", "70", "--scheduler_config", options
    )
    assert code == 0, err
    rows = json.loads((Path(ddpm_copy) / "sampler_comparison.json").read_text())
    both = {"clip_sample": False, "timestep_spacing": "trailing"}
    for row in rows:  # DDPM and DDIM have both options, DPM-Solver++ (and its SDE form) only the spacing
        expected = both if row["scheduler"] in ("ddpm", "ddim") else {"timestep_spacing": "trailing"}
        assert row["scheduler_config"] == expected, row
    assert {row["scheduler"] for row in rows} >= {"ddpm", "ddim", "dpmsolver++"}
    title = (Path(ddpm_copy) / "sampler_comparison.md").read_text().splitlines()[0]
    assert "clip_sample=False, timestep_spacing=trailing where the scheduler has it" in title, title
    with pytest.raises(UnknownNameError, match="no sampler of this comparison has the config option 'use_karras'"):
        compare_samplers(ddpm_copy, num_images=70, configs=[("ddim", 5)], scheduler_config={"use_karras": True})
