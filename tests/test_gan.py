"""GANs (DCGAN, WGAN, WGAN-GP) in the one training loop: the gradient penalty and weight clipping against hand
computations, n_critic critic updates per generator update, exact resumption of both optimisers, the losses of one
batch by hand, the DCGAN networks, `GANPipeline`, the output folder, the defaults per loss and the command line."""

import json
import math
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import error_line, quiet, run_cli
from PIL import Image
from safetensors.torch import load_file
from torch import nn

import hfgen
from hfgen.cli import main
from hfgen.errors import ConfigurationError
from hfgen.models.gan import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from hfgen.output_folder.layout import list_checkpoints
from hfgen.pipelines import GANPipeline
from hfgen.pipelines.utils import slerp
from hfgen.training.arguments import parse_train_kwargs, resolve_defaults
from hfgen.training.objectives import get_objective
from hfgen.training.objectives.base import TrainingContext, Update
from hfgen.training.objectives.gan import (
    DCGANObjective,
    GANArguments,
    WGANGPObjective,
    WGANObjective,
    clip_parameters_,
    gradient_penalty,
    mode_seeking_ratio,
)

# Tiny networks (8 channels, 8-d z) at the default 16x16: a generator step with 5 critic steps takes milliseconds.
TINY = {
    "latent_dim": 8,
    "generator_channels": 8,
    "critic_channels": 8,
    "train_batch_size": 16,
    "num_sample_images": 4,
    "logger": "none",
    "save_images_steps": 10_000,
    "checkpointing_steps": 10_000,
    "seed": 0,
}
TINY_FLAGS = [
    "--latent_dim", "8", "--generator_channels", "8", "--critic_channels", "8", "--train_batch_size", "16",
    "--num_sample_images", "4", "--logger", "none", "--save_images_steps", "10000", "--checkpointing_steps", "10000",
]  # fmt: skip
GANS = ("dcgan", "wgan", "wgan-gp")

# The published settings per loss (Radford et al. 2016; Arjovsky et al. 2017; Gulrajani et al. 2017).
EXPECTED_DEFAULTS = {
    "dcgan": {"gan_loss": "bce", "learning_rate": 2e-4, "adam_beta1": 0.5, "adam_beta2": 0.999, "n_critic": 1,
              "critic_batch_norm": True},
    "wgan": {"gan_loss": "wgan", "learning_rate": 5e-5, "n_critic": 5, "critic_batch_norm": True},
    "wgan-gp": {"gan_loss": "wgan-gp", "learning_rate": 1e-4, "adam_beta1": 0.0, "adam_beta2": 0.9, "n_critic": 5,
                "critic_batch_norm": False},
}  # fmt: skip
COMMON_DEFAULTS = {"lr_scheduler": "constant", "lr_warmup_steps": 0, "max_grad_norm": 0.0}


def build(name: str, seed: int = 0, **flags):
    """An objective with its defaults resolved and its (freshly initialised) models, without the loop."""
    objective = get_objective(name)
    data_args, training_args, model_args = parse_train_kwargs(objective, {**TINY, **flags})
    resolve_defaults(objective, data_args, training_args, model_args)
    context = TrainingContext(
        data_args, training_args, model_args, num_channels=1, resolution=16, num_train_images=100, dataset_label="t"
    )
    torch.manual_seed(seed)
    models = objective.build_models(context)
    return objective, models, context


