"""`sample_images`: sample any trained hfgen pipeline in batches, optionally with another diffusers scheduler."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfgen.errors import HfgenError


@dataclass
class SamplingResult:
    """What `sample_images` returns.

    Attributes:
        images (`torch.Tensor` of shape `(num_images, C, H, W)`): values in [0, 1].
        scheduler_name (`str`): the scheduler class used (or the pipeline class for non-diffusion models).
        num_inference_steps (`int`): sampling steps (1 for one-shot generators).
        network_evaluations (`int`): denoiser forward passes per image (Heun and other second-order solvers
            make two per step).
    """

    images: torch.Tensor
    scheduler_name: str
    num_inference_steps: int
    network_evaluations: int


def sample_images(
    pipeline,
    num_images: int,
    scheduler: str | None = None,
    num_inference_steps: int | None = None,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> SamplingResult:
    """Draw ``num_images`` samples from ``pipeline`` in batches of ``batch_size``.

    For diffusion pipelines (with ``unet`` and ``scheduler``) the scheduler can be swapped by name (see
    `hfgen.pipelines.scheduling.SCHEDULERS`); sampling runs through `UnconditionalDiffusionPipeline`, which matches
    the stock `DDPMPipeline` for DDPM/DDIM and adds the input scaling sigma-based schedulers need. The default number
    of steps is the training ``num_train_timesteps`` for DDPM and 50 for every other scheduler.

    Raises:
        HfgenError: for ``num_images <= 0`` or a pipeline that cannot sample.
    """
    from hfgen.pipelines.scheduling import UnconditionalDiffusionPipeline, make_scheduler

    if num_images <= 0 or batch_size <= 0:
        raise HfgenError(f"num_images and batch_size must be positive, got {num_images} and {batch_size}")
    components = getattr(pipeline, "components", {})
    if "unet" in components and "scheduler" in components:
        sched = pipeline.scheduler if scheduler is None else make_scheduler(scheduler, pipeline.scheduler.config)
        sampler = UnconditionalDiffusionPipeline(unet=pipeline.unet, scheduler=sched)
        sampler.set_progress_bar_config(disable=True)
        if num_inference_steps is None:
            is_ddpm = type(sched).__name__ == "DDPMScheduler"
            num_inference_steps = sched.config.num_train_timesteps if is_ddpm else 50
        network = pipeline.unet
        name = type(sched).__name__
        kwargs = {"num_inference_steps": num_inference_steps}
    else:
        if scheduler is not None:
            raise HfgenError(f"{type(pipeline).__name__} has no scheduler to swap; drop --scheduler")
        sampler, network, name, kwargs = pipeline, None, type(pipeline).__name__, {}
        num_inference_steps = num_inference_steps or 1
    calls = []
    handle = network.register_forward_hook(lambda *_: calls.append(1)) if network is not None else None
    chunks, per_image = [], None
    try:
        from tqdm.auto import tqdm

        with tqdm(total=num_images, desc=f"Sampling ({name})", unit="img") as progress:
            remaining = num_images
            while remaining > 0:
                size = min(batch_size, remaining)
                before = len(calls)
                out = sampler(batch_size=size, generator=generator, output_type="pt", **kwargs).images
                if per_image is None:
                    per_image = len(calls) - before
                chunks.append(out.cpu().float())
                remaining -= size
                progress.update(size)
    finally:
        if handle is not None:
            handle.remove()
    images = torch.cat(chunks)
    return SamplingResult(images, name, num_inference_steps, per_image if network is not None else 1)
