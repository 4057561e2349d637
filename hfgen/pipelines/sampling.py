"""`sample_images`: sample any trained hfgen pipeline in batches, optionally with another diffusers scheduler."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field

import torch

from hfgen.errors import HfgenError

SAMPLING_PRECISIONS = ("no", "bf16")  # --mixed_precision of sampling: fp32, or the denoiser in bf16 autocast


@contextlib.contextmanager
def bf16_network(network: torch.nn.Module):
    """Run ``network``'s forward passes in bf16 autocast (on its own device type) and hand float32 outputs back, so
    that everything around it (the scheduler's update, the noise it draws) stays float32. Weights are not converted.

    On this project's 2-core CPU (avx512_bf16, no AMX) DDIM-50 runs 1.1x faster with the digits DDPM (`make demo`)
    and 1.7x with the `mnist-ddpm` recipe's UNet (``python scripts/benchmarks/ddpm_speed.py --mixed_precision bf16
    [--model_dir FOLDER]``); on that recipe's model DDIM-50 FID (150 images) is 9.50 either way and DDPM-1000's 6.03
    against 6.05 in float32.
    """
    original = network.forward
    own = vars(network).get("forward")  # a forward set on the instance (accelerate's hooks, an outer wrapper)
    device_type = next(network.parameters()).device.type

    def as_float(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()
        if type(value) is tuple:
            return tuple(as_float(v) for v in value)
        if isinstance(value, dict):  # diffusers' BaseOutput (e.g. UNet2DOutput) is an OrderedDict
            for key in list(value.keys()):
                value[key] = as_float(value[key])
        return value

    def forward(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            output = original(*args, **kwargs)
        return as_float(output)

    network.forward = forward
    try:
        yield network
    finally:
        if own is None:
            del network.forward  # the class's forward again
        else:
            network.forward = own


@dataclass
class SamplingResult:
    """What `sample_images` returns.

    Attributes:
        images (`torch.Tensor` of shape `(num_images, C, H, W)`): values in [0, 1].
        scheduler_name (`str`): the scheduler class used (or the pipeline class for non-diffusion models).
        num_inference_steps (`int`): sampling steps (1 for one-shot generators).
        network_evaluations (`int`): denoiser forward passes per image (Heun and other second-order solvers
            make two per step; classifier-free guidance doubles the count).
        class_labels (`torch.Tensor` of shape `(num_images,)`, *optional*): the class each image was generated for
            (class-conditional models), None otherwise.
        scheduler_config (`dict`): the config options that replaced the trained ones (``scheduler_config`` of
            `sample_images`) in the scheduler that sampled; empty without.
    """

    images: torch.Tensor
    scheduler_name: str
    num_inference_steps: int
    network_evaluations: int
    class_labels: torch.Tensor | None = None
    scheduler_config: dict = field(default_factory=dict)


def _image_shape(pipeline) -> tuple[int, int] | None:
    """``(channels, side)`` of the images ``pipeline`` makes, read from its components' configs; None if unknown."""
    for component in getattr(pipeline, "components", {}).values():
        config = getattr(component, "config", None)
        size = getattr(config, "sample_size", None) if config is not None else None
        channels = getattr(config, "out_channels", None) or getattr(config, "in_channels", None)
        if isinstance(size, int) and isinstance(channels, int):
            return channels, size
    return None


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (what can be allocated without swapping), None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_sample_memory(pipeline, num_images: int) -> None:
    """Refuse, before any sampling, a ``num_images`` whose images alone cannot fit in memory.

    The images are kept as float32 and concatenated at the end, so the estimate is ``2 * num_images * C * H * W * 4``
    bytes, compared with the memory available now.

    Raises:
        HfgenError: naming the estimate, the available memory and the largest ``num_images`` that fits.
    """
    shape = _image_shape(pipeline)
    available = available_memory_bytes()
    if shape is None or available is None:
        return
    channels, side = shape
    per_image = 2 * channels * side * side * 4
    needed = num_images * per_image
    if needed > available:
        raise HfgenError(
            f"{num_images:,} images of {channels}x{side}x{side} need about {needed / 2**30:,.1f} GiB to hold, more "
            f"than the {available / 2**30:.1f} GiB available; lower --num_images (at most about "
            f"{available // per_image:,} here)"
        )


