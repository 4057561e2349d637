"""Figures: a long title is wrapped to the figure's width instead of running off both edges."""

import numpy as np
import torch
from PIL import Image

from hfgen.plotting import plot_image_rows


def test_a_long_title_wraps_and_the_figure_grows_to_hold_it(tmp_path):
    images = torch.zeros(16, 1, 28, 28)
    short = plot_image_rows(images, 8, str(tmp_path / "short.png"), title="one row per class")
    long = plot_image_rows(
        images, 8, str(tmp_path / "long.png"), title="a conditional GAN with a long name, one row per class " * 3
    )
    with Image.open(short) as a, Image.open(long) as b:
        assert a.size[0] == b.size[0]  # the same width
        assert b.size[1] > a.size[1]  # taller: the title takes several lines
        # the top row of pixels above the images holds title text, and the text stays inside the figure: its
        # left- and right-most columns are background
        grey = np.asarray(b.convert("L"))
        top = grey[: b.size[1] // 8]
        ink = (top < 128).any(axis=0).nonzero()[0]
        assert len(ink) > 0 and ink.min() > 2 and ink.max() < b.size[0] - 3
