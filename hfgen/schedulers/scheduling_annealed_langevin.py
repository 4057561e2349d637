"""Annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data
Distribution", Algorithm 1), with the NCSNv2 options (Song & Ermon 2020, "Improved Techniques for Training
Score-Based Generative Models"): the final denoising step and the 1/σ output scaling.

diffusers' `ScoreSdeVeScheduler` is the later predictor-corrector SDE sampler (adaptive step size, σ passed as the
timestep, no `step`); this scheduler is the original algorithm in diffusers' scheduler interface, so the usual loop
samples it::

    scheduler.set_timesteps(steps_per_level=100)
    sample = init_noise
    for t in scheduler.timesteps:
        score = unet(scheduler.scale_model_input(sample, t), t).sample
        sample = scheduler.step(score, t, sample, generator=generator).prev_sample
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

INIT_DISTRIBUTIONS = ("uniform", "gaussian")


@dataclass
class AnnealedLangevinSchedulerOutput(BaseOutput):
    """Output of `AnnealedLangevinScheduler.step`.

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): the sample after this
            Langevin (or denoising) step; the next model input.
        pred_original_sample (`torch.Tensor` of the same shape): Tweedie's denoised estimate x + σ²·s(x, σ) at the
            current noise level (what the final denoising step returns).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class AnnealedLangevinScheduler(SchedulerMixin, ConfigMixin):
    """Annealed Langevin dynamics over a geometric sequence of noise levels (NCSN).

    Noise levels σ_1 > σ_2 > ... > σ_L run geometrically from ``sigma_max`` to ``sigma_min``. At level i the sampler
    makes T (``steps_per_level``) Langevin steps

        x ← x + (α_i / 2)·s(x, σ_i) + √α_i·z,   z ~ N(0, I),   α_i = ε·σ_i² / σ_L²,

    then moves to the next level; NCSNv2 adds one final denoising step x ← x + σ_L²·s(x, σ_L) (Tweedie's formula).

    Timesteps follow diffusers' convention (larger = noisier): timestep ``t`` in ``0..L-1`` is the noise level
    σ(t) = σ_min·(σ_max/σ_min)^(t/(L-1)), so the paper's level i (1-based, σ_1 = σ_max) is timestep ``L - i``. The
    score network is conditioned on that integer timestep. `timesteps` after `set_timesteps` is
    ``[L-1]*T + [L-2]*T + ... + [0]*T`` (+ ``[0]`` for the denoising step): one entry per network evaluation, so
    ``len(timesteps)`` is the number of network evaluations per image (L·T, +1 with denoising).

    Parameters:
        num_noise_levels (`int`, defaults to 10): L, the number of noise levels (NCSN: 10).
        sigma_max (`float`, defaults to 1.0): σ_1, the largest noise standard deviation, in data units (images in
            [-1, 1]). NCSNv2 sets it to the largest pairwise Euclidean distance between training images.
        sigma_min (`float`, defaults to 0.01): σ_L, the smallest one.
        steps_per_level (`int`, defaults to 100): T, the default number of Langevin steps per level (NCSN: 100).
        epsilon (`float`, defaults to 2e-5): ε, the step size at the last level (NCSN: 2e-5).
        denoise (`bool`, defaults to `True`): whether `set_timesteps` appends the final denoising step (NCSNv2).
        scale_output_by_sigma (`bool`, defaults to `False`): NCSNv2's noise conditioning: the score is the network's
            output divided by σ, s(x, σ) = f(x, σ)/σ. Training and sampling both read the score through
            `model_output_to_score`, so they agree.
        init_distribution (`str`, defaults to `"uniform"`): the initial sample: ``"uniform"`` on [-1, 1] (NCSN) or
            ``"gaussian"`` N(0, σ_max² I).

    Raises:
        ValueError: for ``sigma_min <= 0``, ``sigma_max <= sigma_min``, ``num_noise_levels < 1``,
            ``steps_per_level < 1``, ``epsilon <= 0`` or an unknown ``init_distribution``.
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        num_noise_levels: int = 10,
        sigma_max: float = 1.0,
        sigma_min: float = 0.01,
        steps_per_level: int = 100,
        epsilon: float = 2e-5,
        denoise: bool = True,
        scale_output_by_sigma: bool = False,
        init_distribution: str = "uniform",
    ):
        if not sigma_min > 0 or not sigma_max > sigma_min:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        if num_noise_levels < 1:
            raise ValueError(f"num_noise_levels must be at least 1, got {num_noise_levels}")
        self._check_sampling(steps_per_level, epsilon)
        if init_distribution not in INIT_DISTRIBUTIONS:
            raise ValueError(f"init_distribution must be one of {INIT_DISTRIBUTIONS}, got {init_distribution!r}")
        if num_noise_levels == 1:
            levels = torch.tensor([float(sigma_min)], dtype=torch.float64)
        else:
            levels = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_noise_levels))
        self.sigmas = levels.to(torch.float32)  # σ_1 > ... > σ_L (paper order); sigmas[i] is timestep L-1-i
        self.init_noise_sigma = float(sigma_max) if init_distribution == "gaussian" else 1.0
        self.set_timesteps()

    @staticmethod
    def _check_sampling(steps_per_level, epsilon):
        if steps_per_level is not None and steps_per_level < 1:
            raise ValueError(f"steps_per_level must be at least 1, got {steps_per_level}")
        if epsilon is not None and not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")

    # ------------------------------------------------------------------ noise levels
    @property
    def num_noise_levels(self) -> int:
        return len(self.sigmas)

    def sigma_for_timesteps(self, timesteps: torch.Tensor | int) -> torch.Tensor:
        """σ of each timestep (level index, larger = noisier): a float tensor shaped like ``timesteps``.

        Raises:
            ValueError: for a timestep outside ``0..L-1``.
        """
        timesteps = torch.as_tensor(timesteps)
        if timesteps.is_floating_point():
            timesteps = timesteps.round()
        timesteps = timesteps.long()
        if timesteps.numel() and (timesteps.min() < 0 or timesteps.max() >= self.num_noise_levels):
            raise ValueError(f"timesteps must lie in 0..{self.num_noise_levels - 1}, got {timesteps.tolist()}")
        return self.sigmas.to(timesteps.device)[self.num_noise_levels - 1 - timesteps]

    @property
    def step_sizes(self) -> torch.Tensor:
        """α_i = ε·σ_i²/σ_L² for each level in sampling order (`(L,)`, with the current ε)."""
        return self.epsilon * self.sigmas**2 / self.sigmas[-1] ** 2

    # ------------------------------------------------------------------ sampling
    def set_timesteps(
        self,
        steps_per_level: int | None = None,
        epsilon: float | None = None,
        denoise: bool | None = None,
        device: str | torch.device | None = None,
    ):
        """Lay out the sampling run: ``timesteps`` gets one entry per network evaluation.

        Args:
            steps_per_level (`int`, *optional*): T; default ``config.steps_per_level``.
            epsilon (`float`, *optional*): ε; default ``config.epsilon``.
            denoise (`bool`, *optional*): append the final denoising step; default ``config.denoise``.
            device: where ``timesteps`` lives.

        Raises:
            ValueError: for ``steps_per_level < 1`` or ``epsilon <= 0``.
        """
        self._check_sampling(steps_per_level, epsilon)
        self.steps_per_level = int(steps_per_level or self.config.steps_per_level)
        self.epsilon = float(epsilon or self.config.epsilon)
        self.denoise = self.config.denoise if denoise is None else bool(denoise)
        levels = torch.arange(self.num_noise_levels - 1, -1, -1)
        timesteps = levels.repeat_interleave(self.steps_per_level)
        if self.denoise:
            timesteps = torch.cat([timesteps, torch.zeros(1, dtype=timesteps.dtype)])
        self.timesteps = timesteps.to(device)
        self.num_inference_steps = len(self.timesteps)
        self._step_index = 0

    @property
    def step_index(self) -> int:
        """How many steps `step` has taken since `set_timesteps`."""
        return self._step_index

    def scale_model_input(self, sample: torch.Tensor, timestep: int | torch.Tensor | None = None) -> torch.Tensor:
        """The identity: NCSN feeds the noisy sample to the network as it is."""
        return sample

    def model_output_to_score(self, model_output: torch.Tensor, timesteps: int | torch.Tensor) -> torch.Tensor:
        """The score s(x, σ) from the network output: itself, or output/σ with ``scale_output_by_sigma``.

        Args:
            model_output (`torch.Tensor` of shape `(batch_size, ...)`).
            timesteps (`int` or `torch.Tensor` of shape `(batch_size,)`): the level index of each sample.
        """
        if not self.config.scale_output_by_sigma:
            return model_output
        sigma = self.sigma_for_timesteps(timesteps).to(model_output.device, model_output.dtype)
        return model_output / sigma.reshape(-1, *([1] * (model_output.ndim - 1)))

    def init_noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | list[torch.Generator] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        init_distribution: str | None = None,
    ) -> torch.Tensor:
        """The initial sample: uniform on [-1, 1] (NCSN) or N(0, σ_max² I) (``"gaussian"``)."""
        kind = init_distribution or self.config.init_distribution
        if kind not in INIT_DISTRIBUTIONS:
            raise ValueError(f"init_distribution must be one of {INIT_DISTRIBUTIONS}, got {kind!r}")
        if kind == "gaussian":
            return randn_tensor(shape, generator=generator, device=device, dtype=dtype) * self.config.sigma_max
        if isinstance(generator, list):
            uniform = torch.cat([torch.rand((1, *shape[1:]), generator=g, dtype=dtype) for g in generator])
        else:
            uniform = torch.rand(shape, generator=generator, dtype=dtype)
        return (uniform * 2 - 1).to(device)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> AnnealedLangevinSchedulerOutput | tuple:
        """One Langevin step x + (α/2)·s + √α·z at ``timestep``'s level, or the final denoising step x + σ_L²·s.

        Args:
            model_output (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): the network output
                at ``sample`` (the score, or σ·score with ``scale_output_by_sigma``).
            timestep (`int` or `torch.Tensor`): the current entry of ``timesteps`` (the level index).
            sample (`torch.Tensor` of the same shape): the current sample.
            generator: the source of the Langevin noise z.

        Returns:
            `AnnealedLangevinSchedulerOutput` (or a tuple ``(prev_sample, pred_original_sample)``).

        Raises:
            ValueError: when called more times than ``timesteps`` has entries (call `set_timesteps` again).
        """
        if self._step_index >= len(self.timesteps):
            raise ValueError(
                f"step() called {self._step_index + 1} times for {len(self.timesteps)} timesteps; call "
                "set_timesteps() before each sampling run"
            )
        timestep = int(torch.as_tensor(timestep).round().item())
        sigma = float(self.sigma_for_timesteps(timestep))
        score = self.model_output_to_score(model_output, torch.full((sample.shape[0],), timestep))
        denoised = sample + sigma**2 * score
        is_denoising_step = self.denoise and self._step_index == len(self.timesteps) - 1
        if is_denoising_step:
            prev_sample = denoised
        else:
            alpha = self.epsilon * sigma**2 / float(self.sigmas[-1]) ** 2
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev_sample = sample + 0.5 * alpha * score + math.sqrt(alpha) * noise
        self._step_index += 1
        if not return_dict:
            return prev_sample, denoised
        return AnnealedLangevinSchedulerOutput(prev_sample=prev_sample, pred_original_sample=denoised)

    # ------------------------------------------------------------------ training
    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x̃ = x + σ(t)·noise, the perturbation of denoising score matching.

        Args:
            original_samples (`torch.Tensor` of shape `(batch_size, ...)`): clean data x.
            noise (`torch.Tensor` of the same shape): standard normal z.
            timesteps (`torch.Tensor` of shape `(batch_size,)`): level index of each sample.
        """
        sigma = self.sigma_for_timesteps(timesteps).to(original_samples.device, original_samples.dtype)
        return original_samples + sigma.reshape(-1, *([1] * (original_samples.ndim - 1))) * noise

    def __len__(self) -> int:
        return self.config.num_noise_levels
