"""Which image sizes each network handles, and the family defaults that depend on the size.

Every family trains at 16x16 (the digits), 28x28 (MNIST), 32x32 (CIFAR-10) and 64x64 (CelebA crops), and at any
other size its layers can halve. The defaults below are what ``hfgen train`` picks when a flag is left unset (the
README has the same table):

| resolution | UNet (DDPM, NCSN) levels, attention | autoencoder / VAE levels | DCGAN / WGAN layout | Real NVP scales |
|---|---|---|---|---|
| 16 | 32 64 64, attention at 8x8 | 32 64 (16 -> 4) | 4 -> 8 -> 16 | 2 |
| 28 | 32 64 64, attention at 14x14 | 32 64 (28 -> 7) | 7 -> 14 -> 28 | 2 |
| 32 | 32 64 64, attention at 16x16 | 32 64 128 (32 -> 4) | 4 -> ... -> 32 | 2 |
| 64 | 32 64 64 128, attention at 16x16 | 32 64 128 256 (64 -> 4) | 4 -> ... -> 64 (the DCGAN paper's) | 3 |
"""

from __future__ import annotations

EXAMPLE_SIZES = (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96, 128)


def valid_sizes(check, sizes=EXAMPLE_SIZES) -> str:
    """The sizes of ``sizes`` that ``check(size)`` accepts (returns True), as ``"16, 28, 32, ..."``."""
    return ", ".join(str(s) for s in sizes if check(s))


def halvings(resolution: int, smallest: int = 4, most: int = 4) -> int:
    """How many times ``resolution`` can be halved exactly while staying >= ``smallest`` (at most ``most``)."""
    count = 0
    while count < most and resolution % 2 == 0 and resolution // 2 >= smallest:
        resolution //= 2
        count += 1
    return count


def default_unet_levels(resolution: int) -> tuple[list[int], list[int]]:
    """``(block_out_channels, attention_levels)`` of the default `UNet2DModel` for ``resolution``: three levels
    (four from 64 pixels on), self-attention at the first level below the input size with at most 16x16 pixels
    (CPU-sized: 16 -> 8x8, 28 -> 14x14, 32 -> 16x16, 64 -> 16x16)."""
    channels = [32, 64, 64, 128] if resolution >= 64 else [32, 64, 64]
    sizes = [resolution / 2**i for i in range(len(channels))]
    attention = next((i for i, size in enumerate(sizes) if i >= 1 and size <= 16), len(channels) - 1)
    return channels, [attention]


def check_unet_resolution(resolution: int, levels: int) -> None:
    """Raise ValueError unless a UNet with ``levels`` levels can halve ``resolution`` ``levels - 1`` times; the message
    names the valid sizes."""
    divisor = 2 ** (levels - 1)
    if resolution % divisor:
        raise ValueError(
            f"--resolution {resolution} cannot be halved {levels - 1} times by a UNet with {levels} levels "
            f"(--block_out_channels); valid resolutions are multiples of {divisor}: "
            f"{valid_sizes(lambda s: s % divisor == 0)}, ... (or change the number of levels)"
        )


def default_conv_levels(resolution: int) -> list[int]:
    """The default ``block_out_channels`` of the autoencoder/VAE encoder and decoder: one level per halving down to
    a 4x4 to 7x7 map (16 and 28: 2 levels, 32: 3, 64: 4), widths 32, 64, 128, 256."""
    return [32, 64, 128, 256][: max(1, halvings(resolution))]


def check_conv_resolution(resolution: int, levels: int) -> None:
    """Raise ValueError unless ``resolution`` is divisible by ``2**levels``; the message names the valid sizes."""
    divisor = 2**levels
    if resolution % divisor or resolution < divisor:
        raise ValueError(
            f"--resolution {resolution} cannot be halved {levels} times (one per --block_out_channels entry); "
            f"valid resolutions are multiples of {divisor}: {valid_sizes(lambda s: s % divisor == 0)}, ... "
            "(or change the number of levels)"
        )


def gan_layout(sample_size: int) -> tuple[int, int]:
    """``(base, levels)`` with ``sample_size = base * 2**levels``, 4 <= base <= 7 and levels >= 1: the generator
    projects z to ``base x base`` and doubles ``levels`` times (28 = 7 * 2^2, MNIST's classic layout; 64 = 4 * 2^4,
    the DCGAN paper's).

    Raises:
        ValueError: for a size with no such layout; the message names the valid sizes.
    """
    base, levels = sample_size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base //= 2
        levels += 1
    if levels < 1 or not 4 <= base <= 7:
        raise ValueError(
            f"sample_size {sample_size} must be b * 2^k with 4 <= b <= 7 and k >= 1; valid resolutions: "
            f"{valid_sizes(_gan_ok)}, ..."
        )
    return base, levels


def _gan_ok(size: int) -> bool:
    try:
        gan_layout(size)
    except ValueError:
        return False
    return True


def default_flow_scales(resolution: int) -> int:
    """Real NVP's default number of scales: 3 from 64 pixels on, else 2 (at most the halvings the size allows)."""
    return min(3 if resolution >= 64 else 2, halvings(resolution, smallest=1))


def check_flow_resolution(resolution: int, num_scales: int) -> None:
    """Raise ValueError unless ``resolution`` is divisible by ``2**num_scales``; the message names the valid sizes."""
    divisor = 2**num_scales
    if resolution % divisor:
        raise ValueError(
            f"--resolution {resolution} cannot be squeezed {num_scales} times (--num_scales {num_scales}); valid "
            f"resolutions are multiples of {divisor}: {valid_sizes(lambda s: s % divisor == 0)}, ... "
            "(or lower --num_scales)"
        )


__all__ = [
    "check_conv_resolution",
    "check_flow_resolution",
    "check_unet_resolution",
    "default_conv_levels",
    "default_flow_scales",
    "default_unet_levels",
    "gan_layout",
    "halvings",
    "valid_sizes",
]
