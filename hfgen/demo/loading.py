"""`load_demo_model`: the right tab for a folder."""

from __future__ import annotations

import os

from hfgen.demo.common import DemoModel
from hfgen.errors import HfgenError


def load_demo_model(folder: str) -> DemoModel:
    """Load ``folder`` (an hfgen output folder or Hub id, or a VQA adapter folder) as the right `DemoModel`.

    Raises:
        CheckpointError: not a trained folder (see `hfgen.load_pipeline`).
        HfgenError: a folder whose family the demo does not show (the plain autoencoder samples nothing but is shown
            with its sliders and morph).
    """
    from hfgen.demo.diffusion import DiffusionDemo
    from hfgen.demo.flow import FlowDemo
    from hfgen.demo.gan import GANDemo
    from hfgen.demo.latent import LatentDemo
    from hfgen.pipelines import AutoencoderPipeline, FlowPipeline, GANPipeline, load_pipeline

    if os.path.isfile(os.path.join(folder, "adapter_config.json")):
        from hfgen.demo.vqa import VQADemo

        return VQADemo(folder)
    pipeline = load_pipeline(folder)
    if isinstance(pipeline, AutoencoderPipeline):
        return LatentDemo(folder, pipeline)
    if isinstance(pipeline, GANPipeline):
        return GANDemo(folder, pipeline)
    if isinstance(pipeline, FlowPipeline):
        return FlowDemo(folder, pipeline)
    if hasattr(pipeline, "unet") and hasattr(pipeline, "scheduler"):
        return DiffusionDemo(folder, pipeline)
    raise HfgenError(f"{folder} holds a {type(pipeline).__name__}, which hfgen demo does not show")
