"""The VAE / β-VAE in the one training loop: minimise reconstruction NLL + β·KL (nats per image)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hfgen.models.vae import LIKELIHOODS
from hfgen.training.objectives.autoencoder import AutoencoderArguments, build_conv_model, configure_conv
from hfgen.training.objectives.base import Objective, TrainingContext


@dataclass
class VAEArguments(AutoencoderArguments):
    """VAE / β-VAE flags: the autoencoder's (``--latent_dim``, ``--block_out_channels``) and the ones below."""

    beta: float = field(default=1.0, metadata={"help": "Weight of the KL term (1: VAE; > 1: beta-VAE)."})
    likelihood: str = field(
        default="bernoulli", metadata={"help": f"p(x|z): {' or '.join(LIKELIHOODS)} (binary cross-entropy or MSE)."}
    )
    observation_std: float = field(
        default=0.1, metadata={"help": "Standard deviation of the Gaussian likelihood, in [-1, 1] pixel units."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.beta < 0:
            raise ValueError(f"--beta must be >= 0, got {self.beta}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"--likelihood {self.likelihood!r} is unknown; choose {', '.join(LIKELIHOODS)}")
        if self.observation_std <= 0:
            raise ValueError(f"--observation_std must be > 0, got {self.observation_std}")


class VAEObjective(Objective):
    """Negative ELBO with a β-weighted KL term (Kingma & Welling 2014; Higgins et al. 2017); logs both terms."""

    name = "vae"
    arguments_class = VAEArguments
    defaults = {"max_train_steps": 3000, "learning_rate": 1e-3}
    model_card_template = "vae.md"
    ema_model = "vae"
    loss_label = "nats per image"
    supports_class_conditional = True
    tags = ("vae", "variational-autoencoder", "unconditional-image-generation")

    def configure(self, resolution, num_channels, model_args):
        configure_conv(model_args, resolution)

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        from hfgen.models.vae import VAEModel

        args = context.model_args
        model = build_conv_model(
            VAEModel,
            context,
            likelihood=args.likelihood,
            beta=args.beta,
            observation_std=args.observation_std,
            num_classes=context.num_classes,
        )
        self.context = context
        return {"vae": model}

    def compute_loss(self, models, images, generator, phase="model", step=0, class_labels=None):
        extra = {} if class_labels is None else {"class_labels": class_labels}
        output = models["vae"](images, generator=generator, **extra)
        logs = {
            "reconstruction_loss": output.reconstruction_loss.mean().item(),
            "kl": output.kl.mean().item(),
            "negative_elbo": output.negative_elbo.mean().item(),
        }
        return output.loss, logs

    def build_pipeline(self, models):
        from hfgen.pipelines.pipeline_vae import VAEPipeline

        id2label = self.context.id2label if self.context is not None else None
        return VAEPipeline(vae=models["vae"], id2label=id2label)

    def model_card_context(self, context: TrainingContext) -> dict:
        args = context.model_args
        return {"beta_vae": args.beta != 1.0}
