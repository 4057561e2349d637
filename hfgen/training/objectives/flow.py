"""Real NVP in the one training loop: maximum likelihood (the loss is the mean bits per dimension)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hfgen.errors import ConfigurationError
from hfgen.training.objectives.base import Objective, TrainingContext


@dataclass
class FlowArguments:
    """Real NVP flags."""

    num_scales: int | None = field(
        default=None,
        metadata={
            "help": "Scales (squeeze + factor out half) before the last one. Default by resolution: 2 (up to 32 "
            "pixels), 3 (64 and up)."
        },
    )
    hidden_channels: int = field(default=64, metadata={"help": "Width of the coupling layers' s/t ResNets."})
    num_blocks: int = field(default=2, metadata={"help": "Residual blocks per s/t ResNet."})

    def __post_init__(self):
        if (self.num_scales is not None and self.num_scales < 0) or self.hidden_channels < 1 or self.num_blocks < 0:
            raise ValueError("--num_scales and --num_blocks must be >= 0 and --hidden_channels >= 1")


class RealNVPObjective(Objective):
    """Negative log-likelihood of dequantised images, reported in bits per dimension (Dinh et al. 2017)."""

    name = "realnvp"
    arguments_class = FlowArguments
    defaults = {"max_train_steps": 1500, "learning_rate": 1e-3}
    model_card_template = "flow.md"
    ema_model = "flow"
    loss_label = "bits per dimension"
    tags = ("normalizing-flow", "realnvp", "unconditional-image-generation")

    def configure(self, resolution, num_channels, model_args):
        from hfgen.models.resolution import check_flow_resolution, default_flow_scales

        if model_args.num_scales is None:
            model_args.num_scales = default_flow_scales(resolution)
        try:
            check_flow_resolution(resolution, model_args.num_scales)
        except ValueError as err:
            raise ConfigurationError(str(err)) from None

    def build_models(self, context: TrainingContext) -> dict[str, torch.nn.Module]:
        from hfgen.models.realnvp import RealNVPModel

        args = context.model_args
        self.configure(context.resolution, context.num_channels, args)
        self.held_out = None
        data = context.data_args
        if data.train_data_dir is None and data.dataset_name in (None, "digits"):
            from hfgen.data.images.decoding import images_to_tensor
            from hfgen.data.images.formats import load_image_dataset

            self.held_out, _ = images_to_tensor(
                load_image_dataset("digits", split="test"), context.resolution, context.num_channels
            )
        try:
            flow = RealNVPModel(
                sample_size=context.resolution,
                in_channels=context.num_channels,
                num_scales=args.num_scales,
                hidden_channels=args.hidden_channels,
                num_blocks=args.num_blocks,
            )
        except ValueError as err:
            raise ConfigurationError(f"{err} (set with --resolution / --num_scales)") from None
        return {"flow": flow}

    def compute_loss(self, models, images, generator, phase="model", step=0, class_labels=None):
        from hfgen.models.realnvp import nats_to_bits_per_dim, output_log_prob

        flow = models["flow"]
        nll = -output_log_prob(flow(images, generator=generator))  # one forward of the (possibly DDP-wrapped) model
        return nats_to_bits_per_dim(nll, getattr(flow, "module", flow).num_dims).mean(), {}

    def held_out_metrics(self, pipeline, generator):
        """Mean bits/dim of the held-out digits (test split) when training on digits."""
        if self.held_out is None:
            return {}
        return {"held_out_bits_per_dim": float(pipeline.bits_per_dim(self.held_out, generator=generator).mean())}

    def build_pipeline(self, models):
        from hfgen.pipelines.pipeline_flow import FlowPipeline

        return FlowPipeline(flow=models["flow"])
