"""The `UNet2DModel` flags and config shared by the diffusion-style families (DDPM, NCSN): one home, imported by both
objectives (no private cross-imports)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hfgen.errors import ConfigurationError
from hfgen.output_folder.layout import read_json_object


@dataclass
class UNetArguments:
    """The `UNet2DModel` flags shared by the diffusion-style families (DDPM, NCSN)."""

    model_config_name_or_path: str | None = field(
        default=None, metadata={"help": "A UNet2DModel config.json (or a folder holding one) instead of the flags."}
    )
    block_out_channels: list[int] | None = field(
        default=None,
        metadata={
            "help": "UNet channels per resolution level. Default by resolution: 32 64 64 (up to 32 pixels), "
            "32 64 64 128 (64 and up)."
        },
    )
    layers_per_block: int = field(default=1, metadata={"help": "ResNet layers per UNet block."})
    attention_levels: list[str] | None = field(
        default=None,
        metadata={
            "help": "Indices of the UNet levels that get self-attention, or 'none' (the mid block has its own: "
            "--add_attention). Default: the first level below the input with at most 16x16 pixels."
        },
    )
    add_attention: bool = field(
        default=True,
        metadata={
            "help": "Self-attention in the UNet's mid block (diffusers' UNet2DModel add_attention). 'false' drops "
            "it: with bf16 on a CPU the MNIST recipe's UNet then trains 1.3x faster and scored better at the same "
            "step count (see the README)."
        },
    )
    norm_num_groups: int = field(default=8, metadata={"help": "GroupNorm groups in the UNet."})

    def __post_init__(self):
        if self.block_out_channels is not None and (
            not self.block_out_channels or any(c <= 0 or c % self.norm_num_groups for c in self.block_out_channels)
        ):
            raise ValueError(
                f"--block_out_channels {self.block_out_channels} must be positive multiples of "
                f"--norm_num_groups {self.norm_num_groups}"
            )
        if self.attention_levels is not None:
            levels = [str(level).lower() for level in self.attention_levels]
            if levels == ["none"] or not levels:
                self.attention_levels = []
            elif all(level.lstrip("-").isdigit() for level in levels):
                self.attention_levels = [int(level) for level in levels]
            else:
                raise ValueError(f"--attention_levels takes level indices or 'none', got {self.attention_levels}")
        if self.block_out_channels is not None and self.attention_levels is not None:
            check_attention_levels(self)
        if self.model_config_name_or_path is not None:
            read_unet_config(self.model_config_name_or_path)  # a missing or garbage config is refused when parsed


def read_unet_config(path: str) -> dict:
    """The `UNet2DModel` config in ``path`` (a ``config.json`` or a folder holding one), without ``_``-keys.

    Raises:
        ValueError: a missing file, or one that is not a JSON object with ``block_out_channels`` (named, with the fix).
    """
    flag = f"--model_config_name_or_path {path}"
    if not os.path.exists(path):
        raise ValueError(f"{flag} does not exist")
    file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        config = read_json_object(file)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{flag}: {file} is not a readable JSON config ({err}); pass a UNet2DModel config.json"
        ) from None
    if "block_out_channels" not in config:
        raise ValueError(f"{flag}: {file} is not a UNet2DModel config (no block_out_channels); pass a UNet2DModel "
                         "config.json")  # fmt: skip
    return {k: v for k, v in config.items() if not k.startswith("_")}


def check_attention_levels(args: UNetArguments) -> None:
    """Raise ValueError unless every ``--attention_levels`` entry indexes ``--block_out_channels``."""
    if any(not 0 <= i < len(args.block_out_channels) for i in args.attention_levels):
        raise ValueError(
            f"--attention_levels {args.attention_levels} must index --block_out_channels {args.block_out_channels}"
        )


def configure_unet(args: UNetArguments, resolution: int) -> None:
    """Fill ``--block_out_channels`` / ``--attention_levels`` left unset with the defaults for ``resolution``
    (`hfgen.models.resolution.default_unet_levels`) and check that the UNet can halve the resolution.

    Raises:
        ConfigurationError: for a resolution the UNet cannot handle (naming the valid ones) or attention levels
            that do not index the levels.
    """
    from hfgen.models.resolution import check_unet_resolution, default_unet_levels

    channels, attention = default_unet_levels(resolution)
    if args.block_out_channels is None:
        args.block_out_channels = channels
        if args.attention_levels is None:
            args.attention_levels = attention
    if args.attention_levels is None:  # the user's own levels: attention as in the defaults where it fits
        args.attention_levels = [i for i in attention if i < len(args.block_out_channels)]
    try:
        check_attention_levels(args)
        if args.model_config_name_or_path is None:
            check_unet_resolution(resolution, len(args.block_out_channels))
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


def unet_config_from_args(
    args: UNetArguments, resolution: int, num_channels: int, num_classes: int | None = None
) -> dict:
    """The `UNet2DModel` config for ``args`` (or the one read from ``--model_config_name_or_path``).

    ``sample_size``, ``in_channels`` and ``out_channels`` always follow the data. ``num_classes`` C (a
    ``--class_conditional`` run) sets ``num_class_embeds = C + 1``: the extra class C is "no label", trained by label
    dropout and used by classifier-free guidance.

    Raises:
        ConfigurationError: when the resolution cannot be halved once per UNet level.
    """
    from hfgen.models.resolution import check_unet_resolution

    configure_unet(args, resolution)
    if args.model_config_name_or_path is not None:
        config = read_unet_config(args.model_config_name_or_path)
    else:
        levels = len(args.block_out_channels)
        down = ["AttnDownBlock2D" if i in args.attention_levels else "DownBlock2D" for i in range(levels)]
        up = [b.replace("Down", "Up") for b in reversed(down)]
        config = {
            "layers_per_block": args.layers_per_block,
            "block_out_channels": list(args.block_out_channels),
            "down_block_types": down,
            "up_block_types": up,
            "norm_num_groups": args.norm_num_groups,
            "add_attention": args.add_attention,
        }
    try:
        check_unet_resolution(resolution, len(config.get("block_out_channels", [1, 1, 1, 1])))
    except ValueError as err:
        raise ConfigurationError(str(err)) from None
    config.update(sample_size=resolution, in_channels=num_channels, out_channels=num_channels)
    if num_classes:
        config.update(num_class_embeds=num_classes + 1)
    return config


__all__ = ["UNetArguments", "check_attention_levels", "configure_unet", "read_unet_config", "unet_config_from_args"]
