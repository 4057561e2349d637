"""Swapping diffusers schedulers at sampling time, and a DDPM pipeline that honours every scheduler's scaling.

diffusers' stock `DDPMPipeline` neither multiplies the initial noise by ``scheduler.init_noise_sigma`` nor calls
``scheduler.scale_model_input``; both are identities for DDPM, DDIM, PNDM, DPM-Solver(++), UniPC and DEIS, but not
for the sigma-parameterised (Karras/k-diffusion) schedulers such as Euler, Heun or LMS.
`UnconditionalDiffusionPipeline` is `DDPMPipeline` with those two calls added, so any diffusers scheduler samples
correctly from a DDPM folder.
"""

from __future__ import annotations

import inspect

import diffusers
import torch
from diffusers import DDPMPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from hfgen.errors import ConfigurationError, UnknownNameError

# short name -> (diffusers scheduler class, extra config)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmsolver": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}),
    "dpmsolver-singlestep": ("DPMSolverSinglestepScheduler", {}),
    # the stochastic DPM-Solver++(2M) SDE with log-linear (exponential) σ spacing, i.e. uniform in log-SNR
    "sde-dpmsolver++": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True},
    ),
    "unipc": ("UniPCMultistepScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "kdpm2": ("KDPM2DiscreteScheduler", {}),
    "kdpm2-ancestral": ("KDPM2AncestralDiscreteScheduler", {}),
}


# Solvers that find their place in the schedule by the value of the first timestep: when it occurs twice (as many
# steps as trained timesteps, or more), they start at its second occurrence and the step index runs past the
# schedule's end mid-sampling (an IndexError or an AssertionError deep in diffusers; huggingface/diffusers#10575).
INDEXED_BY_TIMESTEP = (
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "UniPCMultistepScheduler",
    "DEISMultistepScheduler",
)


def check_num_inference_steps(scheduler, num_inference_steps: int) -> None:
    """Refuse, before any sampling, a step count that ``scheduler`` cannot run: one whose first timestep repeats for a
    solver in `INDEXED_BY_TIMESTEP` (e.g. DPM-Solver++ with 50 steps on a model trained with T = 50).

    Args:
        scheduler (`SchedulerMixin`): the scheduler that will sample (its ``set_timesteps`` is called here).
        num_inference_steps (`int`): the requested number of steps.

    Raises:
        ConfigurationError: naming the largest step count that works and the schedulers without the limit.
    """
    name = type(scheduler).__name__
    if name not in INDEXED_BY_TIMESTEP:
        return

    def repeats(steps: int) -> bool:
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps.tolist()
        return timesteps.count(timesteps[0]) > 1

    if not repeats(num_inference_steps):
        return
    trained = scheduler.config.num_train_timesteps
    usable = next((n for n in range(min(num_inference_steps, trained) - 1, 0, -1) if not repeats(n)), 1)
    raise ConfigurationError(
        f"{name} cannot take {num_inference_steps} steps on a model trained with {trained} timesteps (its first "
        f"timestep would repeat); use --num_inference_steps {usable} or fewer, or --scheduler ddpm or ddim for "
        f"every timestep"
    )


def scheduler_names() -> list[str]:
    """The short scheduler names `hfgen sample --scheduler` accepts (any diffusers scheduler class name works too)."""
    return list(SCHEDULERS)


TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")  # diffusers' timestep_spacing values
# Options that define the noise schedule or what the network predicts: fixed by training, never overridden at sampling
TRAINED_OPTIONS = (
    "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
    "rescale_betas_zero_snr",
)  # fmt: skip


def scheduler_options(name: str) -> list[str]:
    """The config options of scheduler ``name`` (a short name or class name): the arguments of its ``__init__`` in
    their order, without ``self`` and ``kwargs``.

    Raises:
        UnknownNameError: for an unknown name; the message lists the valid ones.
    """
    return list(_option_defaults(_scheduler_class(name)[0]))


def _option_defaults(cls) -> dict:
    """``{option: default}`` of a diffusers scheduler class, from its ``__init__`` signature."""
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name not in ("self", "kwargs")}


def _scheduler_class(name: str):
    """``(class, extra config)`` of a short name or diffusers scheduler class name."""
    class_name, extra = SCHEDULERS.get(name.lower(), (name, {}))
    cls = getattr(diffusers, class_name, None)
    if cls is None or not class_name.endswith("Scheduler"):
        raise UnknownNameError(
            f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)} or a diffusers scheduler class name"
        )
    return cls, extra


def _check_overrides(cls, defaults: dict, overrides: dict) -> None:
    """Refuse overrides ``cls`` does not have, that training fixed, or whose type differs from the value they
    replace in ``defaults`` (``"false"`` for a bool would be truthy in diffusers and clip all the same)."""
    options = list(_option_defaults(cls))
    allowed = [option for option in options if option not in TRAINED_OPTIONS]
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        raise UnknownNameError(
            f"{cls.__name__} has no config option {', '.join(map(repr, unknown))}; the options it can change at "
            f"sampling time: {', '.join(allowed)}"
        )
    fixed = sorted(set(overrides) & set(TRAINED_OPTIONS))
    if fixed:
        raise ConfigurationError(
            f"{', '.join(fixed)} cannot change at sampling time: the network was trained with them; options that "
            f"can: {', '.join(allowed)}"
        )
    for key, value in overrides.items():
        current = defaults.get(key)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigurationError(f"{key} must be true or false (a JSON boolean), got {value!r}")
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"{key} must be a number, got {value!r}")
        if isinstance(current, str) and not isinstance(value, str):
            raise ConfigurationError(f"{key} must be a string, got {value!r}")
    if "timestep_spacing" in overrides and overrides["timestep_spacing"] not in TIMESTEP_SPACINGS:
        raise ConfigurationError(
            f"timestep_spacing must be one of {', '.join(TIMESTEP_SPACINGS)}, got {overrides['timestep_spacing']!r}"
        )