def fake_images(batch: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def safetensors_of(folder: Path, component: str) -> dict:
    return load_file(str(folder / component / "diffusion_pytorch_model.safetensors"))


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs by {(a[key] - b[key]).abs().max().item():.3g}"


def assert_same_state(a, b, where="state"):
    """Recursive exact equality of (optimiser) state dicts."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def load_optimizer_states(checkpoint: Path) -> dict[str, dict]:
    """``{"critic": state, "generator": state}`` of a checkpoint (optimizer.bin is the critic's, optimizer_1.bin
    the generator's, as `GANObjective.create_optimizers` orders them)."""
    return {
        "critic": torch.load(checkpoint / "optimizer.bin", weights_only=True),
        "generator": torch.load(checkpoint / "optimizer_1.bin", weights_only=True),
    }


def checkpoint_models(checkpoint: Path, reference: dict[str, nn.Module]) -> dict[str, dict]:
    """The checkpoint's model files, named by matching their keys and shapes to ``reference`` models."""
    files = [load_file(str(p)) for p in sorted(checkpoint.glob("model*.safetensors"))]
    assert len(files) == 2, list(checkpoint.iterdir())
    named = {}
    for name, model in reference.items():
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        matches = [f for f in files if {k: tuple(v.shape) for k, v in f.items()} == shapes]
        assert len(matches) == 1, name
        named[name] = matches[0]
    return named


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", params=GANS)
def acceptance(request, tmp_path_factory) -> tuple[str, Path]:
    """The acceptance command `hfgen train NAME --max_train_steps 10 --output_dir DIR` (+ tiny flags)."""
    name = request.param
    output_dir = tmp_path_factory.mktemp(name) / f"{name}-digits"
    try:
        main(["train", name, "--max_train_steps", "10", "--output_dir", str(output_dir), *TINY_FLAGS])
    except SystemExit as exit_:  # main() only exits on errors
        pytest.fail(f"hfgen train {name} exited with {exit_.code}")
    return name, output_dir


@pytest.fixture(scope="module")
def tiny_gan_dir(tmp_path_factory) -> Path:
    """A tiny DCGAN (batch norm in both networks) trained 10 steps."""
    output_dir = tmp_path_factory.mktemp("gan") / "tiny-dcgan"
    result = hfgen.train("dcgan", output_dir=str(output_dir), max_train_steps=10, **TINY)
    assert result.global_step == 10
    return output_dir


@pytest.fixture(scope="module")
def gan(tiny_gan_dir) -> GANPipeline:
    return quiet(GANPipeline.from_pretrained(str(tiny_gan_dir)))


# ------------------------------------------------------------------------------------ 1. gradient penalty


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b, optionally times a fixed per-sample scale s_i: ∇ₓD(x_i) = s_i w."""

    def __init__(self, w: torch.Tensor, b: float = 0.3, scale: torch.Tensor | None = None):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b, dtype=w.dtype))
        self.scale = scale
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        scores = x.flatten(1) @ self.w + self.b
        return scores if self.scale is None else self.scale * scores


def test_gradient_penalty_of_a_linear_critic_is_the_norm_of_w():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    fake = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    for w_scale in (0.05, 0.25, 1.0, 3.0):
        w = torch.randn(16, generator=g, dtype=torch.float64) * w_scale
        critic = LinearCritic(w)
        penalty, norms = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
        norm_w = w.norm()
        assert norms.shape == (6,)
        torch.testing.assert_close(norms, norm_w.expand(6))  # the same for every sample
        torch.testing.assert_close(penalty, (norm_w - 1) ** 2)
        assert penalty.ndim == 0

        # differentiable w.r.t. the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; b does not enter
        penalty.backward()
        torch.testing.assert_close(critic.w.grad, 2 * (norm_w - 1) * w / norm_w)
        assert critic.b.grad is None or torch.equal(critic.b.grad, torch.zeros_like(critic.b.grad))


def test_gradient_penalty_is_taken_at_random_interpolates():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64)
    fake_source = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    fake = fake_source * 2
    critic = LinearCritic(torch.randn(16, generator=g, dtype=torch.float64))
    penalty, _ = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(3))
    (interpolates,) = critic.inputs
    epsilon = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(3)).double()
    assert ((epsilon > 0) & (epsilon < 1)).all() and epsilon.flatten().unique().numel() == 5  # one ε per sample
    torch.testing.assert_close(interpolates, epsilon * real + (1 - epsilon) * fake.detach())
    penalty.backward()
    assert fake_source.grad is None, "the penalty must not train the generator"

    # another generator seed gives other interpolates
    gradient_penalty(critic, real, fake, torch.Generator().manual_seed(4))
    assert not torch.allclose(critic.inputs[1], interpolates)


def test_gradient_penalty_with_different_norms_per_sample():
    g = torch.Generator().manual_seed(5)
    real = torch.randn(7, 1, 4, 4, generator=g, dtype=torch.float64)
    fake = torch.randn(7, 1, 4, 4, generator=g, dtype=torch.float64)

    # per-sample scaled linear critic: ||∇D(x_i)|| = |s_i| ||w||
    scale = torch.tensor([0.1, -0.5, 1.0, 2.0, 3.0, -4.0, 0.7], dtype=torch.float64)
    w = torch.randn(16, generator=g, dtype=torch.float64) * 0.4
    critic = LinearCritic(w, scale=scale)
    penalty, norms = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(6))
    expected_norms = scale.abs() * w.norm()
    torch.testing.assert_close(norms, expected_norms)
    torch.testing.assert_close(penalty, ((expected_norms - 1) ** 2).mean())
    assert not torch.allclose(penalty, (norms.mean() - 1) ** 2), "the mean of squares, not the square of the mean"
    penalty.backward()
    expected_grad = (2 * (expected_norms - 1) * scale.abs()).mean() * w / w.norm()
    torch.testing.assert_close(critic.w.grad, expected_grad)

    # a quadratic critic D(x) = a ||x||^2: ||∇D(x̂_i)|| = 2 a ||x̂_i||, different at every interpolate
    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor(0.8, dtype=torch.float64))

        def forward(self, x):
            return self.a * x.flatten(1).pow(2).sum(1)

    quadratic = Quadratic()
    penalty, norms = gradient_penalty(quadratic, real, fake, torch.Generator().manual_seed(7))
    epsilon = torch.rand(7, 1, 1, 1, generator=torch.Generator().manual_seed(7)).double()
    radius = (epsilon * real + (1 - epsilon) * fake).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, 2 * 0.8 * radius)
    torch.testing.assert_close(penalty, ((2 * 0.8 * radius - 1) ** 2).mean())
    assert norms.unique().numel() == 7
    penalty.backward()  # d/da mean((2 a r - 1)^2) = mean(2 (2 a r - 1) 2 r)
    torch.testing.assert_close(quadratic.a.grad, (4 * radius * (2 * 0.8 * radius - 1)).mean())


def test_gradient_penalty_on_the_dcgan_critic_matches_autograd_per_sample():
    torch.manual_seed(0)
    critic = DCGANDiscriminator(sample_size=16, base_channels=8, use_batch_norm=False).double()
    real, fake = fake_images(4, 0).double(), fake_images(4, 1).double()
    penalty, norms = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(8))
    epsilon = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(8)).double()
    points = epsilon * real + (1 - epsilon) * fake
    expected = []
    for point in points:  # one sample at a time: no coupling between samples
        x = point[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        expected.append(grad.norm())
    expected = torch.stack(expected)
    torch.testing.assert_close(norms, expected)
    torch.testing.assert_close(penalty, ((expected - 1) ** 2).mean())
    penalty.backward()
    # every weight gets a gradient; biases do not (a piecewise-linear critic's ∇ₓD is locally constant in them)
    for name, parameter in critic.named_parameters():
        if name.endswith("weight"):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None or not parameter.grad.any(), name


# ------------------------------------------------------------------------------------- 2. weight clipping


def test_clip_parameters_clamps_every_parameter_and_no_buffer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    with torch.no_grad():
        model[0].weight.mul_(10)
        model[1].running_var.fill_(5.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clip_parameters_(model, 0.05)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.data, before[name].clamp(-0.05, 0.05), rtol=0, atol=0)
        assert parameter.abs().max() <= 0.05
    assert (model[0].weight.abs() == 0.05).any() and (model[0].weight.abs() < 0.05).any()
    assert torch.equal(model[1].running_var, before["1.running_var"])  # buffers are not parameters


@pytest.fixture(scope="module")
def clipped_wgan(tmp_path_factory) -> tuple[Path, float]:
    output_dir = tmp_path_factory.mktemp("clip") / "wgan"
    clip = 0.005
    flags = dict(TINY, checkpointing_steps=2, clip_value=clip)
    hfgen.train("wgan", output_dir=str(output_dir), max_train_steps=3, **flags)
    return output_dir, clip


def test_weight_clipping_keeps_every_critic_parameter_in_range(clipped_wgan):
    output_dir, c = clipped_wgan
    pipeline = GANPipeline.from_pretrained(str(output_dir))
    critic = pipeline.critic
    bound = torch.tensor(c, dtype=torch.float32)
    at_bound = 0
    for name, parameter in critic.named_parameters():
        assert parameter.abs().max() <= bound, f"{name} leaves [-{c}, {c}]: {parameter.abs().max().item()}"
        at_bound += int((parameter.abs() == bound).sum())
    assert at_bound > 0, "no parameter reached the bound: clipping did not happen"
    # the critic still has structure inside the box (not every weight pinned to ±c)
    assert any((p.abs() < bound).any() for p in critic.parameters())
    # the generator is not clipped
    assert any(p.abs().max() > 10 * c for p in pipeline.generator.parameters())

    parameter_names = {name for name, _ in critic.named_parameters()}
    assert [p.name for p in map(Path, list_checkpoints(str(output_dir)))] == ["checkpoint-2", "checkpoint-3"]
    for checkpoint in map(Path, list_checkpoints(str(output_dir))):
        saved = checkpoint_models(checkpoint, {"generator": pipeline.generator, "critic": critic})["critic"]
        for name in parameter_names:
            assert saved[name].abs().max() <= bound, f"{checkpoint.name}: {name}"
        assert sum(int((saved[name].abs() == bound).sum()) for name in parameter_names) > 0
    networks = {"generator": pipeline.generator, "critic": critic}
    final = checkpoint_models(output_dir / "checkpoints" / "checkpoint-3", networks)
    assert_same_tensors(final["critic"], {k: v.contiguous() for k, v in critic.state_dict().items()})


def test_wgan_clips_after_every_critic_update_only():
    objective, models, _ = build("wgan", clip_value=0.01)
    critic = models["critic"]
    assert any(p.abs().max() > 0.01 for p in critic.parameters())  # the initialisation exceeds c
    generator_before = {k: v.clone() for k, v in models["generator"].state_dict().items()}
    objective.after_update(models, "generator")
    assert any(p.abs().max() > 0.01 for p in critic.parameters()), "clipped after a generator update"
    objective.after_update(models, "critic")
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    assert_same_tensors(generator_before, models["generator"].state_dict())
    # no clipping for the other losses
    for name in ("dcgan", "wgan-gp"):
        other, other_models, _ = build(name)
        other.after_update(other_models, other.critic_phase)
        assert any(p.abs().max() > 0.01 for p in other_models["critic"].parameters()), name


# --------------------------------------------------------------------------- 3. n_critic updates per step


def recording(base: type):
    """An objective of class ``base`` that records its losses' phases, batches and optimiser steps."""

    class Recording(base):
        def __init__(self):
            super().__init__()
            self.calls, self.steps, self.after, self.step = [], [], [], None

        def compute_loss(self, models, images, generator, phase="model", step=0):
            self.step = step  # the loop passes the optimiser step explicitly
            self.calls.append((step, phase, images.detach().clone()))
            return super().compute_loss(models, images, generator, phase, step)

        def create_optimizers(self, models, context):
            optimizers = super().create_optimizers(models, context)
            for index, optimizer in enumerate(optimizers):
                optimizer.register_step_post_hook(lambda *_, i=index: self.steps.append((self.step, i)))
            return optimizers

        def after_update(self, models, phase):
            self.after.append((self.step, phase))
            super().after_update(models, phase)

    return Recording()


@pytest.mark.parametrize(
    "base, n_critic, expected",
    [(WGANGPObjective, 1, 1), (WGANGPObjective, 3, 3), (WGANObjective, None, 5), (DCGANObjective, None, 1)],
    ids=["wgan-gp-1", "wgan-gp-3", "wgan-default", "dcgan-default"],
)
def test_n_critic_critic_updates_per_generator_update(tmp_path, base, n_critic, expected):
    steps = 4
    objective = recording(base)
    flags = dict(TINY, checkpointing_steps=steps)
    if n_critic is not None:
        flags["n_critic"] = n_critic
    result = hfgen.train(objective, output_dir=str(tmp_path / "run"), max_train_steps=steps, **flags)
    assert result.global_step == steps
    phase = "discriminator" if base is DCGANObjective else "critic"
    assert objective.updates(objective.context) == [Update(phase, 0)] * expected + [Update("generator", 1)]

    per_step = [phase] * expected + ["generator"]
    assert [(s, p) for s, p, _ in objective.calls] == [(s, p) for s in range(steps) for p in per_step]
    assert objective.steps == [(s, i) for s in range(steps) for i in [0] * expected + [1]]  # critic opt is 0
    assert objective.after == [(s, p) for s in range(steps) for p in per_step]

    # every critic update sees its own real batch (16 images of the digits training set)
    batches = [images for _, p, images in objective.calls if p == phase]
    assert len(batches) == expected * steps
    assert all(b.shape == (16, 1, 16, 16) and b.min() >= -1 and b.max() <= 1 for b in batches)
    for i in range(len(batches)):
        for j in range(i):
            assert not torch.equal(batches[i], batches[j]), f"critic updates {j} and {i} share a batch"

    # the optimisers' own step counters agree: n_critic x steps for the critic, steps for the generator
    states = load_optimizer_states(tmp_path / "run" / "checkpoints" / f"checkpoint-{steps}")
    for name, count in (("critic", expected * steps), ("generator", steps)):
        counters = {float(s["step"]) for s in states[name]["state"].values()}
        assert counters == {float(count)}, (name, counters)
    args = json.loads((tmp_path / "run" / "training_args.json").read_text())
    assert args["n_critic"] == expected
    # the logged series: one point per generator step
    assert [s for s, _ in result.loss_history["generator_loss"]] == list(range(1, steps + 1))
    assert [s for s, _ in result.loss_history[f"{phase}_loss"]] == list(range(1, steps + 1))


# ---------------------------------------------------------------------------------------------- 4. resume


@pytest.mark.parametrize("name, extra", [("wgan-gp", {}), ("wgan", {}), ("dcgan", {"use_ema": True})])
def test_resume_restores_both_networks_and_both_optimisers(tmp_path, name, extra):
    common = dict(TINY, checkpointing_steps=3, seed=5, **extra)
    straight = hfgen.train(name, output_dir=str(tmp_path / "straight"), max_train_steps=6, **common)
    first = hfgen.train(name, output_dir=str(tmp_path / "resumed"), max_train_steps=3, **common)
    assert first.global_step == 3
    resumed = hfgen.train(
        name, output_dir=str(tmp_path / "resumed"), max_train_steps=6, resume_from_checkpoint="latest", **common
    )
    assert resumed.global_step == 6
    for component in ("generator", "critic"):
        straight_weights = safetensors_of(tmp_path / "straight", component)
        assert_same_tensors(straight_weights, safetensors_of(tmp_path / "resumed", component))
    a, b = (tmp_path / run / "checkpoints" / "checkpoint-6" for run in ("straight", "resumed"))
    for model_file in ("model.safetensors", "model_1.safetensors"):
        assert_same_tensors(load_file(str(a / model_file)), load_file(str(b / model_file)))
    states_a, states_b = load_optimizer_states(a), load_optimizer_states(b)
    n_critic = EXPECTED_DEFAULTS[name]["n_critic"]
    for which, updates_per_step in (("critic", n_critic), ("generator", 1)):
        assert_same_state(states_a[which], states_b[which], which)
        assert {float(s["step"]) for s in states_a[which]["state"].values()} == {6.0 * updates_per_step}
    # the logged history is the uninterrupted run's, exactly
    assert resumed.loss_history == straight.loss_history
    assert [s for s, _ in resumed.loss_history["generator_loss"]] == list(range(1, 7))
    # training moved both networks between the checkpoints (the comparison above is not vacuous)
    mid = tmp_path / "resumed" / "checkpoints" / "checkpoint-3"
    for model_file in ("model.safetensors", "model_1.safetensors"):
        before, after = load_file(str(mid / model_file)), load_file(str(b / model_file))
        assert any(not torch.equal(before[k], after[k]) for k in before), model_file


def test_resume_depends_on_the_critic_optimiser_state(tmp_path):
    """Resuming with a fresh critic optimiser (Adam moments dropped) ends elsewhere: the state that the resume
    restores matters."""
    common = dict(TINY, checkpointing_steps=3, seed=5)
    hfgen.train("wgan-gp", output_dir=str(tmp_path / "straight"), max_train_steps=6, **common)
    hfgen.train("wgan-gp", output_dir=str(tmp_path / "reset"), max_train_steps=3, **common)
    path = tmp_path / "reset" / "checkpoints" / "checkpoint-3" / "optimizer.bin"
    state = torch.load(path, weights_only=True)
    assert {float(s["step"]) for s in state["state"].values()} == {15.0}  # the critic's: 5 x 3 updates
    state["state"] = {}
    torch.save(state, path)
    hfgen.train(
        "wgan-gp", output_dir=str(tmp_path / "reset"), max_train_steps=6, resume_from_checkpoint="latest", **common
    )
    a, b = safetensors_of(tmp_path / "straight", "critic"), safetensors_of(tmp_path / "reset", "critic")
    assert any(not torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------- the losses by hand


def test_discriminator_loss_with_one_sided_label_smoothing_by_hand():
    objective, models, _ = build("dcgan", label_smoothing=0.2)
    netG, netD = models["generator"], models["critic"]
    images = fake_images(8, 10)
    loss, logs = objective.compute_loss(models, images, torch.Generator().manual_seed(3), phase="discriminator")
    value = float(loss.detach())

    g = torch.Generator().manual_seed(3)
    z = torch.randn(8, 8, generator=g)
    with torch.no_grad():
        fake = netG(z).sample
        real_scores, fake_scores = netD(images), netD(fake)
    expected = F.binary_cross_entropy_with_logits(
        real_scores, torch.full_like(real_scores, 0.8)
    ) + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
    torch.testing.assert_close(loss.detach(), expected)
    # the same from the definition: BCE(x, t) = softplus(x) - t x
    by_definition = (F.softplus(real_scores) - 0.8 * real_scores).mean() + F.softplus(fake_scores).mean()
    torch.testing.assert_close(loss.detach(), by_definition)
    unsmoothed = F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores)) + (
        F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
    )
    assert abs(value - float(unsmoothed)) > 1e-4
    # one-sided: fake targets stay 0, so the loss changes by exactly 0.2 * mean(real scores)
    assert value - float(unsmoothed) == pytest.approx(0.2 * float(real_scores.mean()), abs=1e-6)
    assert logs["discriminator_accuracy_real"] == pytest.approx(float((real_scores > 0).float().mean()))
    assert logs["discriminator_accuracy_fake"] == pytest.approx(float((fake_scores < 0).float().mean()))
    loss.backward()
    assert all(p.grad is None for p in netG.parameters()), "the discriminator loss must not train G"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in netD.parameters())


