"""Pipelines: `load_pipeline` for any hfgen folder, and scheduler swapping for diffusion pipelines."""

from hfgen.pipelines.loading import load_pipeline
from hfgen.pipelines.scheduling import UnconditionalDiffusionPipeline, make_scheduler, scheduler_names

__all__ = ["UnconditionalDiffusionPipeline", "load_pipeline", "make_scheduler", "scheduler_names"]
