"""CLEVR-style 2-D scenes: object placement without overlap, CLEVR's spatial relationships, rendering with PIL."""

from __future__ import annotations

import functools
import random

import numpy as np
from PIL import Image, ImageDraw

from hfgen.data.clevr.vocabulary import (
    BORDER,
    CLEVR_COLORS,
    CLEVR_SHAPES,
    CLEVR_SIZES,
    IMAGE_SIZE,
    OBJECT_GAP,
    OBJECT_PIXELS,
    RELATIONS,
    SUPERSAMPLING,
)
from hfgen.errors import ConfigurationError


def relationships_of(objects: list[dict], margin: float) -> dict[str, list[list[int]]]:
    """CLEVR's ``relationships``: ``[rel][i]`` lists the objects ``rel`` of object ``i`` by more than ``margin``."""
    out = {relation: [] for relation in RELATIONS}
    for obj in objects:
        x, y = obj["pixel_coords"][:2]
        others = [(j, other["pixel_coords"][0] - x, other["pixel_coords"][1] - y) for j, other in enumerate(objects)]
        out["left"].append([j for j, dx, _ in others if dx < -margin])
        out["right"].append([j for j, dx, _ in others if dx > margin])
        out["behind"].append([j for j, _, dy in others if dy < -margin])
        out["front"].append([j for j, _, dy in others if dy > margin])
    return out


def _separated(box: list[int], other: list[int], gap: int) -> bool:
    return box[2] + gap <= other[0] or other[2] + gap <= box[0] or box[3] + gap <= other[1] or other[3] + gap <= box[1]


def make_scene(rng: random.Random, width: int, height: int, min_objects: int, max_objects: int) -> list[dict]:
    scale = min(width / IMAGE_SIZE[0], height / IMAGE_SIZE[1])
    pixels = {size: max(6, round(edge * scale)) for size, edge in OBJECT_PIXELS.items()}
    gap, border = max(2, round(OBJECT_GAP * scale)), max(1, round(BORDER * scale))
    for _ in range(100):
        objects: list[dict] = []
        for _ in range(rng.randint(min_objects, max_objects)):
            size, color, shape = rng.choice(CLEVR_SIZES), rng.choice(tuple(CLEVR_COLORS)), rng.choice(CLEVR_SHAPES)
            edge = pixels[size]
            for _ in range(200):
                x0 = rng.randint(border, width - border - edge)
                y0 = rng.randint(border, height - border - edge)
                box = [x0, y0, x0 + edge, y0 + edge]
                if all(_separated(box, obj["bbox"], gap) for obj in objects):
                    break
            else:
                break  # no room left: draw the scene again
            cx, cy = x0 + edge // 2, y0 + edge // 2
            # A pseudo 3-D frame: x to the right, y away from the camera (up the image), z = CLEVR's size radius.
            coords = [
                round(3 * (2 * cx / width - 1), 3),
                round(3 * (1 - 2 * cy / height), 3),
                0.7 if size == "large" else 0.35,
            ]
            objects.append(
                {
                    "color": color,
                    "size": size,
                    "shape": shape,
                    "material": "rubber",
                    "rotation": 0.0,
                    "3d_coords": coords,
                    "pixel_coords": [cx, cy, round(8.0 + 6.0 * (1 - cy / height), 3)],
                    "bbox": box,
                }
            )
        else:
            return objects
    raise ConfigurationError(f"cannot place {min_objects}-{max_objects} objects without overlap in {width}x{height}")


def _shade(rgb, towards: int, amount: float) -> tuple[int, int, int]:
    return tuple(round(c + (towards - c) * amount) for c in rgb)


@functools.lru_cache(maxsize=4)
def _floor(width: int, height: int) -> Image.Image:
    rows = np.linspace(168, 128, height).round().astype(np.uint8)[:, None, None]
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows, (height, width, 3))), "RGB")


def render_scene(objects: list[dict], width: int = 480, height: int = 320) -> Image.Image:
    """Draw a scene's objects (``bbox`` [x0, y0, x1, y1] in pixels, ``color``, ``shape``) as a CLEVR-style image.

    Cubes are squares, spheres circles with a highlight, cylinders upright bodies 2/3 as wide as tall with an
    elliptical top in a lighter shade (darker for gray). Every object has a darker outline and its centre pixel
    has exactly its CLEVR colour. The floor is a grey vertical gradient (lighter far away, at the top).

    Returns:
        `PIL.Image.Image`: an ``"RGB"`` image of ``width`` x ``height`` pixels.
    """
    k = SUPERSAMPLING
    canvas = _floor(width * k, height * k).copy()
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(1.5 * k * min(width / IMAGE_SIZE[0], height / IMAGE_SIZE[1])))
    for obj in sorted(objects, key=lambda o: o["pixel_coords"][1]):  # far (top) objects first
        fill = CLEVR_COLORS[obj["color"]]
        edge_color = _shade(fill, 0, 0.5)
        x0, y0, x1, y1 = (v * k for v in obj["bbox"])
        x1, y1 = x1 - 1, y1 - 1
        size = x1 - x0
        if obj["shape"] == "cube":
            draw.rectangle([x0, y0, x1, y1], fill=fill, outline=edge_color, width=line)
        elif obj["shape"] == "sphere":
            draw.ellipse([x0, y0, x1, y1], fill=fill, outline=edge_color, width=line)
            hx, hy, r = x0 + 0.3 * size, y0 + 0.28 * size, 0.09 * size
            draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=_shade(fill, 255, 0.45))
        else:  # cylinder: a body 2/3 as wide as tall, an elliptical bottom and a lighter (gray: darker) top
            inset, cap = 0.17 * size, 0.26 * size
            left, right = x0 + inset, x1 - inset
            draw.ellipse([left, y1 - cap, right, y1], fill=fill, outline=edge_color, width=line)
            draw.rectangle([left, y0 + cap / 2, right, y1 - cap / 2], fill=fill)
            draw.line([left, y0 + cap / 2, left, y1 - cap / 2], fill=edge_color, width=line)
            draw.line([right, y0 + cap / 2, right, y1 - cap / 2], fill=edge_color, width=line)
            top = _shade(fill, 255, 0.3)
            if max(abs(c - 148) for c in top) < 40:  # would vanish into the floor: shade the top darker instead
                top = _shade(fill, 0, 0.25)
            draw.ellipse([left, y0, right, y0 + cap], fill=top, outline=edge_color, width=line)
    return canvas.resize((width, height), Image.Resampling.BOX)


def draw_scenes(num_images: int, seed: int = 0, width: int = 480, height: int = 320) -> list[Image.Image]:
    """``num_images`` CLEVR-style scenes (3-6 objects, RGB PIL images of ``width`` x ``height``) without questions
    or files, e.g. as an out-of-distribution set (`hfgen ood --out clevr`). Deterministic for ``seed``."""
    rng = random.Random(seed)
    return [render_scene(make_scene(rng, width, height, 3, 6), width, height) for _ in range(num_images)]


__all__ = [
    "draw_scenes",
    "make_scene",
    "relationships_of",
    "render_scene",
]
