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

from hfgen.comparison import compare  # noqa: E402
from hfgen.data.images import load_image_dataset, open_image_source  # noqa: E402
from hfgen.errors import CheckpointError, DatasetError, HfgenError, TrainingDivergedError, UnknownNameError  # noqa: E402
from hfgen.models import AutoencoderModel, DCGANDiscriminator, DCGANGenerator, RealNVPModel, VAEModel  # noqa: E402
from hfgen.pipelines import (  # noqa: E402
    AnnealedLangevinPipeline,
    AutoencoderPipeline,
    FlowPipeline,
    GANPipeline,
    UnconditionalDiffusionPipeline,
    VAEPipeline,
    load_pipeline,
    make_scheduler,
)
from hfgen.schedulers import AnnealedLangevinScheduler  # noqa: E402
from hfgen.training import train  # noqa: E402

__all__ = [
    "AnnealedLangevinPipeline",
    "AnnealedLangevinScheduler",
    "AutoencoderModel",
    "AutoencoderPipeline",
    "CheckpointError",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DatasetError",
    "FlowPipeline",
    "GANPipeline",
    "HfgenError",
    "TrainingDivergedError",
    "UnconditionalDiffusionPipeline",
    "RealNVPModel",
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
]
