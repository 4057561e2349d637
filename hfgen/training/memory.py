"""Estimate the memory of one training step before any is taken, so that impossible settings (``--resolution 1000``,
a huge ``--train_batch_size``) are refused with the estimate instead of swapping or being killed minutes later.

The estimate runs the objective's own loss once on PyTorch's ``meta`` device (shapes only: no memory, no compute)
and adds up the tensors autograd saves for the backward pass (`torch.autograd.graph.saved_tensors_hooks`), plus the
weights, their gradients and the two Adam moments.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from hfgen.errors import ConfigurationError

GiB = 2**30


@contextlib.contextmanager
def _meta_scalars():
    """Let a loss written for real tensors run on meta ones: ``.item()``, ``float()`` and ``bool()`` of a meta tensor
    (logged values, range checks) give 0 / False instead of raising. Real tensors are untouched."""
    patched = {"item": 0.0, "__float__": 0.0, "__bool__": False}
    saved = {name: torch.Tensor.__dict__.get(name) for name in patched}
    originals = {name: getattr(torch.Tensor, name) for name in patched}

    def fake(name, value):
        def method(self, *args, **kwargs):
            return value if self.device.type == "meta" else originals[name](self, *args, **kwargs)

        return method

    for name, value in patched.items():
        setattr(torch.Tensor, name, fake(name, value))
    try:
        yield
    finally:
        for name, method in saved.items():
            if method is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, method)


def estimate_step_bytes(
    objective, models: dict, batch_size: int, num_channels: int, resolution: int, context=None
) -> int | None:
    """Bytes one optimiser step of ``batch_size`` images of ``num_channels x resolution x resolution`` needs.

    Args:
        context (`TrainingContext`, *optional*): the run's context, for `Objective.updates` (default: the one
            `build_models` stored on the objective).

    Returns:
        The estimate (activations saved for backward + 4x the float32 parameters), or None when the objective's loss
        cannot run on the meta device (the check is then skipped, never a reason to refuse).
    """
    parameters = sum(p.numel() * p.element_size() for m in models.values() for p in m.parameters())
    saved: dict[int, int] = {}

    def pack(tensor):
        saved[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    try:
        # the probe runs on copies: a loss may move state to the input's device (diffusers' `add_noise` moves the
        # scheduler's `alphas_cumprod`), which must not reach the real run
        probe = copy.deepcopy(objective)
        meta = {name: copy.deepcopy(model).to("meta") for name, model in models.items()}
        images = torch.empty(batch_size, num_channels, resolution, resolution, device="meta")
        peak = 0
        for update in probe.updates(context if context is not None else probe.context):
            saved.clear()
            with _meta_scalars(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                extra = {}
                if context is not None and context.num_classes:
                    extra["class_labels"] = torch.zeros(batch_size, dtype=torch.long, device="meta")
                probe.compute_loss(meta, images, torch.Generator().manual_seed(0), phase=update.name, **extra)
            peak = max(peak, sum(saved.values()))
    except Exception:  # a loss that needs real values on meta: no estimate
        return None
    return peak + 4 * parameters


def check_step_memory(objective, models: dict, context) -> int | None:
    """Refuse a run whose single training step cannot fit in the available memory.

    Raises:
        ConfigurationError: naming the estimate, the available memory and the flags to lower.
    """
    from hfgen.pipelines.sampling import available_memory_bytes

    args, num_channels, resolution = context.training_args, context.num_channels, context.resolution
    needed = estimate_step_bytes(objective, models, args.train_batch_size, num_channels, resolution, context)
    available = available_memory_bytes()
    if needed is None or available is None or needed <= available:
        return needed
    raise ConfigurationError(
        f"one training step at --resolution {resolution} with --train_batch_size {args.train_batch_size} needs about "
        f"{needed / GiB:,.1f} GiB, more than the {available / GiB:.1f} GiB available; lower --resolution or "
        "--train_batch_size (--gradient_accumulation_steps keeps the effective batch)"
    )


__all__ = ["check_step_memory", "estimate_step_bytes"]
