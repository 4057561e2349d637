"""The model families by name: a static table, importable without torch (``hfgen --help`` lists it instantly).

`hfgen.training.objectives.get_objective` imports the objective class named here only when it is asked for.
"""

from __future__ import annotations

# model name -> (module, class). Later families add a line here.
OBJECTIVES: dict[str, tuple[str, str]] = {
    "ddpm": ("hfgen.training.objectives.ddpm", "DDPMObjective"),
    "vae": ("hfgen.training.objectives.vae", "VAEObjective"),
    "autoencoder": ("hfgen.training.objectives.autoencoder", "AutoencoderObjective"),
    "dcgan": ("hfgen.training.objectives.gan", "DCGANObjective"),
    "wgan": ("hfgen.training.objectives.gan", "WGANObjective"),
    "wgan-gp": ("hfgen.training.objectives.gan", "WGANGPObjective"),
    "gan": ("hfgen.training.objectives.gan", "GANObjective"),
    "realnvp": ("hfgen.training.objectives.flow", "RealNVPObjective"),
    "ncsn": ("hfgen.training.objectives.ncsn", "NCSNObjective"),
}

__all__ = ["OBJECTIVES"]
