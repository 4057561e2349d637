"""The offline CLEVR-style data set generator (`make_clevr_dataset`): scenes, questions of CLEVR's kinds, written in
the official layout with ``scenes/CLEVR_{split}_scenes.json`` in CLEVR's scene format."""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from itertools import combinations

from hfgen.data.clevr.questions import FAMILIES, answer_question, question_text, select_objects
from hfgen.data.clevr.scenes import make_scene, relationships_of, render_scene
from hfgen.data.clevr.vocabulary import (
    CLEVR_COLORS,
    CLEVR_SHAPES,
    CLEVR_SIZES,
    GENERATOR_NAME,
    IMAGE_SIZE,
    OPPOSITE_RELATION,
    QUESTION_TYPES,
    RELATION_MARGIN,
    RELATIONS,
)
from hfgen.errors import ConfigurationError, DatasetError

logger = logging.getLogger(__name__)


def _empty_filter() -> dict:
    return {"size": None, "color": None, "material": None, "shape": None}


def _filter_of(obj: dict, keys) -> dict:
    spec = _empty_filter()
    for key in keys:
        spec[key] = obj[key]
    return spec


def _unique_descriptions(objects: list[dict], index: int, keys=("size", "color", "shape")) -> list[dict]:
    """Every filter over a non-empty subset of ``keys`` that matches object ``index`` and no other object."""
    found = []
    for n in range(1, len(keys) + 1):
        for subset in combinations(keys, n):
            spec = _filter_of(objects[index], subset)
            if select_objects(objects, spec) == [index]:
                found.append(spec)
    return found


def _random_filter(rng: random.Random, keys) -> dict:
    values = {"size": CLEVR_SIZES, "color": tuple(CLEVR_COLORS), "shape": CLEVR_SHAPES}
    spec = _empty_filter()
    for key in keys:
        spec[key] = rng.choice(values[key])
    return spec


def _random_keys(rng: random.Random, max_keys: int = 2) -> tuple[str, ...]:
    keys = ("size", "color", "shape")
    subset = rng.sample(keys, rng.randint(1, max_keys))
    return tuple(k for k in keys if k in subset)


def _ask_exist(scene, rng):
    objects = scene["objects"]
    if rng.random() < 0.5:  # aim for "yes": describe part of an object in the scene
        spec = _filter_of(rng.choice(objects), _random_keys(rng))
    else:  # aim for "no": an object in the scene with one attribute changed, else anything absent
        spec = None
        for _ in range(30):
            keys = _random_keys(rng, 3)
            candidate = _filter_of(rng.choice(objects), keys)
            changed = rng.choice(keys)
            candidate[changed] = _random_filter(rng, [changed])[changed]
            if not select_objects(objects, candidate):
                spec = candidate
                break
        if spec is None:
            return None
    return {"kind": "exist", "objects": spec}, rng.choice(FAMILIES["exist"])


def _ask_count(scene, rng):
    objects = scene["objects"]
    keys = _random_keys(rng)
    spec = _filter_of(rng.choice(objects), keys) if rng.random() < 0.8 else _random_filter(rng, keys)
    return {"kind": "count", "objects": spec}, rng.choice(FAMILIES["count"])


def _ask_query(attribute: str):
    def ask(scene, rng):
        objects = scene["objects"]
        others = tuple(k for k in ("size", "color", "shape") if k != attribute)
        for index in rng.sample(range(len(objects)), len(objects)):
            descriptions = _unique_descriptions(objects, index, others)
            if descriptions:
                spec = {"kind": f"query_{attribute}", "object": rng.choice(descriptions)}
                return spec, rng.choice(FAMILIES[f"query_{attribute}"])
        return None

    return ask


_COMPARE_KEYS = (("shape",), ("color",), ("size",), ("size", "shape"), ("color", "shape"))


def _ask_compare(scene, rng):
    objects = scene["objects"]
    family = rng.choice(FAMILIES["compare_count"])
    op = {10: "more", 11: "fewer"}.get(family, "equal")
    want = "yes" if rng.random() < 0.5 else "no"
    fallback = None
    for _ in range(40):
        keys = rng.choice(_COMPARE_KEYS)
        first = _filter_of(rng.choice(objects), keys) if rng.random() < 0.8 else _random_filter(rng, keys)
        second = _random_filter(rng, keys)
        if first == second or not (select_objects(objects, first) or select_objects(objects, second)):
            continue
        spec = {"kind": "compare_count", "op": op, "objects": [first, second]}
        if answer_question(scene, spec) == want:
            return spec, family
        fallback = fallback or (spec, family)
    return fallback