def _check_timesteps(scheduler, overrides: dict) -> None:
    """Set timesteps once (10 steps, or every trained one if fewer) to catch overrides that make diffusers fail or
    leave the trained range 0..T-1 (e.g. a large ``steps_offset``), before any sampling."""
    trained = scheduler.config.num_train_timesteps
    try:
        scheduler.set_timesteps(min(10, trained - 1) or 1)
    except (ValueError, TypeError, IndexError) as err:
        raise ConfigurationError(f"scheduler config {overrides}: {str(err).splitlines()[0]}") from None
    timesteps = torch.as_tensor(scheduler.timesteps)
    if len(timesteps) and (timesteps.min() < 0 or timesteps.max() > trained - 1):
        raise ConfigurationError(
            f"scheduler config {overrides} puts timesteps outside the trained 0..{trained - 1} "
            f"({int(timesteps.min())}..{int(timesteps.max())})"
        )


def make_scheduler(name: str, config, **overrides):
    """Build scheduler ``name`` from another scheduler's ``config`` with ``from_config``.

    Args:
        name (`str`): a short name (``"ddim"``, ``"dpmsolver++"``, ``"euler"``, ...; see `SCHEDULERS`) or a diffusers
            scheduler class name (``"DDIMScheduler"``).
        config: the trained scheduler's config (``pipeline.scheduler.config``).
        **overrides: sampling-time config options that replace the trained ones (and the short name's own), as
            ``diffusers.SchedulerMixin.from_config(config, **kwargs)`` takes them, e.g. ``timestep_spacing="trailing"``
            (start at the last trained timestep; Lin et al. 2024) or ``clip_sample=False`` (DDIM/DDPM: do not clip
            the predicted x0). ``hfgen sample --scheduler_config '{"timestep_spacing": "trailing"}'``. The options
            of the noise schedule and the prediction type (`TRAINED_OPTIONS`) are refused.

    Returns:
        a new scheduler of ``name``'s class (``config`` and the loaded scheduler are not changed).

    Raises:
        UnknownNameError: for an unknown name (the message lists the valid ones), an override the scheduler class
            does not have (the message lists its options) or a config ``from_config`` refuses.
        ConfigurationError: for an override in `TRAINED_OPTIONS`, a value of another type than the one it replaces
            (a JSON string ``"false"`` for a bool), a ``timestep_spacing`` outside `TIMESTEP_SPACINGS`, or values
            that make ``set_timesteps`` fail or leave the trained timesteps 0..T-1.
    """
    cls, extra = _scheduler_class(name)
    if overrides:
        _check_overrides(cls, {**_option_defaults(cls), **config, **extra}, overrides)
    try:
        scheduler = cls.from_config(config, **{**extra, **overrides})
    except (ValueError, TypeError, NotImplementedError) as err:
        raise UnknownNameError(
            f"scheduler {name!r} cannot be built from this model's scheduler config: {err}"
        ) from None
    if overrides:
        _check_timesteps(scheduler, overrides)
    return scheduler


class UnconditionalDiffusionPipeline(DDPMPipeline):
    """`diffusers.DDPMPipeline` that works with every diffusers scheduler.

    Identical to the stock pipeline for DDPM/DDIM (same noise, same calls); for sigma-parameterised schedulers it
    scales the initial noise by ``scheduler.init_noise_sigma`` and the UNet input with ``scheduler.scale_model_input``.

    Parameters:
        unet (`UNet2DModel`): the denoiser.
        scheduler (`SchedulerMixin`): any diffusers noise scheduler.
    """

    _callback_tensor_inputs = ["latents"]

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 1000,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
    ):
        """Sample ``batch_size`` images.

        Args:
            callback_on_step_end (callable, *optional*): diffusers' ``callback_on_step_end(pipeline, step_index,
                timestep, callback_kwargs)`` after each step, with ``callback_kwargs = {"latents": x_t}`` (`(B, C, H,
                W)`, in the model's [-1, 1] scale); it returns the dict, whose ``"latents"`` replace x_t.

        Returns:
            `ImagePipelineOutput` whose ``images`` are PIL images, a `(B, H, W, C)` float array in [0, 1]
            (``output_type="np"``), or a `(B, C, H, W)` tensor in [0, 1] (``"pt"``).
        """
        config = self.unet.config
        size = config.sample_size
        shape = (batch_size, config.in_channels, *((size, size) if isinstance(size, int) else size))
        image = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps)
        image = image * self.scheduler.init_noise_sigma
        step_kwargs = {}
        if "generator" in inspect.signature(self.scheduler.step).parameters:
            step_kwargs["generator"] = generator
        for index, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = self.scheduler.scale_model_input(image, t)
            model_output = self.unet(model_input, t).sample
            image = self.scheduler.step(model_output, t, image, **step_kwargs).prev_sample
            if callback_on_step_end is not None:
                image = callback_on_step_end(self, index, t, {"latents": image}).get("latents", image)
        image = (image / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            image = image.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                image = self.numpy_to_pil(image)
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)