@pytest.mark.parametrize("name", GANS)
def test_generator_loss_by_hand(name):
    objective, models, _ = build(name)
    netG, netD = models["generator"], models["critic"]
    images = fake_images(8, 11)
    loss, _ = objective.compute_loss(models, images, torch.Generator().manual_seed(4), phase="generator")
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        scores = netD(netG(z).sample)
    if name == "dcgan":  # non-saturating: -log sigmoid(D(G(z)))
        expected = F.softplus(-scores).mean()
    else:
        expected = -scores.mean()
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert all(p.grad is not None for p in netG.parameters())


@pytest.mark.parametrize("name", ["wgan", "wgan-gp"])
def test_critic_loss_by_hand(name):
    objective, models, _ = build(name, gradient_penalty_weight=7.0)
    netG, netD = models["generator"], models["critic"]
    images = fake_images(8, 12)
    loss, logs = objective.compute_loss(models, images, torch.Generator().manual_seed(5), phase="critic")
    g = torch.Generator().manual_seed(5)
    z = torch.randn(8, 8, generator=g)
    with torch.no_grad():
        fake = netG(z).sample
    wasserstein = netD(images).mean() - netD(fake).mean()
    expected = -wasserstein
    assert logs["wasserstein_estimate"] == pytest.approx(float(wasserstein), rel=1e-5, abs=1e-7)
    if name == "wgan-gp":
        penalty, norms = gradient_penalty(netD, images, fake, g)  # ε drawn after z from the same generator
        expected = expected + 7.0 * penalty
        assert logs["gradient_penalty"] == pytest.approx(float(penalty), rel=1e-5)
        assert logs["critic_gradient_norm"] == pytest.approx(float(norms.mean()), rel=1e-5)
        assert float(penalty) > 0
    else:
        assert "gradient_penalty" not in logs
    torch.testing.assert_close(loss.detach(), expected.detach())


