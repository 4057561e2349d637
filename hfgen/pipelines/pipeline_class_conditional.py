"""`ClassConditionalDiffusionPipeline`: a class-conditional DDPM sampled with any diffusers scheduler and
classifier-free guidance (Ho & Salimans 2022)."""

from __future__ import annotations

import inspect

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from hfgen.pipelines.conditioning import (
    check_guidance_scale,
    classifier_free_guidance,
    labels_batch_size,
    normalize_id2label,
    resolve_class_labels,
)
from hfgen.pipelines.utils import PortablePipelineMixin, postprocess_images


def guided_scheduler(scheduler: SchedulerMixin, guidance_scale: float) -> SchedulerMixin:
    """``scheduler``, or for guided sampling (w not 0 or 1) with DDIM a copy without x0 clipping and thresholding.

    diffusers' `DDIMScheduler.step` clips (or thresholds) the predicted x0 but keeps the unclipped ε in the direction
    term, so the two disagree whenever x0 leaves [-1, 1], which guided ε makes it do at every step. On the
    conditional digits DDPM (DDIM-50, w = 3, 200 images) this turned the samples to mush: class accuracy 0.71 with
    the trained config's ``clip_sample=True`` (0.72 with dynamic thresholding), 1.00 without clipping. DDPM's own
    step (x0 enters the posterior mean directly) and the DPM-Solver/UniPC family do not have the mismatch and are
    left as they are.
    """
    from diffusers import DDIMScheduler

    config = scheduler.config
    clips = getattr(config, "clip_sample", False) or getattr(config, "thresholding", False)
    if guidance_scale in (0.0, 1.0) or type(scheduler) is not DDIMScheduler or not clips:
        return scheduler
    return DDIMScheduler.from_config(config, clip_sample=False, thresholding=False)


class ClassConditionalDiffusionPipeline(PortablePipelineMixin, DiffusionPipeline):
    """Generate images of chosen classes with a class-conditional `UNet2DModel` (``num_class_embeds = C + 1``; index
    C is "no label", trained by label dropout) and any diffusers scheduler.

    Like `UnconditionalDiffusionPipeline` (the stock `DDPMPipeline` plus ``init_noise_sigma`` and
    ``scale_model_input``, so that every diffusers scheduler swaps in) with ``class_labels`` and ``guidance_scale``.

    Parameters:
        unet (`UNet2DModel`): the denoiser, with ``num_class_embeds`` set.
        scheduler (`SchedulerMixin`): any diffusers noise scheduler.
        id2label (`dict`, *optional*): class index -> class name (stored in ``model_index.json``).

    Raises:
        ValueError: a UNet without class embeddings.
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, id2label: dict | None = None):
        super().__init__()
        if not unet.config.num_class_embeds or unet.config.num_class_embeds < 2:
            raise ValueError("a class-conditional pipeline needs a UNet2DModel with num_class_embeds = classes + 1")
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(id2label=normalize_id2label(id2label, unet.config.num_class_embeds - 1))

    @property
    def num_classes(self) -> int:
        """C, the number of classes (the UNet's ``num_class_embeds`` minus the "no label" class)."""
        return self.unet.config.num_class_embeds - 1

    @property
    def id2label(self) -> dict[int, str]:
        """Class index -> name."""
        return normalize_id2label(self.config.id2label, self.num_classes)

    _callback_tensor_inputs = ["latents"]

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        class_labels: int | str | list | torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 1000,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
    ):
        """Sample ``batch_size`` images of the classes ``class_labels``.

        Args:
            batch_size (`int`): images to generate (the length of ``class_labels`` when it is a list).
            class_labels: class indices or names, one for all images or one per image; None: every class in turn.
            guidance_scale (`float`): w of classifier-free guidance, ``eps = eps_uncond + w (eps_cond - eps_uncond)``;
                1 samples the conditional model alone, 0 the unconditional one, > 1 trades diversity for fidelity.
                Guided DDIM samples without x0 clipping (see `guided_scheduler`).
            generator: the only source of randomness.
            num_inference_steps (`int`): scheduler steps.
            output_type (`str`): ``"pil"``, ``"np"`` (`(B, H, W, C)` in [0, 1]) or ``"pt"`` (`(B, C, H, W)` in [0, 1]).
            callback_on_step_end (callable, *optional*): diffusers' ``callback_on_step_end(pipeline, step_index,
                timestep, callback_kwargs)`` after each step with ``{"latents": x_t}``; the returned ``"latents"``
                replace x_t.

        Returns:
            `ImagePipelineOutput` (or a tuple ``(images,)`` when ``return_dict=False``).

        Raises:
            ValueError: a label outside the classes, an unknown class name, a wrong number of labels or a negative
                ``guidance_scale``.
        """
        batch_size = labels_batch_size(class_labels, batch_size)
        check_guidance_scale(guidance_scale, conditional=True)
        labels = resolve_class_labels(class_labels, batch_size, self.num_classes, self.config.id2label)
        labels = labels.to(self._execution_device)
        config = self.unet.config
        size = config.sample_size
        shape = (batch_size, config.in_channels, *((size, size) if isinstance(size, int) else size))
        image = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype)
        scheduler = guided_scheduler(self.scheduler, guidance_scale)
        scheduler.set_timesteps(num_inference_steps)
        image = image * scheduler.init_noise_sigma
        step_kwargs = {}
        if "generator" in inspect.signature(scheduler.step).parameters:
            step_kwargs["generator"] = generator

        def predict(sample, timestep, class_labels):
            return self.unet(sample, timestep, class_labels=class_labels).sample

        for index, t in enumerate(self.progress_bar(scheduler.timesteps)):
            model_input = scheduler.scale_model_input(image, t)
            timestep = torch.as_tensor(t, device=image.device)
            model_output = classifier_free_guidance(
                predict, model_input, timestep, labels, self.num_classes, guidance_scale
            )
            image = scheduler.step(model_output, t, image, **step_kwargs).prev_sample
            if callback_on_step_end is not None:
                image = callback_on_step_end(self, index, t, {"latents": image}).get("latents", image)
        images = postprocess_images(image, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)


__all__ = ["ClassConditionalDiffusionPipeline", "guided_scheduler"]
