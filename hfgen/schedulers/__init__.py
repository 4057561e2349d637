"""Schedulers that diffusers does not ship (annealed Langevin dynamics for NCSN arrives with its issue)."""