def test_instance_noise_anneals_linearly_to_zero():
    objective, models, context = build("dcgan", instance_noise=0.5, max_train_steps=10)

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inputs = []

        def forward(self, x):
            self.inputs.append(x.detach().clone())
            return x.flatten(1).sum(1) * 0

    recorder = Recorder()
    models = {"generator": models["generator"], "critic": recorder}
    images = torch.zeros(32, 1, 16, 16)
    for step, std in ((0, 0.5), (2, 0.4), (5, 0.25), (9, 0.05), (10, 0.0)):
        recorder.inputs.clear()
        generator = torch.Generator().manual_seed(6)
        _, logs = objective.compute_loss(models, images, generator, phase="discriminator", step=step)
        real_input = recorder.inputs[0]
        g = torch.Generator().manual_seed(6)
        torch.randn(32, 8, generator=g)  # z comes first
        torch.testing.assert_close(real_input, std * torch.randn(32, 1, 16, 16, generator=g))
        if std:
            assert float(real_input.std()) == pytest.approx(std, rel=0.05)
            assert logs["instance_noise_std"] == pytest.approx(std)
        else:
            assert torch.equal(real_input, images)
    # the generator's images also pass through the noise on their way to the critic
    recorder.inputs.clear()
    objective.compute_loss(models, images, torch.Generator().manual_seed(7), phase="generator", step=0)
    z = torch.randn(32, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        clean = models["generator"](z).sample
    assert float((recorder.inputs[0] - clean).std()) == pytest.approx(0.5, rel=0.05)


def test_instance_noise_schedule_in_the_training_loop(tmp_path):
    result = hfgen.train("dcgan", output_dir=str(tmp_path / "noise"), max_train_steps=5, instance_noise=0.3, **TINY)
    logged = result.loss_history["instance_noise_std"]
    assert [s for s, _ in logged] == [1, 2, 3, 4, 5]
    for (step, value), expected in zip(logged, [0.3 * (1 - k / 5) for k in range(5)]):
        assert value == pytest.approx(expected, rel=1e-9), step


class LabelRecorder(nn.Module):
    """A critic that records the labels it is given and scores every image 0."""

    def __init__(self):
        super().__init__()
        self.labels = []

    def forward(self, x, class_labels=None):
        self.labels.append(None if class_labels is None else class_labels.clone())
        return x.flatten(1).sum(1) * 0


def test_mode_seeking_ratio_by_hand():
    images = torch.arange(5 * 4, dtype=torch.float32).reshape(5, 1, 2, 2)
    latents = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0], [2.0, 4.0], [9.0, 9.0]])
    # pairs (0, 2) and (1, 3); the odd last row is left out
    image_distance = (images[:2] - images[2:4]).abs().mean()  # 8 everywhere
    latent_distance = (latents[:2] - latents[2:4]).abs().mean()  # (3 + 3 + 1 + 3) / 4
    assert float(mode_seeking_ratio(images, latents)) == pytest.approx(8 / 2.5)
    assert float(image_distance / latent_distance) == pytest.approx(3.2)
    # a generator that ignores z has ratio 0, so the regulariser λ / (0 + 1e-5) is huge
    assert float(mode_seeking_ratio(torch.ones(4, 1, 2, 2), torch.randn(4, 3))) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        mode_seeking_ratio(images[:1], latents[:1])