def _ask_spatial(scene, rng):
    objects, relationships = scene["objects"], scene["relationships"]
    described = {i: _unique_descriptions(objects, i) for i in range(len(objects))}
    referable = [i for i, found in described.items() if found]
    if rng.random() < 0.5:  # "Is the A left of the B?"
        pairs = [(a, b) for a in referable for b in referable if a != b]
        rng.shuffle(pairs)
        for a, b in pairs:
            clear = [rel for rel in RELATIONS if a in relationships[rel][b]]
            if not clear:
                continue
            relation = rng.choice(clear)
            if rng.random() < 0.5:  # ask the opposite: the answer is "no"
                relation = OPPOSITE_RELATION[relation]
            spec = {"kind": "spatial", "relation": relation, "object": rng.choice(described[a])}
            spec["reference"] = rng.choice(described[b])
            return spec, 14
        return None
    # "What color/shape is the thing left of the B?": exactly one object on that side, every other one clearly on
    # the opposite side, so that no object is borderline.
    options = []
    for b in referable:
        for relation in RELATIONS:
            related, opposite = relationships[relation][b], relationships[OPPOSITE_RELATION[relation]][b]
            if len(related) == 1 and len(opposite) == len(objects) - 2:
                options.append((b, relation))
    if not options:
        return None
    b, relation = rng.choice(options)
    query = rng.choice(("color", "shape"))
    spec = {"kind": "spatial", "relation": relation, "reference": rng.choice(described[b]), "query": query}
    return spec, 15 if query == "color" else 16


_ASKERS = {
    "exist": _ask_exist,
    "count": _ask_count,
    "query_color": _ask_query("color"),
    "query_shape": _ask_query("shape"),
    "query_size": _ask_query("size"),
    "compare_count": _ask_compare,
    "spatial": _ask_spatial,
}


def _questions_for_scene(scene: dict, rng: random.Random, kinds: list[str], count: int) -> list[tuple[str, dict, int]]:
    """Up to ``count`` distinct (question, spec, family) for a scene, one per entry of ``kinds``.

    When a kind has nothing (new) to ask about this scene, the other kinds are tried in random order instead.
    """
    asked, texts = [], set()
    for kind in kinds[:count]:
        fallbacks = [k for k in QUESTION_TYPES if k != kind]
        rng.shuffle(fallbacks)
        for candidate_kind in [kind, *fallbacks]:
            found = None
            for _ in range(3):
                found = _ASKERS[candidate_kind](scene, rng)
                if found is not None:
                    spec, family = found
                    text = question_text(spec, family, noun=rng.choice(("thing", "object")))
                    if text not in texts:
                        break
                found = None
            if found is not None:
                texts.add(text)
                asked.append((text, spec, family))
                break
    return asked


def _check_output_dir(output_dir: str) -> None:
    for split in ("train", "val"):
        path = os.path.join(output_dir, "questions", f"CLEVR_{split}_questions.json")
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                generator = json.load(handle).get("info", {}).get("generator")
        except (OSError, ValueError, AttributeError):
            generator = None
        if generator != GENERATOR_NAME:
            raise DatasetError(
                f"{output_dir} already holds a CLEVR data set that make_clevr_dataset did not write ({path}); "
                "choose an empty or new output_dir so that it is not overwritten"
            )


# CLEVR's unit vectors of each direction in its scene files (the same in every scene)
_DIRECTIONS = {
    "left": [-1.0, 0.0, 0.0],
    "right": [1.0, 0.0, 0.0],
    "behind": [0.0, 1.0, 0.0],
    "front": [0.0, -1.0, 0.0],
    "above": [0.0, 0.0, 1.0],
    "below": [0.0, 0.0, -1.0],
}


@dataclass(frozen=True)
class _Settings:
    """What every image of one `make_clevr_dataset` call shares."""

    seed: int
    width: int
    height: int
    questions_per_image: int
    min_objects: int
    max_objects: int
    margin: float  # pixels between centres for a spatial relation, scaled with the image


