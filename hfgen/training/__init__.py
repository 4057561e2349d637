"""The one training loop (`trainer.train`), its arguments and the per-family objectives."""

from hfgen.training.arguments import DataArguments, TrainingArguments
from hfgen.training.trainer import TrainingResult, train

__all__ = ["DataArguments", "TrainingArguments", "TrainingResult", "train"]