@pytest.mark.parametrize("name", GANS)
def test_mode_seeking_generator_loss_by_hand(name):
    objective, models, _ = build(name, mode_seeking_weight=2.0)
    netG, netD = models["generator"], models["critic"]
    images = fake_images(8, 12)
    loss, logs = objective.compute_loss(models, images, torch.Generator().manual_seed(5), phase="generator")
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(5))
    fake = netG(z).sample
    scores = netD(fake)
    adversarial = (
        F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores)) if name == "dcgan" else -scores.mean()
    )
    ratio = (fake[:4] - fake[4:]).abs().mean() / (z[:4] - z[4:]).abs().mean()
    assert logs["mode_seeking_ratio"] == pytest.approx(ratio.item(), rel=1e-5)
    assert logs["generator_adversarial_loss"] == pytest.approx(adversarial.item(), rel=1e-5)
    torch.testing.assert_close(loss.detach(), (adversarial + 2.0 / (ratio + 1e-5)).detach())
    # without the flag: the adversarial loss alone, nothing more logged
    objective, models, _ = build(name)
    loss, logs = objective.compute_loss(models, images, torch.Generator().manual_seed(5), phase="generator")
    torch.testing.assert_close(loss.detach(), adversarial.detach())
    assert logs == {}


def test_mode_seeking_ratio_is_taken_on_the_clean_fakes_under_instance_noise():
    objective, models, _ = build("dcgan", mode_seeking_weight=1.0, instance_noise=0.5, max_train_steps=10)
    _, logs = objective.compute_loss(models, fake_images(8, 1), torch.Generator().manual_seed(2), phase="generator")
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fake = models["generator"](z).sample
    assert logs["mode_seeking_ratio"] == pytest.approx(mode_seeking_ratio(fake, z).item(), rel=1e-5)


def test_mode_seeking_pairs_share_labels_in_a_conditional_run():
    objective, models, _ = build("dcgan", mode_seeking_weight=1.0)
    generator = DCGANGenerator(sample_size=16, latent_dim=8, base_channels=8, num_classes=10)
    given = []
    generator.register_forward_pre_hook(lambda _, args, kwargs: given.append(kwargs["class_labels"].clone()),
                                        with_kwargs=True)  # fmt: skip
    critic = LabelRecorder()
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8])  # odd: the last image keeps its label
    objective.compute_loss({"generator": generator, "critic": critic}, fake_images(9, 3), torch.Generator(),
                           phase="generator", class_labels=labels)  # fmt: skip
    # z1 and z2 of each pair are drawn with the same class, and the critic scores each fake with its class
    assert given[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 8]
    assert critic.labels[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 8]
    assert labels.tolist() == list(range(9))  # the caller's labels are not changed in place
    # the critic phase scores the data's own labels
    critic.labels.clear()
    objective.compute_loss({"generator": generator, "critic": critic}, fake_images(9, 3), torch.Generator(),
                           phase="critic", class_labels=labels)  # fmt: skip
    assert [t.tolist() for t in critic.labels] == [list(range(9))] * 2


def test_mode_seeking_weight_is_checked_when_parsed(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "dcgan", "--mode_seeking_weight", "-1", "--output_dir", tmp_path / "m")
    assert "--mode_seeking_weight must be >= 0" in error_line(code, err)
    assert not (tmp_path / "m").exists()
    code, _, err = run_cli(capsys, "train", "dcgan", "--mode_seeking_weight", "1", "--train_batch_size", "1",
                           "--output_dir", tmp_path / "m")  # fmt: skip
    assert "use --train_batch_size 2 or more" in error_line(code, err)
    assert not (tmp_path / "m").exists()


def test_mode_seeking_in_the_training_loop_with_accumulation(tmp_path):
    result = hfgen.train("wgan-gp", output_dir=str(tmp_path / "ms"), max_train_steps=3, mode_seeking_weight=1.0,
                         gradient_accumulation_steps=2, class_conditional=True, **TINY)  # fmt: skip
    ratios = result.loss_history["mode_seeking_ratio"]
    assert [step for step, _ in ratios] == [1, 2, 3]
    assert all(0 < value < 100 for _, value in ratios)
    adversarial = dict(result.loss_history["generator_adversarial_loss"])
    for step, value in result.loss_history["generator_loss"]:  # the logged loss includes λ / (ratio + 1e-5)
        assert value > adversarial[step]
    assert (tmp_path / "ms" / "figures").is_dir()


# --------------------------------------------------------------------------------------------- the series