def _resolve_labels(pipeline, num_images: int, class_labels, guidance_scale) -> torch.Tensor | None:
    """The class of each of ``num_images`` images for a class-conditional ``pipeline``, None for an unconditional one.

    Raises:
        HfgenError: labels or guidance for an unconditional model, or a label that is not one of the classes.
    """
    num_classes = getattr(pipeline, "num_classes", None)
    if not num_classes:
        if class_labels is not None or guidance_scale not in (None, 1.0):
            flag = "--class_labels" if class_labels is not None else "--guidance_scale"
            raise HfgenError(
                f"{type(pipeline).__name__} was not trained with --class_conditional, so {flag} does not apply; "
                f"drop {flag} (or train with --class_conditional)"
            )
        return None
    from hfgen.pipelines.conditioning import check_guidance_scale, resolve_class_labels

    try:
        if guidance_scale is not None:
            check_guidance_scale(guidance_scale, conditional=True)
        return resolve_class_labels(class_labels, num_images, num_classes, getattr(pipeline, "id2label", None))
    except ValueError as err:
        raise HfgenError(str(err)) from None


@dataclass
class _SamplerPlan:
    """How `sample_images` samples one pipeline.

    Attributes:
        sampler: the pipeline whose ``__call__`` draws each batch.
        network (`torch.nn.Module`, *optional*): the network whose forward passes are counted (None: one shot).
        name (`str`): the scheduler (or pipeline) class reported as ``scheduler_name``.
        kwargs (`dict`): the ``__call__`` arguments shared by every batch.
        num_inference_steps (`int`, *optional*): the steps reported; None: read from the scheduler after sampling.
    """

    sampler: object
    network: torch.nn.Module | None
    name: str
    kwargs: dict
    num_inference_steps: int | None
    scheduler_config: dict = field(default_factory=dict)


def _diffusers_plan(pipeline, scheduler_name, num_inference_steps, labels, scheduler_config=None) -> _SamplerPlan:
    """Sample ``pipeline.unet`` with its own or the named diffusers scheduler through hfgen's diffusion pipelines.

    The default number of steps is the training ``num_train_timesteps`` for DDPM and 50 for every other scheduler;
    ``scheduler_config`` overrides the scheduler's config options (`hfgen.pipelines.scheduling.make_scheduler`).

    Raises:
        UnknownNameError: for a ``scheduler_name`` that is not a diffusers scheduler, or an override it does not have.
        ConfigurationError: for a step count the scheduler cannot run (`check_num_inference_steps`).
    """
    from hfgen.pipelines.scheduling import UnconditionalDiffusionPipeline, check_num_inference_steps, make_scheduler

    if scheduler_name is None and not scheduler_config:
        sched = pipeline.scheduler
    else:
        name = type(pipeline.scheduler).__name__ if scheduler_name is None else scheduler_name
        sched = make_scheduler(name, pipeline.scheduler.config, **(scheduler_config or {}))
    if labels is not None:
        from hfgen.pipelines.pipeline_class_conditional import ClassConditionalDiffusionPipeline

        id2label = pipeline.id2label
        sampler = ClassConditionalDiffusionPipeline(unet=pipeline.unet, scheduler=sched, id2label=id2label)
    else:
        sampler = UnconditionalDiffusionPipeline(unet=pipeline.unet, scheduler=sched)
    sampler.set_progress_bar_config(disable=True)
    if num_inference_steps is None:
        is_ddpm = type(sched).__name__ == "DDPMScheduler"
        num_inference_steps = sched.config.num_train_timesteps if is_ddpm else 50
    check_num_inference_steps(sched, num_inference_steps)
    kwargs = {"num_inference_steps": num_inference_steps}
    applied = {key: sched.config[key] for key in scheduler_config or {}}  # as the sampling scheduler holds them
    return _SamplerPlan(sampler, pipeline.unet, type(sched).__name__, kwargs, num_inference_steps, applied)


def _own_plan(
    pipeline, components: dict, scheduler_name, num_inference_steps, show_progress: bool, scheduler_config=None
) -> _SamplerPlan:
    """Sample ``pipeline`` through its own ``__call__`` (a scheduler diffusers does not ship, or a one-shot generator).

    Raises:
        HfgenError: for ``num_inference_steps`` other than 1 for a one-shot generator, or a ``scheduler_name`` (or
            ``num_inference_steps`` for a pipeline with its own scheduler) or ``scheduler_config``, which it has no
            diffusers scheduler for.
    """
    if scheduler_config:
        raise HfgenError(
            f"{type(pipeline).__name__} has no diffusers scheduler whose config could be changed; drop "
            "--scheduler_config (set its own sampling options with --pipeline_kwargs)"
        )
    own_scheduler = "scheduler" in components
    if not own_scheduler and num_inference_steps not in (None, 1):
        raise HfgenError(
            f"{type(pipeline).__name__} samples in one network evaluation, so --num_inference_steps "
            f"{num_inference_steps} would be reported but not done; drop --num_inference_steps"
        )
    if scheduler_name is not None or (own_scheduler and num_inference_steps is not None):
        raise HfgenError(
            f"{type(pipeline).__name__} has no diffusers scheduler to swap; drop --scheduler"
            + (
                " and --num_inference_steps (set its own sampling options with --pipeline_kwargs, e.g. "
                "'{\"steps_per_level\": 50}')"
                if own_scheduler
                else ""
            )
        )
    if not own_scheduler:
        num_inference_steps = num_inference_steps or 1
    if not show_progress and hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)
    name = type(components["scheduler"]).__name__ if "scheduler" in components else type(pipeline).__name__
    return _SamplerPlan(pipeline, components.get("unet"), name, {}, num_inference_steps)


