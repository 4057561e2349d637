"""GANs in the one training loop: DCGAN (non-saturating BCE), WGAN (weight clipping) and WGAN-GP.

One training step = ``n_critic`` critic (discriminator) updates, each on a fresh real batch, then one generator
update (`GANObjective.updates`); ``--max_train_steps`` counts generator updates, as the papers' "generator
iterations" do.

- ``bce``: Goodfellow et al. 2014 with the non-saturating generator loss -log D(G(z)), Radford et al. 2016's
  Adam(2e-4, β1 = 0.5); stabilising options: one-sided label smoothing (Salimans et al. 2016), instance noise
  annealed to 0 (Sønderby et al. 2017; Arjovsky & Bottou 2017) and random label flips.
- any loss, ``--mode_seeking_weight λ``: the mode-seeking regulariser of Mao et al. 2019 ("Mode Seeking Generative
  Adversarial Networks for Diverse Image Synthesis", MSGAN): the generator batch is two halves with the same labels
  and different z, and the generator loss gains λ / (mean |G(z1) - G(z2)| / mean |z1 - z2| + 1e-5). A conditional
  generator that ignores z (every sample of a class the same image, recall 0) is pushed to use it.
- ``wgan``: Arjovsky et al. 2017, Algorithm 1: critic maximises E[D(x)] - E[D(G(z))], parameters clipped to
  [-c, c] after every critic update, RMSProp(5e-5), n_critic = 5.
- ``wgan-gp``: Gulrajani et al. 2017, Algorithm 1: + λ E[(‖∇D(x̂)‖₂ - 1)²] on random interpolates x̂, λ = 10,
  Adam(1e-4, β = (0, 0.9)), n_critic = 5, no batch norm in the critic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hfgen.errors import ConfigurationError
from hfgen.training.objectives.base import Objective, TrainingContext, Update

GAN_LOSSES = ("bce", "wgan", "wgan-gp")

# Published optimiser settings per loss; every one is a flag the user can override.
LOSS_DEFAULTS = {
    "bce": {"learning_rate": 2e-4, "adam_beta1": 0.5, "adam_beta2": 0.999, "n_critic": 1},
    "wgan": {"learning_rate": 5e-5, "n_critic": 5},
    "wgan-gp": {"learning_rate": 1e-4, "adam_beta1": 0.0, "adam_beta2": 0.9, "n_critic": 5},
}
COMMON_DEFAULTS = {
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,
    "adam_weight_decay": 0.0,
    "max_grad_norm": 0.0,
}


@dataclass
class GANArguments:
    """GAN flags (DCGAN architecture; objective chosen by --gan_loss or by the model name)."""

    gan_loss: str | None = field(
        default=None,
        metadata={"help": f"{', '.join(GAN_LOSSES)}. Default: from the model name (dcgan: bce, wgan, wgan-gp)."},
    )
    latent_dim: int = field(default=100, metadata={"help": "Size of the generator's input z ~ N(0, I)."})
    generator_channels: int = field(default=64, metadata={"help": "Channels of the generator's last hidden layer."})
    critic_channels: int = field(default=64, metadata={"help": "Channels of the critic's first layer."})
    # Typed `bool` (default None = "by loss") so that HfArgumentParser accepts a bare `--critic_batch_norm` as well as
    # `--critic_batch_norm false`.
    critic_batch_norm: bool = field(
        default=None,
        metadata={"help": "Batch norm in the critic (true/false). Default: yes for bce and wgan, no for wgan-gp."},
    )
    n_critic: int | None = field(
        default=None, metadata={"help": "Critic updates per generator update. Default: 1 (bce), 5 (wgan, wgan-gp)."}
    )
    clip_value: float = field(default=0.01, metadata={"help": "WGAN: clip critic parameters to [-c, c]."})
    gradient_penalty_weight: float = field(default=10.0, metadata={"help": "WGAN-GP: the penalty weight lambda."})
    label_smoothing: float = field(
        default=0.0, metadata={"help": "BCE: one-sided label smoothing; real targets become 1 - s (e.g. 0.1)."}
    )
    instance_noise: float = field(
        default=0.0,
        metadata={"help": "Std of Gaussian noise added to real and fake critic inputs, annealed linearly to 0."},
    )
    label_flip_prob: float = field(
        default=0.0, metadata={"help": "BCE: probability of swapping a sample's real/fake target (e.g. 0.05)."}
    )
    mode_seeking_weight: float = field(
        default=0.0,
        metadata={
            "help": "Mode-seeking regulariser weight (Mao et al. 2019, MSGAN; the paper's 1.0): keeps a conditional "
            "generator from ignoring z. 0: off."
        },
    )

    def __post_init__(self):
        if self.gan_loss is not None and self.gan_loss not in GAN_LOSSES:
            raise ValueError(f"--gan_loss {self.gan_loss!r} is unknown; choose {', '.join(GAN_LOSSES)}")
        if self.latent_dim < 1 or self.generator_channels < 1 or self.critic_channels < 1:
            raise ValueError("--latent_dim, --generator_channels and --critic_channels must be positive")
        if self.n_critic is not None and self.n_critic < 1:
            raise ValueError(f"--n_critic must be at least 1, got {self.n_critic}")
        if self.clip_value <= 0 or self.gradient_penalty_weight < 0:
            raise ValueError("--clip_value must be > 0 and --gradient_penalty_weight >= 0")
        if not 0 <= self.label_smoothing < 0.5 or not 0 <= self.label_flip_prob < 0.5:
            raise ValueError("--label_smoothing and --label_flip_prob must be in [0, 0.5)")
        if self.instance_noise < 0:
            raise ValueError(f"--instance_noise must be >= 0, got {self.instance_noise}")
        if not self.mode_seeking_weight >= 0:
            raise ValueError(f"--mode_seeking_weight must be >= 0 (1.0 in the paper), got {self.mode_seeking_weight}")


def gradient_penalty(
    critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP's penalty E[(‖∇ₓ D(x̂)‖₂ - 1)²] on x̂ = ε x + (1 - ε) x̃, ε ~ U[0, 1] per sample (Gulrajani et al.
    2017, Algorithm 1, lines 6-7).

    Args:
        critic: maps `(B, C, H, W)` to `(B,)` scores.
        real, fake (`torch.Tensor` of shape `(B, C, H, W)`): real and generated images.
        generator (`torch.Generator`, *optional*): the randomness of ε.

    Returns:
        ``(penalty, gradient_norms)``: the scalar penalty (differentiable w.r.t. the critic, without λ) and the
        `(B,)` gradient norms.
    """
    epsilon = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real)
    interpolates = (epsilon * real.detach() + (1 - epsilon) * fake.detach()).requires_grad_(True)
    scores = critic(interpolates)
    (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    norms = gradients.flatten(1).norm(2, dim=1)
    return (norms - 1).pow(2).mean(), norms


def mode_seeking_ratio(images: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """MSGAN's ratio mean |G(z1) - G(z2)| / mean |z1 - z2| (Mao et al. 2019, Eq. 3) between the first and second
    half of a generator batch: ``images`` `(2n[+1], C, H, W)` made from ``latents`` `(2n[+1], latent_dim)` (an odd last
    row is left out). The generator's regulariser is λ / (ratio + 1e-5): it is large when different z give the same
    image.

    Raises:
        ValueError: fewer than 2 images.
    """
    half = images.shape[0] // 2
    if half < 1:
        raise ValueError("the mode-seeking regulariser needs a generator batch of at least 2 images")
    image_distance = (images[:half] - images[half : 2 * half]).abs().mean()
    latent_distance = (latents[:half] - latents[half : 2 * half]).abs().mean()
    return image_distance / latent_distance


def clip_parameters_(model: torch.nn.Module, clip_value: float) -> None:
    """WGAN weight clipping: clamp every parameter of ``model`` to [-clip_value, clip_value] in place."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.clamp_(-clip_value, clip_value)


class GANObjective(Objective):
    """DCGAN networks trained with the loss named by ``--gan_loss`` (see the module docstring)."""

    name = "gan"
    preset_loss = "bce"
    arguments_class = GANArguments
    defaults: dict = {}
    model_card_template = "gan.md"
    ema_model = "generator"
    supports_class_conditional = True
    tags = ("gan", "dcgan", "unconditional-image-generation")

    # ------------------------------------------------------------ configuration
    def resolve_defaults(self, data_args, training_args, model_args) -> None:
        args = model_args
        if args.gan_loss is None:
            args.gan_loss = self.preset_loss
        elif self.name != "gan" and args.gan_loss != self.preset_loss:
            raise ConfigurationError(
                f"`hfgen train {self.name}` trains --gan_loss {self.preset_loss}; for --gan_loss {args.gan_loss} run "
                f"`hfgen train {'dcgan' if args.gan_loss == 'bce' else args.gan_loss}`"
            )
        loss = args.gan_loss
        if args.n_critic is None:
            args.n_critic = LOSS_DEFAULTS[loss]["n_critic"]
        if args.critic_batch_norm is None:
            args.critic_batch_norm = loss != "wgan-gp"
        if loss == "wgan-gp" and args.critic_batch_norm:
            raise ConfigurationError(
                "--critic_batch_norm cannot be used with wgan-gp: the gradient penalty is per sample and batch norm "
                "mixes the samples of a batch (Gulrajani et al. 2017, Sec. 4); drop --critic_batch_norm"
            )
        if loss != "bce" and (args.label_smoothing or args.label_flip_prob):
            raise ConfigurationError(
                f"--label_smoothing and --label_flip_prob apply to the bce (DCGAN) loss only, not {loss}"
            )
        if args.mode_seeking_weight and training_args.train_batch_size < 2:
            raise ConfigurationError(
                "--mode_seeking_weight compares pairs of images in a generator batch: use --train_batch_size 2 or more"
            )
        self.defaults = {
            "max_train_steps": 2000,
            **COMMON_DEFAULTS,
            **{k: v for k, v in LOSS_DEFAULTS[loss].items() if k != "n_critic"},
        }
        super().resolve_defaults(data_args, training_args, model_args)

    # state: `context` (set by build_models); `args` and `loss` read it
    @property
    def args(self) -> GANArguments:
        """The run's GAN flags (``context.model_args``; available once `build_models` has run)."""
        return self.context.model_args

    @property
    def loss(self) -> str:
        """``bce`` (DCGAN), ``wgan`` or ``wgan-gp`` (``--gan_loss``)."""
        return self.args.gan_loss

    @property
    def critic_phase(self) -> str:
        return "discriminator" if self.loss == "bce" else "critic"

    def configure(self, resolution, num_channels, model_args):
        from hfgen.models.resolution import gan_layout

        try:
            gan_layout(resolution)
        except ValueError as err:
            raise ConfigurationError(f"{err} (set with --resolution)") from None

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        from hfgen.models.gan import DCGANDiscriminator, DCGANGenerator

        args = context.model_args
        self.context = context
        try:
            generator = DCGANGenerator(
                sample_size=context.resolution,
                out_channels=context.num_channels,
                latent_dim=args.latent_dim,
                base_channels=args.generator_channels,
                num_classes=context.num_classes,
            )
            critic = DCGANDiscriminator(
                sample_size=context.resolution,
                in_channels=context.num_channels,
                base_channels=args.critic_channels,
                use_batch_norm=args.critic_batch_norm,
                num_classes=context.num_classes,
            )
        except ValueError as err:
            raise ConfigurationError(f"{err} (set with --resolution)") from None
        return {"generator": generator, "critic": critic}

    def create_optimizers(self, models, context) -> list:
        """``[critic optimiser, generator optimiser]``: RMSProp for wgan, Adam for bce and wgan-gp."""
        args = context.training_args

        def make(model):
            if self.loss == "wgan":
                return torch.optim.RMSprop(model.parameters(), lr=args.learning_rate)
            return torch.optim.Adam(
                model.parameters(),
                lr=args.learning_rate,
                betas=(args.adam_beta1, args.adam_beta2),
                eps=args.adam_epsilon,
                weight_decay=args.adam_weight_decay,
            )

        return [make(models["critic"]), make(models["generator"])]

    def updates(self, context: TrainingContext) -> list[Update]:
        """``n_critic`` critic (discriminator) updates with optimiser 0, then one generator update with optimiser 1."""
        args = context.model_args
        critic = "discriminator" if args.gan_loss == "bce" else "critic"
        return [Update(critic, 0)] * args.n_critic + [Update("generator", 1)]

    # -------------------------------------------------------------------- step
    def _noise_std(self, step: int) -> float:
        """Instance noise at optimiser step ``step``: ``--instance_noise`` decayed linearly to 0 at the last step."""
        total = max(1, self.context.training_args.max_train_steps)
        return self.args.instance_noise * max(0.0, 1.0 - step / total)

    def _with_instance_noise(self, images: torch.Tensor, generator: torch.Generator, step: int) -> torch.Tensor:
        std = self._noise_std(step)
        if std == 0:
            return images
        return images + std * torch.randn(images.shape, generator=generator).to(images)

    def compute_loss(self, models, images, generator, phase="model", step=0, class_labels=None):
        """One critic or generator loss. In a ``--class_conditional`` run the fakes are generated with the real
        batch's labels (so both see the data's class frequencies) and the projection critic scores every image
        with its label (Miyato & Koyama 2018); the gradient penalty differentiates D(., y) per sample."""
        netG, critic = models["generator"], models["critic"]
        extra = {} if class_labels is None else {"class_labels": class_labels}

        def netD(x):
            return critic(x, **extra)

        batch = images.shape[0]
        z = torch.randn(batch, self.args.latent_dim, generator=generator).to(images)
        if phase == "generator":
            return self._generator_loss(netG, critic, z, class_labels, generator, step)
        with torch.no_grad():
            fake = netG(z, **extra).sample
        real_scores = netD(self._with_instance_noise(images, generator, step))
        fake_scores = netD(self._with_instance_noise(fake, generator, step))
        if self.loss == "bce":
            real_targets = torch.full_like(real_scores, 1.0 - self.args.label_smoothing)
            fake_targets = torch.zeros_like(fake_scores)
            if self.args.label_flip_prob:
                flip_real = (torch.rand(batch, generator=generator) < self.args.label_flip_prob).to(images.device)
                flip_fake = (torch.rand(batch, generator=generator) < self.args.label_flip_prob).to(images.device)
                real_targets = torch.where(flip_real, torch.zeros_like(real_targets), real_targets)
                fake_targets = torch.where(flip_fake, torch.ones_like(fake_targets), fake_targets)
            loss = F.binary_cross_entropy_with_logits(real_scores, real_targets) + F.binary_cross_entropy_with_logits(
                fake_scores, fake_targets
            )
            logs = {
                "discriminator_accuracy_real": (real_scores > 0).float().mean().item(),
                "discriminator_accuracy_fake": (fake_scores < 0).float().mean().item(),
            }
            if self.args.instance_noise:
                logs["instance_noise_std"] = self._noise_std(step)
            return loss, logs
        wasserstein = real_scores.mean() - fake_scores.mean()
        loss = -wasserstein
        logs = {"wasserstein_estimate": wasserstein.item()}
        if self.loss == "wgan-gp":
            penalty, norms = gradient_penalty(netD, images, fake, generator)
            loss = loss + self.args.gradient_penalty_weight * penalty
            logs.update(gradient_penalty=penalty.item(), critic_gradient_norm=norms.mean().item())
        return loss, logs

    def _generator_loss(self, netG, critic, z, class_labels, generator, step):
        """The generator's loss on fakes from ``z``: non-saturating -log D(G(z)) (bce) or -D(G(z)) (WGANs), plus
        ``--mode_seeking_weight`` λ / (`mode_seeking_ratio` + 1e-5), for which the second half of the batch takes the
        first half's labels (pairs of z with the same class)."""
        weight, half = self.args.mode_seeking_weight, z.shape[0] // 2
        if weight and class_labels is not None and half:
            class_labels = class_labels.clone()
            class_labels[half : 2 * half] = class_labels[:half]
        extra = {} if class_labels is None else {"class_labels": class_labels}
        fake = netG(z, **extra).sample
        scores = critic(self._with_instance_noise(fake, generator, step), **extra)
        if self.loss == "bce":  # non-saturating: maximise log D(G(z))
            loss = F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        else:
            loss = -scores.mean()
        if not (weight and half):
            return loss, {}
        ratio = mode_seeking_ratio(fake, z)
        logs = {"generator_adversarial_loss": loss.item(), "mode_seeking_ratio": ratio.item()}
        return loss + weight / (ratio + 1e-5), logs

    def after_update(self, models, phase) -> None:
        if self.loss == "wgan" and phase == "critic":
            clip_parameters_(models["critic"], self.args.clip_value)

    # ----------------------------------------------------------------- outputs
    def build_pipeline(self, models):
        from hfgen.pipelines.pipeline_gan import GANPipeline

        id2label = self.context.id2label if self.context is not None else None
        return GANPipeline(generator=models["generator"], critic=models["critic"], id2label=id2label)

    def model_card_context(self, context: TrainingContext) -> dict:
        args = context.training_args
        optimiser = (
            f"RMSProp (lr {args.learning_rate:g})"
            if self.loss == "wgan"
            else f"Adam (lr {args.learning_rate:g}, betas ({args.adam_beta1:g}, {args.adam_beta2:g}))"
        )
        titles = {
            "bce": "DCGAN (Radford et al. 2016, non-saturating loss)",
            "wgan": "WGAN (Arjovsky et al. 2017, weight clipping)",
            "wgan-gp": "WGAN-GP (Gulrajani et al. 2017, gradient penalty)",
        }
        return {"gan_title": titles[self.loss], "optimiser": optimiser, "critic_name": self.critic_phase}

    def write_figures(self, output_dir: str, history: dict, eval_history: dict) -> None:
        from hfgen.plotting import plot_gan_training_curves

        plot_gan_training_curves(
            history, eval_history, os.path.join(output_dir, "figures", "training_curves.png"), title=self.name
        )


class DCGANObjective(GANObjective):
    name = "dcgan"
    preset_loss = "bce"


class WGANObjective(GANObjective):
    name = "wgan"
    preset_loss = "wgan"
    tags = ("gan", "wgan", "unconditional-image-generation")


class WGANGPObjective(GANObjective):
    name = "wgan-gp"
    preset_loss = "wgan-gp"
    tags = ("gan", "wgan-gp", "unconditional-image-generation")
