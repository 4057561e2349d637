"""CLEVR's vocabulary: colours, sizes, shapes, materials, the 28 answers, question kinds, spatial relations, and
the geometry of the generated 2-D scenes (Johnson et al., CVPR 2017; ``clevr-dataset-gen`` ``properties.json``)."""

from __future__ import annotations

CLEVR_DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/clevr/CLEVR_v1.0.zip"


CLEVR_FOLDER = "CLEVR_v1.0"


GENERATOR_NAME = "hfgen.data.clevr.make_clevr_dataset"


# CLEVR's properties.json (clevr-dataset-gen/image_generation/data/properties.json): name -> sRGB 0-255.
CLEVR_COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}


CLEVR_SIZES = ("small", "large")


CLEVR_SHAPES = ("cube", "sphere", "cylinder")


CLEVR_MATERIALS = ("rubber", "metal")


# CLEVR's 28 answers: yes/no, counts 0-10, colours, sizes, shapes, materials.
CLEVR_ANSWERS: tuple[str, ...] = (
    ("yes", "no")
    + tuple(str(n) for n in range(11))
    + tuple(CLEVR_COLORS)
    + CLEVR_SIZES
    + CLEVR_SHAPES
    + CLEVR_MATERIALS
)


# The kinds of question the generator asks (the ``question_type`` it stores).
QUESTION_TYPES = ("exist", "count", "query_color", "query_shape", "query_size", "compare_count", "spatial")


# Real CLEVR: the last function of a question's program -> question_type (anything else -> "unknown").
PROGRAM_QUESTION_TYPES = {
    "exist": "exist",
    "count": "count",
    "query_color": "query_color",
    "query_shape": "query_shape",
    "query_size": "query_size",
    "query_material": "query_material",
    "equal_integer": "compare_count",
    "greater_than": "compare_count",
    "less_than": "compare_count",
    "equal_color": "compare_attribute",
    "equal_shape": "compare_attribute",
    "equal_size": "compare_attribute",
    "equal_material": "compare_attribute",
}


RELATIONS = ("left", "right", "behind", "front")


RELATION_WORDS = {"left": "left of", "right": "right of", "behind": "behind", "front": "in front of"}


OPPOSITE_RELATION = {"left": "right", "right": "left", "behind": "front", "front": "behind"}


ATTRIBUTES = ("size", "color", "material", "shape")


# Generated images: CLEVR's 480x320; object edge lengths in pixels at that size (CLEVR's large/small is 0.7/0.35).
IMAGE_SIZE = (480, 320)


OBJECT_PIXELS = {"large": 64, "small": 36}


OBJECT_GAP = 10  # minimum empty pixels between two objects' bounding boxes (at 480x320)


BORDER = 6  # minimum pixels between an object and the image border (at 480x320)


RELATION_MARGIN = 16  # centres closer than this along an axis are neither left/right (behind/front) of each other


SUPERSAMPLING = 2  # draw at 2x and downsample: anti-aliased edges, exact colours inside the objects


__all__ = [
    "ATTRIBUTES",
    "BORDER",
    "CLEVR_ANSWERS",
    "CLEVR_COLORS",
    "CLEVR_DOWNLOAD_URL",
    "CLEVR_FOLDER",
    "CLEVR_MATERIALS",
    "CLEVR_SHAPES",
    "CLEVR_SIZES",
    "GENERATOR_NAME",
    "IMAGE_SIZE",
    "OBJECT_GAP",
    "OBJECT_PIXELS",
    "OPPOSITE_RELATION",
    "PROGRAM_QUESTION_TYPES",
    "QUESTION_TYPES",
    "RELATIONS",
    "RELATION_MARGIN",
    "RELATION_WORDS",
    "SUPERSAMPLING",
]
