"""`AnnealedLangevinPipeline`: sample a noise-conditional score network (NCSN) with annealed Langevin dynamics."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline, UNet2DModel
from diffusers.utils import BaseOutput

from hfgen.pipelines.conditioning import (
    check_guidance_scale,
    classifier_free_guidance,
    labels_batch_size,
    normalize_id2label,
    resolve_class_labels,
)
from hfgen.pipelines.utils import PortablePipelineMixin, postprocess_images
from hfgen.schedulers.scheduling_annealed_langevin import AnnealedLangevinScheduler


@dataclass
class AnnealedLangevinPipelineOutput(BaseOutput):
    """Output of `AnnealedLangevinPipeline.__call__`.

    Args:
        images: the final samples: a list of PIL images, a `(batch_size, height, width, num_channels)` NumPy array
            (``"np"``) or a `(batch_size, num_channels, height, width)` tensor (``"pt"``), values in [0, 1].
        intermediates (`torch.Tensor`, *optional*): with ``return_intermediates=True``, a tensor of shape
            `(num_noise_levels, batch_size, num_channels, height, width)`: the samples at the end of each noise
            level (σ_1 first, before the final denoising step), clamped to [0, 1].
        sigmas (`list[float]`, *optional*): the noise level of each row of ``intermediates``.
    """

    images: object
    intermediates: torch.Tensor | None = None
    sigmas: list[float] | None = None


class AnnealedLangevinPipeline(PortablePipelineMixin, DiffusionPipeline):
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) with a noise-conditional score network.

    Parameters:
        unet (`UNet2DModel`): the score network s_θ(x, σ), conditioned on the integer noise-level index as its
            timestep (see `AnnealedLangevinScheduler`).
        scheduler (`AnnealedLangevinScheduler`): noise levels, step sizes and the Langevin update.
        id2label (`dict`, *optional*): class names of a class-conditional network (``num_class_embeds = C + 1``,
            index C is "no label"); None for an unconditional one.
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: AnnealedLangevinScheduler, id2label: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        if self.num_classes:
            self.register_to_config(id2label=normalize_id2label(id2label, self.num_classes))

    @property
    def num_classes(self) -> int | None:
        """C for a class-conditional score network (``num_class_embeds - 1``), None for an unconditional one."""
        embeds = getattr(self.unet.config, "num_class_embeds", None)
        return embeds - 1 if embeds else None

    @property
    def id2label(self) -> dict[int, str] | None:
        """Class index -> name of a class-conditional network, None otherwise."""
        if not self.num_classes:
            return None
        return normalize_id2label(getattr(self.config, "id2label", None), self.num_classes)

    _callback_tensor_inputs = ["latents"]

    def _check_inputs(self, class_labels, batch_size: int, guidance_scale: float) -> tuple[int, torch.Tensor | None]:
        """``(batch_size, labels)``: the number of images (one per label when labels are given) and the class of each
        image on the execution device (None for an unconditional network).

        Raises:
            ValueError: for ``batch_size < 1``, a guidance scale the network cannot apply, or class labels that are
                not the model's (or given to an unconditional one).
        """
        batch_size = labels_batch_size(class_labels, batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        check_guidance_scale(guidance_scale, conditional=bool(self.num_classes))
        labels = None
        if self.num_classes:
            labels = resolve_class_labels(class_labels, batch_size, self.num_classes, self.config.id2label)
            labels = labels.to(self._execution_device)
        elif class_labels is not None:
            raise ValueError("class_labels needs a class-conditional model (trained with --class_conditional)")
        return batch_size, labels

    def _score(self, sample: torch.Tensor, t, batch_size: int, labels, guidance_scale: float) -> torch.Tensor:
        """The score s_θ(x, σ) of ``sample`` at noise-level index ``t``; with ``labels``, classifier-free guided."""
        model_input = self.scheduler.scale_model_input(sample, t)
        level = torch.full((batch_size,), int(t), device=sample.device, dtype=torch.long)
        if labels is None:
            return self.unet(model_input, level).sample
        return classifier_free_guidance(
            lambda x, s, y: self.unet(x, s, class_labels=y).sample,
            model_input,
            level,
            labels,
            self.num_classes,
            guidance_scale,
        )

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        class_labels: int | str | list | torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        steps_per_level: int | None = None,
        epsilon: float | None = None,
        denoise: bool = True,
        init_distribution: str | None = None,
        return_intermediates: bool = False,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
    ):
        """Draw ``batch_size`` samples: L noise levels × ``steps_per_level`` Langevin steps (+ one denoising step).

        Args:
            batch_size (`int`): number of images.
            generator: the only source of randomness (initial sample and Langevin noise).
            class_labels: for a class-conditional network, class indices or names, one for all images or one per
                image; None: every class in turn. Refused by an unconditional network.
            guidance_scale (`float`): w of classifier-free guidance on the score, ``s_uncond + w (s_cond - s_uncond)``
                (1: the conditional score alone; conditional networks only).
            steps_per_level (`int`, *optional*): T; default the scheduler's ``steps_per_level``.
            epsilon (`float`, *optional*): ε, the step size at the last level; default the scheduler's.
            denoise (`bool`): finish with x + σ_L²·s(x, σ_L) (NCSNv2); one more network evaluation.
            init_distribution (`str`, *optional*): ``"uniform"`` on [-1, 1] (NCSN) or ``"gaussian"`` N(0, σ_max²);
                default the scheduler's.
            return_intermediates (`bool`): also return the samples at the end of each noise level.
            callback_on_step_end (callable, *optional*): diffusers' ``callback_on_step_end(pipeline, step_index,
                timestep, callback_kwargs)`` after each Langevin step with ``{"latents": x}``; the returned
                ``"latents"`` replace x.
            output_type (`str`): ``"pil"``, ``"np"`` or ``"pt"``.

        Returns:
            `AnnealedLangevinPipelineOutput` (or a tuple ``(images,)``, plus the intermediates when asked).

        Raises:
            ValueError: for ``batch_size < 1``, ``steps_per_level < 1``, ``epsilon <= 0``, an unknown
                ``init_distribution``, or class labels that are not the model's (or given to an unconditional one).
        """
        batch_size, labels = self._check_inputs(class_labels, batch_size, guidance_scale)
        scheduler = self.scheduler
        scheduler.set_timesteps(steps_per_level=steps_per_level, epsilon=epsilon, denoise=denoise)
        config = self.unet.config
        shape = (batch_size, config.in_channels, config.sample_size, config.sample_size)
        sample = scheduler.init_noise(
            shape,
            generator=generator,
            device=self._execution_device,
            dtype=self.unet.dtype,
            init_distribution=init_distribution,
        )
        intermediates = []
        timesteps = scheduler.timesteps
        num_langevin_steps = scheduler.num_noise_levels * scheduler.steps_per_level  # then the denoising step
        for index, t in enumerate(self.progress_bar(timesteps)):
            model_output = self._score(sample, t, batch_size, labels, guidance_scale)
            sample = scheduler.step(model_output, t, sample, generator=generator).prev_sample
            if callback_on_step_end is not None:
                sample = callback_on_step_end(self, index, t, {"latents": sample}).get("latents", sample)
            if return_intermediates and index < num_langevin_steps and (index + 1) % scheduler.steps_per_level == 0:
                intermediates.append(postprocess_images(sample, "pt").cpu())
        images = postprocess_images(sample, output_type)
        stacked = torch.stack(intermediates) if return_intermediates else None
        sigmas = [float(s) for s in scheduler.sigmas] if return_intermediates else None
        if not return_dict:
            return (images, stacked) if return_intermediates else (images,)
        return AnnealedLangevinPipelineOutput(images=images, intermediates=stacked, sigmas=sigmas)