@pytest.mark.parametrize("name", GANS)
def test_logged_series(tmp_path, name):
    result = hfgen.train(name, output_dir=str(tmp_path / name), max_train_steps=4, **TINY)
    history = result.loss_history
    expected = {
        "dcgan": {"discriminator_loss", "generator_loss", "discriminator_accuracy_real",
                  "discriminator_accuracy_fake"},
        "wgan": {"critic_loss", "generator_loss", "wasserstein_estimate"},
        "wgan-gp": {"critic_loss", "generator_loss", "wasserstein_estimate", "gradient_penalty",
                    "critic_gradient_norm"},
    }[name]  # fmt: skip
    assert set(history) == expected
    for key in expected:
        assert [s for s, _ in history[key]] == [1, 2, 3, 4], key
        assert all(math.isfinite(v) for _, v in history[key]), key
    if name == "dcgan":
        for key in ("discriminator_accuracy_real", "discriminator_accuracy_fake"):
            assert all(0 <= v <= 1 for _, v in history[key])
        assert all(v > 0 for _, v in history["discriminator_loss"])
    else:
        # the critic loss is -W (+ λ GP), averaged over the n_critic updates like the logs
        penalty = dict(history.get("gradient_penalty", []))
        for step, loss in history["critic_loss"]:
            w = dict(history["wasserstein_estimate"])[step]
            assert loss == pytest.approx(-w + 10.0 * penalty.get(step, 0.0), rel=1e-4, abs=1e-6)
    if name == "wgan-gp":
        for (_, gp), (_, norm) in zip(history["gradient_penalty"], history["critic_gradient_norm"]):
            assert norm > 0 and gp >= (norm - 1) ** 2 - 1e-9  # Jensen: E[(n - 1)^2] >= (E[n] - 1)^2


# ------------------------------------------------------------------------------------------- the networks