def _precision(pipeline, plan: _SamplerPlan, mixed_precision: str):
    """The context the batches are sampled in: `bf16_network` on the counted network for ``"bf16"``.

    Raises:
        HfgenError: for ``"bf16"`` with a one-shot generator (no network evaluated many times).
    """
    if mixed_precision != "bf16":
        return contextlib.nullcontext()
    if plan.network is None:
        raise HfgenError(
            f"{type(pipeline).__name__} samples in one network evaluation; mixed_precision bf16 is for diffusion "
            "models (DDPM, NCSN), whose many steps it speeds up: drop it"
        )
    return bf16_network(plan.network)


def _extra_call_arguments(sampler, pipeline_kwargs: dict, guidance_scale) -> dict:
    """``pipeline_kwargs`` and the guidance scale as ``sampler.__call__`` arguments, checked against its signature.

    Raises:
        HfgenError: for arguments ``sampler`` does not take (the message lists those it takes), or a guidance scale
            other than None and 1 for a sampler without classifier-free guidance.
    """
    accepted = inspect.signature(sampler.__call__).parameters
    unknown = sorted(set(pipeline_kwargs) - set(accepted))
    if unknown:
        raise HfgenError(
            f"{type(sampler).__name__} does not take {', '.join(unknown)}; it takes "
            f"{', '.join(p for p in accepted if p not in ('self', 'return_dict', 'output_type', 'generator'))}"
        )
    extra = dict(pipeline_kwargs)
    if guidance_scale is not None and guidance_scale != 1.0:
        if "guidance_scale" not in accepted:
            raise HfgenError(
                f"{type(sampler).__name__} has no classifier-free guidance (it applies to conditional DDPM and NCSN "
                "models); drop --guidance_scale"
            )
        extra["guidance_scale"] = guidance_scale
    return extra


def _sample_in_batches(
    plan: _SamplerPlan, num_images: int, batch_size: int, generator, labels, show_progress: bool
) -> tuple[torch.Tensor, int | None]:
    """``(images, per_image)``: ``num_images`` float32 images on the CPU, drawn in batches of at most ``batch_size``
    (each batch with its slice of ``labels``), and the network's forward passes per image in the first batch
    (counted by a forward hook on ``plan.network``; None without a network).

    Raises:
        HfgenError: for a `ValueError` of the pipeline's own argument checks, as one line naming the pipeline.
    """
    calls: list[int] = []  # the batch size of each forward pass: guidance's doubled batch counts twice per image

    def count(module, args, output):
        first = args[0] if args else None
        calls.append(int(first.shape[0]) if isinstance(first, torch.Tensor) and first.ndim else 1)

    sampler, kwargs = plan.sampler, plan.kwargs
    handle = plan.network.register_forward_hook(count) if plan.network is not None else None
    chunks, per_image = [], None
    try:
        from tqdm.auto import tqdm

        desc = f"Sampling ({plan.name})"
        with tqdm(total=num_images, desc=desc, unit="img", disable=not show_progress) as progress:
            remaining = num_images
            while remaining > 0:
                size = min(batch_size, remaining)
                before = len(calls)
                if labels is not None:
                    done = num_images - remaining
                    kwargs["class_labels"] = labels[done : done + size]
                try:
                    out = sampler(batch_size=size, generator=generator, output_type="pt", **kwargs).images
                except ValueError as err:  # the pipeline's own argument checks (diffusers convention): one line
                    raise HfgenError(f"{type(sampler).__name__}: {err}") from err
                if per_image is None:
                    per_image = round(sum(calls[before:]) / size)
                chunks.append(out.cpu().float())
                remaining -= size
                progress.update(size)
    finally:
        if handle is not None:
            handle.remove()
    return torch.cat(chunks), per_image


