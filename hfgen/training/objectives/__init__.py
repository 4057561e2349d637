"""Model families plug into the one training loop through an `Objective` (see `base.py`).

`get_objective(name)` returns a fresh objective for a model name; `OBJECTIVES` lists the valid names.
"""

from __future__ import annotations

import importlib

from hfgen.errors import UnknownNameError
from hfgen.families import OBJECTIVES
from hfgen.training.objectives.base import Objective


def get_objective(name: str) -> Objective:
    """Instantiate the objective of model family ``name``.

    Raises:
        UnknownNameError: for an unknown name; the message lists the valid ones.
    """
    if name not in OBJECTIVES:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(sorted(OBJECTIVES))}")
    module_name, class_name = OBJECTIVES[name]
    return getattr(importlib.import_module(module_name), class_name)()


__all__ = ["OBJECTIVES", "Objective", "get_objective"]
