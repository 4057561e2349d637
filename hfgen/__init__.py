"""hfgen: the classic deep generative models as Hugging Face citizens.

Public API:
    - `train(model, **flags)`: the one training loop (`hfgen train MODEL` in Python).
    - `compare(models=..., budget_minutes=...)`: every family on the same data and budget, measured side by side
      (`hfgen compare`).
    - `load_pipeline(path_or_repo_id)`: the right pipeline for any hfgen output folder.
    - `load_image_dataset(...)`: digits (default), image folders, .npy arrays, save_to_disk folders, Hub data sets;
      `open_image_source(...)`: the same with fixed train/held-out parts and attribute labels, decoded on demand.
    - `make_scheduler(name, config)`, `UnconditionalDiffusionPipeline`: sample with any diffusers scheduler.
    - models and pipelines of hfgen's own families: `VAEModel` + `VAEPipeline`, `AutoencoderModel` +
      `AutoencoderPipeline`, `DCGANGenerator` + `DCGANDiscriminator` + `GANPipeline`, `RealNVPModel` +
      `FlowPipeline`, and NCSN's `AnnealedLangevinScheduler` + `AnnealedLangevinPipeline` (with a `UNet2DModel`).
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

# public name -> module defining it. Imported on first use (PEP 562), as diffusers' and transformers' `_LazyModule`
# do, so that `hfgen --help`, `hfgen --version` and `import hfgen` do not import torch.
_EXPORTS = {
    "compare": "hfgen.jobs.compare",
    "load_image_dataset": "hfgen.data.images.formats",
    "open_image_source": "hfgen.data.images.source",
    "CheckpointError": "hfgen.errors",
    "DatasetError": "hfgen.errors",
    "HfgenError": "hfgen.errors",
    "TrainingDivergedError": "hfgen.errors",
    "UnknownNameError": "hfgen.errors",
    "AutoencoderModel": "hfgen.models",
    "DCGANDiscriminator": "hfgen.models",
    "DCGANGenerator": "hfgen.models",
    "RealNVPModel": "hfgen.models",
    "VAEModel": "hfgen.models",
    "AnnealedLangevinPipeline": "hfgen.pipelines",
    "AutoencoderPipeline": "hfgen.pipelines",
    "ClassConditionalDiffusionPipeline": "hfgen.pipelines",
    "FlowPipeline": "hfgen.pipelines",
    "GANPipeline": "hfgen.pipelines",
    "UnconditionalDiffusionPipeline": "hfgen.pipelines",
    "VAEPipeline": "hfgen.pipelines",
    "load_pipeline": "hfgen.pipelines",
    "make_scheduler": "hfgen.pipelines",
    "AnnealedLangevinScheduler": "hfgen.schedulers",
    "train": "hfgen.training",
}

__all__ = [
    "AnnealedLangevinPipeline",
    "AnnealedLangevinScheduler",
    "AutoencoderModel",
    "AutoencoderPipeline",
    "ClassConditionalDiffusionPipeline",
    "CheckpointError",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DatasetError",
    "FlowPipeline",
    "GANPipeline",
    "HfgenError",
    "RealNVPModel",
    "TrainingDivergedError",
    "UnconditionalDiffusionPipeline",
    "UnknownNameError",
    "VAEModel",
    "VAEPipeline",
    "__version__",
    "compare",
    "load_image_dataset",
    "load_pipeline",
    "make_scheduler",
    "open_image_source",
    "train",
]  # the keys of _EXPORTS and __version__ (a test checks it)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hfgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from hfgen.data.images.formats import load_image_dataset
    from hfgen.data.images.source import open_image_source
    from hfgen.errors import CheckpointError, DatasetError, HfgenError, TrainingDivergedError, UnknownNameError
    from hfgen.jobs.compare import compare
    from hfgen.models import AutoencoderModel, DCGANDiscriminator, DCGANGenerator, RealNVPModel, VAEModel
    from hfgen.pipelines import (
        AnnealedLangevinPipeline,
        AutoencoderPipeline,
        FlowPipeline,
        GANPipeline,
        UnconditionalDiffusionPipeline,
        VAEPipeline,
        load_pipeline,
        make_scheduler,
    )
    from hfgen.schedulers import AnnealedLangevinScheduler
    from hfgen.training import train
