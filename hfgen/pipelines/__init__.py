"""Pipelines: `load_pipeline` for any hfgen folder, scheduler swapping for diffusion pipelines, and hfgen's own
pipelines (`VAEPipeline`, `AutoencoderPipeline`, `GANPipeline`, `FlowPipeline`, `AnnealedLangevinPipeline`,
`ClassConditionalDiffusionPipeline`)."""

from hfgen.pipelines.loading import load_pipeline
from hfgen.pipelines.pipeline_autoencoder import AutoencoderPipeline
from hfgen.pipelines.pipeline_class_conditional import ClassConditionalDiffusionPipeline
from hfgen.pipelines.pipeline_flow import FlowPipeline
from hfgen.pipelines.pipeline_gan import GANPipeline
from hfgen.pipelines.pipeline_langevin import AnnealedLangevinPipeline, AnnealedLangevinPipelineOutput
from hfgen.pipelines.pipeline_vae import VAEPipeline
from hfgen.pipelines.scheduling import UnconditionalDiffusionPipeline, make_scheduler, scheduler_names

__all__ = [
    "AnnealedLangevinPipeline",
    "AnnealedLangevinPipelineOutput",
    "AutoencoderPipeline",
    "ClassConditionalDiffusionPipeline",
    "FlowPipeline",
    "GANPipeline",
    "UnconditionalDiffusionPipeline",
    "VAEPipeline",
    "load_pipeline",
    "make_scheduler",
    "scheduler_names",
]