@pytest.mark.parametrize("size, base", [(8, 4), (16, 4), (28, 7), (32, 4), (12, 6)])
def test_generator_and_discriminator_shapes(size, base):
    torch.manual_seed(0)
    generator = DCGANGenerator(sample_size=size, out_channels=3, latent_dim=8, base_channels=8)
    images = generator(torch.randn(5, 8)).sample
    assert images.shape == (5, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    for batch_norm in (True, False):
        critic = DCGANDiscriminator(sample_size=size, in_channels=3, base_channels=8, use_batch_norm=batch_norm)
        assert critic(images).shape == (5,)
    # transposed convolutions: the generator projects z to base x base, then doubles the size per level
    levels = int(math.log2(size // base))
    convs = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == levels + 1 and convs[0].kernel_size == (base, base)
    with pytest.raises(ValueError, match="latent"):
        generator(torch.randn(5, 9))


@pytest.mark.parametrize("size", [4, 30, 36, 18, 0])
def test_unsupported_sample_sizes_are_refused(size):
    with pytest.raises(ValueError, match="sample_size.*valid resolutions: 8, 12, 16, 20, 24, 28, 32"):
        DCGANGenerator(sample_size=size)
    with pytest.raises(ValueError, match="sample_size"):
        DCGANDiscriminator(sample_size=size)


def test_a_bad_resolution_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="--resolution"):
        hfgen.train("dcgan", output_dir=str(tmp_path / "r"), max_train_steps=1, resolution=30, **TINY)


def test_dcgan_initialisation():
    torch.manual_seed(0)
    generator = DCGANGenerator(sample_size=32, latent_dim=100, base_channels=64)
    critic = DCGANDiscriminator(sample_size=32, base_channels=64)
    for model in (generator, critic):
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        weights = torch.cat([m.weight.detach().flatten() for m in convs])
        assert weights.numel() > 50_000
        assert float(weights.std()) == pytest.approx(0.02, rel=0.03)
        assert abs(float(weights.mean())) < 0.001
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms
        scales = torch.cat([m.weight.detach() for m in norms])
        assert float(scales.mean()) == pytest.approx(1.0, abs=0.01)
        assert 0.01 < float(scales.std()) < 0.03
        assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    # dcgan_init_ applies to any module and zeroes conv biases
    layer = nn.Sequential(nn.Conv2d(16, 256, 3), nn.Linear(3, 3))
    linear_before = layer[1].weight.detach().clone()
    dcgan_init_(layer)
    assert float(layer[0].weight.std()) == pytest.approx(0.02, rel=0.05)
    assert torch.equal(layer[0].bias, torch.zeros(256))
    assert torch.equal(layer[1].weight, linear_before)  # only convolutions and batch norms


def test_discriminator_without_batch_norm_scores_each_sample_on_its_own():
    torch.manual_seed(0)
    plain = DCGANDiscriminator(sample_size=16, base_channels=8, use_batch_norm=False)
    normed = DCGANDiscriminator(sample_size=16, base_channels=8, use_batch_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in normed.modules()) == 1  # 16x16: 2 levels, not the input
    assert not isinstance(normed.main[1], nn.BatchNorm2d)
    images = fake_images(6, 20)
    plain.train(), normed.train()
    with torch.no_grad():
        torch.testing.assert_close(plain(images[:2]), plain(images)[:2])  # no coupling between samples
        assert not torch.allclose(normed(images[:2]), normed(images)[:2])  # batch norm couples them
    with pytest.raises(Exception, match="16"):
        plain(torch.zeros(2, 1, 8, 8))


def test_wgan_gp_critic_has_no_batch_norm(acceptance):
    name, output_dir = acceptance
    critic = GANPipeline.from_pretrained(str(output_dir)).critic
    has_norm = any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())
    assert critic.config.use_batch_norm is has_norm is (name != "wgan-gp")


# ------------------------------------------------------------------------------------------- the pipeline


def test_pipeline_samples_and_uses_one_network_evaluation(gan):
    calls = []
    handle = gan.generator.register_forward_hook(lambda *_: calls.append(1))
    try:
        images = gan(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="np").images
    finally:
        handle.remove()
    assert calls == [1]
    assert images.shape == (4, 16, 16, 1) and images.min() >= 0 and images.max() <= 1
    pil = gan(batch_size=2, generator=torch.Generator().manual_seed(0)).images
    assert len(pil) == 2 and isinstance(pil[0], Image.Image) and pil[0].size == (16, 16)
    np.testing.assert_allclose(np.asarray(pil[0]) / 255, images[0, :, :, 0], atol=1 / 255 + 1e-6)

    # z ~ N(0, I) from the generator, G(z) rescaled to [0, 1]
    z = torch.randn(3, gan.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = (gan.generator(z).sample + 1) / 2
    drawn = gan(batch_size=3, generator=torch.Generator().manual_seed(1), output_type="pt").images
    torch.testing.assert_close(drawn, expected.clamp(0, 1))
    given = gan(batch_size=3, latents=z, output_type="pt").images
    torch.testing.assert_close(given, drawn)
    # the loaded generator is in eval mode: an image does not depend on the rest of its batch
    torch.testing.assert_close(gan(batch_size=1, latents=z[1:2], output_type="pt").images[0], given[1])
    with pytest.raises(ValueError, match="batch_size"):
        gan(batch_size=0)
    with pytest.raises(ValueError, match="latents"):
        gan(batch_size=2, latents=torch.zeros(2, gan.latent_dim + 1))
    with pytest.raises(ValueError, match="batch_size"):
        gan(batch_size=2, latents=z)


@pytest.mark.parametrize("method", ["slerp", "linear"])
def test_interpolation_endpoints_are_the_images_of_the_endpoints(gan, method):
    g = torch.Generator().manual_seed(3)
    z_a, z_b = torch.randn(gan.latent_dim, generator=g), torch.randn(gan.latent_dim, generator=g)
    ends = gan(batch_size=2, latents=torch.stack([z_a, z_b]), output_type="pt").images
    seen = []
    handle = gan.generator.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    try:
        row = gan.interpolate(z_a, z_b, steps=6, method=method, output_type="pt").images
    finally:
        handle.remove()
    assert row.shape == (6, 1, 16, 16)
    torch.testing.assert_close(row[0], ends[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(row[-1], ends[1], rtol=0, atol=1e-5)
    assert not torch.allclose(row[0], row[-1], atol=1e-3)
    (path,) = seen
    t = torch.linspace(0, 1, 6)
    expected = slerp(z_a, z_b, t) if method == "slerp" else (1 - t[:, None]) * z_a + t[:, None] * z_b
    torch.testing.assert_close(path, expected)
    if method == "slerp":  # the norms stay near sqrt(d) instead of dipping in the middle
        assert path.norm(dim=1).min() > ((z_a + z_b) / 2).norm() - 1e-5
    with pytest.raises(ValueError, match="steps"):
        gan.interpolate(z_a, z_b, steps=1)
    with pytest.raises(ValueError, match="slerp"):
        gan.interpolate(z_a, z_b, method="cubic")


def test_save_and_load_gives_the_same_images_for_the_same_seed(gan, tmp_path):
    gan.save_pretrained(str(tmp_path / "copy"), safe_serialization=True)
    reference = gan(batch_size=5, generator=torch.Generator().manual_seed(4), output_type="pt").images
    for loaded in (GANPipeline.from_pretrained(str(tmp_path / "copy")), hfgen.load_pipeline(str(tmp_path / "copy"))):
        assert type(loaded) is GANPipeline
        quiet(loaded)
        images = loaded(batch_size=5, generator=torch.Generator().manual_seed(4), output_type="pt").images
        assert torch.equal(images, reference)
        for component in ("generator", "critic"):
            a, b = getattr(gan, component).state_dict(), getattr(loaded, component).state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), component
    other = gan(batch_size=5, generator=torch.Generator().manual_seed(5), output_type="pt").images
    assert not torch.equal(other, reference)


def test_evaluate_reports_one_network_evaluation(tiny_gan_dir, tmp_path):
    from hfgen.jobs.evaluate import evaluate_pipeline

    folder = tmp_path / "gan"
    shutil.copytree(tiny_gan_dir, folder)
    metrics = evaluate_pipeline(str(folder), num_images=66, batch_size=66)
    assert metrics["nfe"] == 1 and metrics["num_inference_steps"] == 1
    assert metrics["scheduler"] == "GANPipeline" and metrics["num_images"] == 66
    assert math.isfinite(metrics["fid"]) and metrics["fid"] > 0
    assert "negative_elbo_nats" not in metrics  # no likelihood for a GAN
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["nfe"] == 1 and saved["fid"] == pytest.approx(metrics["fid"])


# ------------------------------------------------------------------------------------------- acceptance


def test_acceptance_folder_samples_and_loads(acceptance):
    name, output_dir = acceptance
    pipeline = GANPipeline.from_pretrained(str(output_dir))
    images = pipeline(batch_size=4, output_type="np").images
    assert images.shape == (4, 16, 16, 1)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    loaded = hfgen.load_pipeline(str(output_dir))
    assert type(loaded) is GANPipeline
    assert isinstance(loaded.generator, DCGANGenerator) and isinstance(loaded.critic, DCGANDiscriminator)
    assert loaded.generator.config.latent_dim == 8 and loaded.generator.config.base_channels == 8
    assert loaded.critic.config.base_channels == 8
    index = json.loads((output_dir / "model_index.json").read_text())
    assert index["_class_name"] == ["hfgen_pipeline_gan", "GANPipeline"]
    assert index["generator"][1] == "DCGANGenerator" and index["critic"][1] == "DCGANDiscriminator"


def test_acceptance_folder_contents(acceptance):
    from huggingface_hub import ModelCard

    name, output_dir = acceptance
    for path in ("critic/config.json", "generator/config.json", "critic/diffusion_pytorch_model.safetensors",
                 "generator/diffusion_pytorch_model.safetensors", "README.md", "training_args.json", "loss.png",
                 "samples/step-000010.png", "checkpoints/checkpoint-10/trainer_state.json"):  # fmt: skip
        assert (output_dir / path).is_file(), path
    with Image.open(output_dir / "figures" / "training_curves.png") as image:
        assert image.format == "PNG"
        # one 260-pixel panel per group of logged series: losses + accuracy / W estimate (+ penalty for wgan-gp)
        assert image.height == 260 * (3 if name == "wgan-gp" else 2)
    card = ModelCard.load(output_dir / "README.md")
    assert "gan" in card.data.tags and "hfgen" in card.data.tags
    title = {"dcgan": "DCGAN (Radford", "wgan": "WGAN (Arjovsky", "wgan-gp": "WGAN-GP (Gulrajani"}[name]
    assert title in card.text and "GANPipeline" in card.text
    critic_name = "discriminator" if name == "dcgan" else "critic"
    n_critic = EXPECTED_DEFAULTS[name]["n_critic"]
    assert f"| {critic_name} updates per generator update | {n_critic} |" in card.text
    assert "figures/training_curves.png" in card.text


def test_defaults_per_loss_are_recorded_and_used(acceptance):
    name, output_dir = acceptance
    args = json.loads((output_dir / "training_args.json").read_text())
    assert args["model"] == name and args["max_train_steps"] == 10
    for key, value in {**EXPECTED_DEFAULTS[name], **COMMON_DEFAULTS}.items():
        assert args[key] == value, key
    # the optimisers the checkpoint holds: their hyper-parameters and kind of state
    states = load_optimizer_states(output_dir / "checkpoints" / "checkpoint-10")
    for which, state in states.items():
        (group,) = state["param_groups"]
        assert group["lr"] == pytest.approx(EXPECTED_DEFAULTS[name]["learning_rate"]), which
        moments = set().union(*(s.keys() for s in state["state"].values()))
        if name == "wgan":
            assert "square_avg" in moments and "exp_avg" not in moments and "alpha" in group, which
            assert group["momentum"] == 0
        else:
            assert {"exp_avg", "exp_avg_sq"} <= moments, which
            expected_betas = (EXPECTED_DEFAULTS[name]["adam_beta1"], EXPECTED_DEFAULTS[name]["adam_beta2"])
            assert tuple(group["betas"]) == pytest.approx(expected_betas)
            assert group["weight_decay"] == 0.0
    card = (output_dir / "README.md").read_text()
    optimiser = {"dcgan": "Adam (lr 0.0002, betas (0.5, 0.999))", "wgan": "RMSProp (lr 5e-05)",
                 "wgan-gp": "Adam (lr 0.0001, betas (0, 0.9))"}[name]  # fmt: skip
    assert optimiser in card


@pytest.mark.parametrize(
    "name, optimiser", [("dcgan", torch.optim.Adam), ("wgan", torch.optim.RMSprop), ("wgan-gp", torch.optim.Adam)]
)
def test_optimiser_types(name, optimiser):
    objective, models, context = build(name)
    critic_opt, generator_opt = objective.create_optimizers(models, context)
    for opt, model in ((critic_opt, models["critic"]), (generator_opt, models["generator"])):
        assert type(opt) is optimiser
        params = [p for group in opt.param_groups for p in group["params"]]
        assert {id(p) for p in params} == {id(p) for p in model.parameters()}  # one network per optimiser


@pytest.mark.parametrize(
    "name, flags, expected",
    [
        ("gan", {}, EXPECTED_DEFAULTS["dcgan"]),
        ("gan", {"gan_loss": "wgan"}, EXPECTED_DEFAULTS["wgan"]),
        ("gan", {"gan_loss": "wgan-gp"}, EXPECTED_DEFAULTS["wgan-gp"]),
        ("wgan", {"gan_loss": "wgan"}, EXPECTED_DEFAULTS["wgan"]),
        ("wgan-gp", {"n_critic": 2, "learning_rate": 3e-4, "adam_beta1": 0.5},
         {**EXPECTED_DEFAULTS["wgan-gp"], "n_critic": 2, "learning_rate": 3e-4, "adam_beta1": 0.5}),
        ("dcgan", {"critic_batch_norm": False}, {**EXPECTED_DEFAULTS["dcgan"], "critic_batch_norm": False}),
    ],
)  # fmt: skip
def test_resolved_defaults_and_overrides(name, flags, expected):
    objective, models, context = build(name, **flags)
    resolved = {**vars(context.training_args), **vars(context.model_args), **vars(context.data_args)}
    for key, value in {**expected, **COMMON_DEFAULTS}.items():
        assert resolved[key] == value, key
    assert models["critic"].config.use_batch_norm is expected["critic_batch_norm"]
    assert len(objective.updates(context)) == expected["n_critic"] + 1


# -------------------------------------------------------------------------------------- command-line errors


def test_critic_batch_norm_with_wgan_gp_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "wgan-gp", "--critic_batch_norm", "true", "--output_dir", tmp_path / "o")
    line = error_line(code, err)
    assert "--critic_batch_norm" in line and "wgan-gp" in line
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigurationError, match="critic_batch_norm"):
        hfgen.train("wgan-gp", output_dir=str(tmp_path / "p"), critic_batch_norm=True, **TINY)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name", ["wgan-gp", "dcgan"])
def test_bare_critic_batch_norm_flag(tmp_path, capsys, name, monkeypatch):
    import hfgen.training.trainer as trainer

    captured = []
    if name == "dcgan":  # parse only; wgan-gp must fail in the real train() before anything is written
        monkeypatch.setattr(trainer, "train", lambda objective, *args: captured.append(args))
    code, _, err = run_cli(capsys, "train", name, "--critic_batch_norm", "--output_dir", tmp_path / "o")
    if name == "wgan-gp":
        line = error_line(code, err)
        assert "--critic_batch_norm cannot be used with wgan-gp" in line
        assert not (tmp_path / "o").exists()
    else:
        assert code == 0, err
        assert captured[0][2].critic_batch_norm is True


def test_model_card_training_command_reproduces_the_run(acceptance, capsys, monkeypatch):
    import hfgen.training.trainer as trainer

    name, output_dir = acceptance
    command = re.search(r"```bash\n(hfgen train .*?)\n```", (output_dir / "README.md").read_text()).group(1)
    captured = []
    monkeypatch.setattr(trainer, "train", lambda objective, *args: captured.append(args))  # parse only
    code, _, err = run_cli(capsys, *shlex.split(command)[1:])
    assert code == 0, err
    model_args = captured[0][2]
    recorded = json.loads((output_dir / "training_args.json").read_text())
    for key in ("gan_loss", "latent_dim", "critic_channels", "n_critic", "critic_batch_norm"):
        assert getattr(model_args, key) == recorded[key], key


def test_model_card_usage_snippet_runs(tiny_gan_dir):
    card = (tiny_gan_dir / "README.md").read_text()
    snippet = re.search(r"## How to use\s+```python\n(.*?)```", card, re.S).group(1)
    assert '"your-username/tiny-dcgan"' in snippet  # the Hub id the card names until `hfgen push` fills it in
    snippet = snippet.replace("your-username/tiny-dcgan", str(tiny_gan_dir))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert len(namespace["row"]) == 8


def test_loss_of_another_preset_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "dcgan", "--gan_loss", "wgan", "--output_dir", tmp_path / "o")
    line = error_line(code, err)
    assert "--gan_loss wgan" in line and "hfgen train wgan" in line
    code, _, err = run_cli(capsys, "train", "wgan", "--gan_loss", "bce", "--output_dir", tmp_path / "o")
    assert "hfgen train dcgan" in error_line(code, err)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigurationError, match="hfgen train wgan-gp"):
        hfgen.train("dcgan", output_dir=str(tmp_path / "p"), gan_loss="wgan-gp", **TINY)