def sample_images(
    pipeline,
    num_images: int,
    scheduler_name: str | None = None,
    num_inference_steps: int | None = None,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    pipeline_kwargs: dict | None = None,
    show_progress: bool = True,
    class_labels=None,
    guidance_scale: float | None = None,
    mixed_precision: str = "no",
    scheduler_config: dict | None = None,
) -> SamplingResult:
    """Draw ``num_images`` samples from ``pipeline`` in batches of ``batch_size``.

    For diffusion pipelines (with ``unet`` and ``scheduler``) the scheduler can be swapped by ``scheduler_name`` (see
    `hfgen.pipelines.scheduling.SCHEDULERS`); sampling runs through `UnconditionalDiffusionPipeline`, which matches
    the stock `DDPMPipeline` for DDPM/DDIM and adds the input scaling sigma-based schedulers need. The default number
    of steps is the training ``num_train_timesteps`` for DDPM and 50 for every other scheduler.

    Pipelines with a scheduler of their own that diffusers does not ship (`AnnealedLangevinPipeline`) sample through
    their own ``__call__``; their network evaluations are counted on ``unet`` all the same, and ``num_inference_steps``
    reports the length of their ``scheduler.timesteps`` (L·T Langevin steps, +1 with denoising).

    Args:
        show_progress (`bool`): a tqdm bar over the images (off for the grids drawn during training).
        pipeline_kwargs (`dict`, *optional*): extra arguments for the pipeline's ``__call__`` (e.g. ``{"denoise":
            False, "steps_per_level": 50}`` for NCSN, ``{"temperature": 0.8}`` for a VAE or a flow).
        class_labels: for a class-conditional model (``--class_conditional``), the class of each image (a list of
            ``num_images`` indices or names, or one for all); None: every class in turn, so that ``k * C`` images
            hold ``k`` of each class.
        guidance_scale (`float`, *optional*): classifier-free guidance w of a conditional diffusion model (DDPM,
            NCSN); None or 1: no guidance.
        mixed_precision (`str`): ``"no"`` (float32) or ``"bf16"``: the denoiser's forward passes in bf16 autocast
            (`bf16_network`), for the pipelines that evaluate a network many times (DDPM, NCSN); the images
            differ from float32 ones by rounding (DDIM-50 FID on the `mnist-ddpm` recipe's model: see the README).
        scheduler_config (`dict`, *optional*): for diffusion pipelines with a diffusers scheduler, sampling-time
            config options that replace the trained ones, e.g. ``{"timestep_spacing": "trailing", "clip_sample":
            False}`` (see `hfgen.pipelines.scheduling.make_scheduler`); applied to ``scheduler_name``'s scheduler, or
            to the folder's own without one. Guided DDIM (``guidance_scale`` not 0 or 1) never clips x0, whatever
            ``clip_sample`` says (`hfgen.pipelines.pipeline_class_conditional.guided_scheduler`).

    Raises:
        HfgenError: for ``num_images <= 0``, a pipeline that cannot sample, ``num_inference_steps`` other than 1 for a
            one-shot generator (VAE, GAN, flow, autoencoder), ``pipeline_kwargs`` it does not take, class labels or
            a guidance scale for a model that was not trained with them, a label outside the classes, or a
            ``mixed_precision`` other than ``"no"``/``"bf16"`` (``"bf16"`` for a one-shot generator), or a
            ``scheduler_config`` for a pipeline without a diffusers scheduler (one-shot generators, NCSN).
        UnknownNameError: for a ``scheduler_config`` option the scheduler does not have (the message lists its own).
        ConfigurationError: for a step count the scheduler cannot run (`check_num_inference_steps`), or a
            ``scheduler_config`` option fixed by training or with a wrong value (`make_scheduler`).
    """
    if num_images <= 0 or batch_size <= 0:
        raise HfgenError(f"num_images and batch_size must be positive, got {num_images} and {batch_size}")
    if mixed_precision not in SAMPLING_PRECISIONS:
        raise HfgenError(f"mixed_precision must be one of {', '.join(SAMPLING_PRECISIONS)}, got {mixed_precision!r}")
    check_sample_memory(pipeline, num_images)
    components = getattr(pipeline, "components", {})
    pipeline_kwargs = dict(pipeline_kwargs or {})
    swappable = type(components.get("scheduler")).__module__.startswith("diffusers.")
    labels = _resolve_labels(pipeline, num_images, class_labels, guidance_scale)
    if "unet" in components and swappable:
        plan = _diffusers_plan(pipeline, scheduler_name, num_inference_steps, labels, scheduler_config)
    else:
        plan = _own_plan(pipeline, components, scheduler_name, num_inference_steps, show_progress, scheduler_config)
    plan.kwargs.update(_extra_call_arguments(plan.sampler, pipeline_kwargs, guidance_scale))
    with _precision(pipeline, plan, mixed_precision):
        images, per_image = _sample_in_batches(plan, num_images, batch_size, generator, labels, show_progress)
    num_inference_steps = plan.num_inference_steps
    if num_inference_steps is None:  # a pipeline with its own sampler: its steps, or one shot
        timesteps = getattr(components.get("scheduler"), "timesteps", None)
        num_inference_steps = len(timesteps) if timesteps is not None else 1
    network_evaluations = per_image if plan.network is not None else 1
    return SamplingResult(images, plan.name, num_inference_steps, network_evaluations, labels, plan.scheduler_config)
