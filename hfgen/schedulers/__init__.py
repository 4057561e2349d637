"""Schedulers that diffusers does not ship: `AnnealedLangevinScheduler` (NCSN's annealed Langevin dynamics)."""

from hfgen.schedulers.scheduling_annealed_langevin import AnnealedLangevinScheduler, AnnealedLangevinSchedulerOutput

__all__ = ["AnnealedLangevinScheduler", "AnnealedLangevinSchedulerOutput"]