@pytest.mark.parametrize("name", ["wgan", "wgan-gp"])
@pytest.mark.parametrize("flag", ["label_smoothing", "label_flip_prob"])
def test_bce_only_options_with_a_wasserstein_loss_are_a_clear_error(tmp_path, capsys, name, flag):
    code, _, err = run_cli(capsys, "train", name, f"--{flag}", "0.1", "--output_dir", tmp_path / "o")
    line = error_line(code, err)
    assert f"--{flag}" in line and name in line and "bce" in line
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigurationError, match="label_smoothing"):
        hfgen.train(name, output_dir=str(tmp_path / "p"), **{flag: 0.1}, **TINY)


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("gan_loss", "hinge", ["--gan_loss", "'hinge'", "wgan-gp"]),
        ("n_critic", 0, ["--n_critic", "at least 1"]),
        ("clip_value", 0.0, ["--clip_value"]),
        ("label_smoothing", 0.5, ["--label_smoothing", "[0, 0.5)"]),
        ("instance_noise", -1.0, ["--instance_noise"]),
    ],
)
def test_invalid_gan_flags_are_clear_errors(tmp_path, capsys, flag, value, words):
    code, _, err = run_cli(capsys, "train", "gan", f"--{flag}", value, "--output_dir", tmp_path / "o")
    line = error_line(code, err)
    assert all(word in line for word in words), line
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match=re.escape(f"--{flag}")):
        GANArguments(**{flag: value})
