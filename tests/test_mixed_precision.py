"""``--mixed_precision``: bf16 training picks the math attention kernel on a CPU, and one process can train runs of
different precisions one after another (accelerate's state is not carried over)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_DDPM

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
