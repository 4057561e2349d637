"""``--mixed_precision``: bf16 training picks the math attention kernel on a CPU, and one process can train runs of
different precisions one after another (accelerate's state is not carried over)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_DDPM, error_line, run_cli

import hfgen
from hfgen.training.trainer import attention_backend


def flash_enabled() -> bool:
    return torch.backends.cuda.flash_sdp_enabled()  # the flag both the CUDA and the CPU fused kernels obey


def test_bf16_on_a_cpu_chooses_the_math_attention_kernel_and_restores_the_flags_after():
    assert flash_enabled()
    with attention_backend(torch.device("cpu"), "bf16"):
        assert not flash_enabled()
        assert torch.backends.cuda.math_sdp_enabled()
    assert flash_enabled()
    for device, precision in [("cpu", "no"), ("cpu", "fp16"), ("cuda", "bf16"), ("meta", "bf16")]:
        with attention_backend(torch.device(device), precision):
            assert flash_enabled(), (device, precision)


def test_one_process_trains_fp32_then_bf16_and_only_bf16_avoids_the_fused_kernel(tmp_path, monkeypatch):
    seen: list[tuple[torch.dtype, bool]] = []
    original = F.scaled_dot_product_attention

    def recording(query, *args, **kwargs):
        # training forwards only: not the memory estimate's shapes-only pass, not the sample grid at the end
        if query.device.type != "meta" and torch.is_grad_enabled():
            seen.append((query.dtype, flash_enabled()))
        return original(query, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    runs = {}
    for precision in ("no", "bf16"):
        seen.clear()
        folder = tmp_path / precision
        result = hfgen.train("ddpm", output_dir=str(folder), max_train_steps=2, mixed_precision=precision,
                             report_to="none", **TINY_DDPM)  # fmt: skip
        assert result.global_step == 2
        assert json.loads((folder / "training_args.json").read_text())["mixed_precision"] == precision
        runs[precision] = list(seen)
    # 2 steps x (level 1: one attention down, layers_per_block + 1 = 2 up; one in the middle block)
    fp32, bf16 = runs["no"], runs["bf16"]
    assert len(fp32) == len(bf16) == 2 * 4
    assert all(dtype == torch.float32 and flash for dtype, flash in fp32), fp32
    assert all(dtype == torch.bfloat16 and not flash for dtype, flash in bf16), bf16
    assert flash_enabled()  # nothing leaks out of the run


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_bf16_weights_are_saved_in_float32(tmp_path, precision):
    folder = tmp_path / precision
    hfgen.train("ddpm", output_dir=str(folder), max_train_steps=1, mixed_precision=precision, report_to="none",
                **TINY_DDPM)  # fmt: skip
    pipeline = hfgen.load_pipeline(str(folder))
    assert {p.dtype for p in pipeline.unet.parameters()} == {torch.float32}


# ---------------------------------------------------------------- sampling: --mixed_precision of sample / evaluate


@pytest.fixture(scope="module")
def trained_ddpm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddpm")
    hfgen.train("ddpm", output_dir=str(folder), max_train_steps=20, report_to="none", **TINY_DDPM)
    return str(folder)


def test_bf16_sampling_runs_the_denoiser_in_bf16_and_keeps_the_rest_float32(trained_ddpm):
    from hfgen.pipelines.sampling import sample_images

    pipeline = hfgen.load_pipeline(trained_ddpm)
    dtypes: list[torch.dtype] = []
    pipeline.unet.conv_in.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    runs = {}
    for precision in ("no", "bf16"):
        dtypes.clear()
        runs[precision] = sample_images(pipeline, 6, scheduler_name="ddim", num_inference_steps=4, batch_size=6,
                                        generator=torch.Generator().manual_seed(0), show_progress=False,
                                        mixed_precision=precision)  # fmt: skip
        assert set(dtypes) == {torch.float32 if precision == "no" else torch.bfloat16}
        assert len(dtypes) == 4  # one batch, 4 DDIM steps
    fp32, bf16 = runs["no"], runs["bf16"]
    assert bf16.images.dtype == torch.float32 and bf16.network_evaluations == fp32.network_evaluations == 4
    difference = (bf16.images - fp32.images).abs()
    assert 0 < difference.max() < 0.1, difference.max()  # the same images up to bf16 rounding
    assert "forward" not in vars(pipeline.unet)  # the class's forward is back
    again = sample_images(pipeline, 6, scheduler_name="ddim", num_inference_steps=4, batch_size=6,
                          generator=torch.Generator().manual_seed(0), show_progress=False)  # fmt: skip
    assert torch.equal(again.images, fp32.images)


def test_bf16_sampling_keeps_a_forward_set_on_the_instance(trained_ddpm):
    from hfgen.pipelines.sampling import bf16_network, sample_images

    pipeline = hfgen.load_pipeline(trained_ddpm)
    unet, calls = pipeline.unet, []
    plain = unet.forward

    def own_forward(*args, **kwargs):  # what accelerate's hooks or an outer wrapper put on the instance
        calls.append(torch.is_autocast_enabled("cpu"))
        return plain(*args, **kwargs)

    unet.forward = own_forward
    sample_images(pipeline, 2, scheduler_name="ddim", num_inference_steps=2, show_progress=False,
                  mixed_precision="bf16")  # fmt: skip
    assert calls == [True, True] and vars(unet)["forward"] is own_forward
    with bf16_network(unet), bf16_network(unet):  # nested: each restores what it found
        pass
    assert vars(unet)["forward"] is own_forward


def test_bf16_sampling_is_refused_for_a_one_shot_generator_and_unknown_precisions(tmp_path, trained_ddpm):
    from hfgen.errors import HfgenError
    from hfgen.pipelines.sampling import sample_images

    vae = tmp_path / "vae"
    hfgen.train("vae", output_dir=str(vae), max_train_steps=1, report_to="none", resolution=8, latent_dim=2,
                block_out_channels=[8, 16], save_images_steps=1000, checkpointing_steps=1000)  # fmt: skip
    with pytest.raises(HfgenError, match="one network evaluation; mixed_precision bf16 is for diffusion models"):
        sample_images(hfgen.load_pipeline(str(vae)), 2, mixed_precision="bf16", show_progress=False)
    with pytest.raises(HfgenError, match="mixed_precision must be one of no, bf16, got 'fp16'"):
        sample_images(hfgen.load_pipeline(trained_ddpm), 2, mixed_precision="fp16", show_progress=False)


def test_the_command_line_takes_bf16_and_refuses_other_precisions_in_one_line(capsys, tmp_path, trained_ddpm):
    grid = tmp_path / "grid.png"
    code, out, err = run_cli(capsys, "sample", trained_ddpm, "--scheduler", "ddim", "--num_inference_steps", "3",
                             "--num_images", "4", "--mixed_precision", "bf16", "--output", grid)  # fmt: skip
    assert code == 0, err
    assert grid.is_file() and "network evaluations per image: 3" in out
    for command in ("sample", "evaluate", "compare-samplers"):
        line = error_line(*run_cli(capsys, command, trained_ddpm, "--mixed_precision", "fp16")[::2])
        assert "--mixed_precision" in line and "'fp16'" in line and "bf16" in line, line


def test_a_bf16_evaluation_is_recorded_apart_from_the_float32_one():
    from hfgen.jobs.evaluate import evaluation_key

    base = {"scheduler": "DDIMScheduler", "num_inference_steps": 50, "num_images": 100}
    assert evaluation_key(base) == "DDIMScheduler-50steps-100images"
    assert evaluation_key({**base, "mixed_precision": "bf16"}) == "DDIMScheduler-50steps-100images-bf16"


def test_hfgen_evaluate_bf16_writes_its_own_metrics_entry(capsys, trained_ddpm):
    code, out, err = run_cli(capsys, "evaluate", trained_ddpm, "--scheduler", "ddim", "--num_inference_steps", "3",
                             "--num_images", "70", "--mixed_precision", "bf16")  # fmt: skip
    assert code == 0, err
    evaluations = json.loads((Path(trained_ddpm) / "metrics.json").read_text())["evaluations"]
    entry = evaluations["DDIMScheduler-3steps-70images-bf16"]
    assert entry["mixed_precision"] == "bf16" and entry["nfe"] == 3 and entry["fid"] > 0
    card = (Path(trained_ddpm) / "README.md").read_text()
    assert "| DDIMScheduler, bf16 UNet | 3 | 70 |" in card and "DDIMScheduler 3 steps, bf16 UNet" in card

    code, out, err = run_cli(capsys, "evaluate", trained_ddpm, "--scheduler", "ddim", "--num_inference_steps", "3",
                             "--num_images", "70")  # fmt: skip
    assert code == 0, err
    written = json.loads((Path(trained_ddpm) / "metrics.json").read_text())
    assert written["mixed_precision"] == "no"  # the top level is the latest run, not a leftover of the bf16 one
    assert set(written["evaluations"]) >= {"DDIMScheduler-3steps-70images", "DDIMScheduler-3steps-70images-bf16"}
    assert "| DDIMScheduler | 3 | 70 |" in (Path(trained_ddpm) / "README.md").read_text()