def _checked_arguments(
    num_images: int,
    val_fraction: float,
    image_size: tuple[int, int],
    questions_per_image: int,
    min_objects: int,
    max_objects: int,
) -> tuple[int, int]:
    """``(width, height)`` of ``image_size``; ConfigurationError for a `make_clevr_dataset` argument out of range."""
    width, height = (int(v) for v in image_size)
    if num_images < 1:
        raise ConfigurationError(f"num_images must be at least 1, got {num_images}")
    if not 0 <= val_fraction < 1:
        raise ConfigurationError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    if questions_per_image < 1:
        raise ConfigurationError(f"questions_per_image must be at least 1, got {questions_per_image}")
    if not 1 <= min_objects <= max_objects <= 10:
        raise ConfigurationError(f"need 1 <= min_objects <= max_objects <= 10, got {min_objects}, {max_objects}")
    if width < 120 or height < 80:
        raise ConfigurationError(f"image_size must be at least (120, 80) pixels, got {image_size}")
    return width, height


def _split_counts(num_images: int, val_fraction: float) -> dict[str, int]:
    """Images per split, ``{"train": n, "val": round(num_images * val_fraction)}``; ConfigurationError when n < 1."""
    num_val = round(num_images * val_fraction)
    counts = {"train": num_images - num_val, "val": num_val}
    if counts["train"] < 1:
        raise ConfigurationError(f"val_fraction={val_fraction} leaves no training image out of {num_images}")
    return counts


def _write_split(output_dir: str, split: str, count: int, settings: _Settings) -> list[dict]:
    """Draw and write the ``count`` images of ``split``, its questions and scenes files; returns the questions."""
    image_dir = os.path.join(output_dir, "images", split)
    os.makedirs(image_dir, exist_ok=True)
    for name in os.listdir(image_dir):  # earlier generated images beyond this run's count
        if re.fullmatch(rf"CLEVR_{split}_(\d{{6}})\.png", name) and int(name[-10:-4]) >= count:
            os.remove(os.path.join(image_dir, name))
    info = {
        "split": split,
        "version": "1.0",
        "license": "Creative Commons Attribution (CC BY 4.0)",
        "generator": GENERATOR_NAME,
        "seed": settings.seed,
        "image_size": [settings.width, settings.height],
    }
    scenes, questions = [], []
    for index in range(count):
        scene, asked = _draw_image(image_dir, split, index, settings)
        scenes.append(scene)
        for text, spec, family in asked:
            questions.append(
                {
                    "image_index": index,
                    "split": split,
                    "image_filename": scene["image_filename"],
                    "question": text,
                    "answer": answer_question(scene, spec),
                    "question_family_index": family,
                    "question_index": len(questions),
                    "question_type": spec["kind"],
                }
            )
    for folder, payload in (("questions", {"questions": questions}), ("scenes", {"scenes": scenes})):
        os.makedirs(os.path.join(output_dir, folder), exist_ok=True)
        with open(os.path.join(output_dir, folder, f"CLEVR_{split}_{folder}.json"), "w", encoding="utf-8") as f:
            json.dump({"info": info, **payload}, f)
    return questions


def _draw_image(
    image_dir: str, split: str, index: int, settings: _Settings
) -> tuple[dict, list[tuple[str, dict, int]]]:
    """Scene ``index`` of ``split`` (rendered into ``image_dir``) and its (question, spec, family) triples."""
    rng = random.Random(f"hfgen-clevr/{settings.seed}/{split}/{index}")
    filename = f"CLEVR_{split}_{index:06d}.png"
    objects = make_scene(rng, settings.width, settings.height, settings.min_objects, settings.max_objects)
    scene = {
        "split": split,
        "image_index": index,
        "image_filename": filename,
        "objects": objects,
        "relationships": relationships_of(objects, settings.margin),
        "directions": {name: list(vector) for name, vector in _DIRECTIONS.items()},
    }
    render_scene(objects, settings.width, settings.height).save(os.path.join(image_dir, filename))
    count = settings.questions_per_image
    kinds = [QUESTION_TYPES[(index * count + q) % len(QUESTION_TYPES)] for q in range(count)]
    return scene, _questions_for_scene(scene, rng, kinds, count)


