"""Model families. DDPM uses diffusers' own `UNet2DModel`; later families add one file each here."""