def make_clevr_dataset(
    output_dir: str | os.PathLike,
    num_images: int = 300,
    seed: int = 0,
    val_fraction: float = 0.2,
    image_size: tuple[int, int] = IMAGE_SIZE,
    questions_per_image: int = 10,
    min_objects: int = 3,
    max_objects: int = 6,
) -> dict:
    """Draw a CLEVR-style VQA data set offline and write it in the official ``CLEVR_v1.0`` layout.

    Each scene has ``min_objects``-``max_objects`` (default 3-6) rubber objects with CLEVR's 8 colours, 2 sizes
    (64 and 36 pixels at 480x320) and 3 shapes (cube: square, sphere: circle, cylinder: upright body with an
    elliptical top), placed at random with at least 10 pixels between their bounding boxes, on a grey floor.
    Questions come from 17 templates (``question_family_index`` 0-16) of 7 kinds (`QUESTION_TYPES`): exist, count,
    query_color, query_shape, query_size, compare_count and spatial ("left of", "right of", "behind" = higher in
    the image, "in front of" = lower). Kinds are asked in rotation so that they are balanced; yes/no questions aim
    at "yes" half of the time; referring expressions ("the large red thing") always match exactly one object and
    spatial questions are only asked about objects at least 16 pixels apart along the axis. Answers come from
    `CLEVR_ANSWERS` and can be recomputed with `answer_question(scene, parse_question(question)[0])`.

    Writes (indices restart at 0 in each split)::

        output_dir/images/{train,val}/CLEVR_{split}_000000.png      RGB, image_size (width, height)
        output_dir/questions/CLEVR_{split}_questions.json         {"info": ..., "questions": [...]}
        output_dir/scenes/CLEVR_{split}_scenes.json               {"info": ..., "scenes": [...]}

    A question has CLEVR's keys ``image_index``, ``split``, ``image_filename``, ``question``, ``answer``,
    ``question_family_index``, ``question_index`` plus ``question_type``. A scene has ``split``, ``image_index``,
    ``image_filename``, ``objects`` (``color``, ``size``, ``shape``, ``material``, ``rotation``, ``3d_coords``,
    ``pixel_coords`` [x, y, depth] with the centre in pixels, plus ``bbox`` [x0, y0, x1, y1] in pixels, x1/y1
    exclusive), ``relationships`` and ``directions`` as CLEVR writes them (``relationships["left"][i]`` = the
    objects whose centre is more than 16 pixels left of object ``i``'s; ``behind`` = higher up in the image).
    ``depth`` is a pseudo-depth in CLEVR's range 8-14 (larger = higher up = further away); ``3d_coords`` map the
    image to [-3, 3] x [-3, 3] (x right, y behind) with z = CLEVR's size (0.7 or 0.35). Regenerating into the same
    folder replaces the earlier generated files. The same arguments always give the same files.

    Args:
        output_dir (`str` or `os.PathLike`): where to write (created if needed); pass it to `load_clevr`.
        num_images (`int`): images in train and val together (>= 1).
        seed (`int`): seed of every random choice.
        val_fraction (`float`): share of images in the val split, in [0, 1); ``round(num_images * val_fraction)``.
        image_size (`tuple[int, int]`): ``(width, height)`` in pixels; CLEVR's is (480, 320). Object sizes scale
            with ``min(width / 480, height / 320)``.
        questions_per_image (`int`): questions asked about each image (fewer when a scene offers no more).
        min_objects, max_objects (`int`): objects per scene, 1 <= min <= max <= 10.

    Returns:
        `dict`: ``{"output_dir": str, "seed": int, "splits": {split: {"images": int, "questions": int,
        "question_types": {type: int}, "answers": {answer: int}}}, "question_types": {type: int}}``.

    Raises:
        ConfigurationError: invalid counts, fraction or image size, or no room for the objects.
        DatasetError: ``output_dir`` already holds a CLEVR set that this function did not write.
    """
    output_dir = os.fspath(output_dir)
    width, height = _checked_arguments(
        num_images, val_fraction, image_size, questions_per_image, min_objects, max_objects
    )
    _check_output_dir(output_dir)
    counts = _split_counts(num_images, val_fraction)
    margin = RELATION_MARGIN * min(width / IMAGE_SIZE[0], height / IMAGE_SIZE[1])
    settings = _Settings(seed, width, height, questions_per_image, min_objects, max_objects, margin)
    summary: dict = {"output_dir": output_dir, "seed": seed, "splits": {}, "question_types": Counter()}
    for split, count in counts.items():
        questions = _write_split(output_dir, split, count, settings)
        types = Counter(q["question_type"] for q in questions)
        summary["question_types"].update(types)
        summary["splits"][split] = {
            "images": count,
            "questions": len(questions),
            "question_types": dict(sorted(types.items())),
            "answers": dict(Counter(q["answer"] for q in questions).most_common()),
        }
    summary["question_types"] = dict(sorted(summary["question_types"].items()))
    logger.info("wrote a CLEVR-style data set to %s: %s", output_dir, summary["splits"])
    return summary


__all__ = [
    "make_clevr_dataset",
]
