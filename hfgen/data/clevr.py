"""CLEVR visual question answering data: the official ``CLEVR_v1.0`` folder and an offline CLEVR-style generator.

Source: J. Johnson, B. Hariharan, L. van der Maaten, L. Fei-Fei, C. L. Zitnick and R. Girshick, "CLEVR: A Diagnostic
Dataset for Compositional Language and Elementary Visual Reasoning", CVPR 2017 (https://arxiv.org/abs/1612.06890).

- `load_clevr` reads the official layout (``ROOT/images/{split}/*.png``,
  ``ROOT/questions/CLEVR_{split}_questions.json``) into a `datasets.Dataset` whose images are read lazily from disk.
- `make_clevr_dataset` draws CLEVR-style 2-D scenes with PIL (CLEVR's 8 colours, 2 sizes, 3 shapes, rubber) and
  writes them in exactly that layout, plus ``scenes/CLEVR_{split}_scenes.json`` in CLEVR's scene format and
  questions from templates of CLEVR's kinds, so that everything downstream runs without the 18 GB download.
- `answer_question` evaluates a question spec on a scene (ours or real CLEVR's) and `parse_question` turns a
  generated question back into its spec; `normalize_answer` is the answer normalisation the VQA evaluator uses.

In the generated 2-D world "behind" means higher up in the image and "in front of" lower down, the way CLEVR's
camera sees its floor; the ``relationships`` of a scene follow CLEVR: ``relationships["left"][i]`` lists the
objects that are left of object ``i``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import re
import shutil
from collections import Counter
from itertools import combinations

import numpy as np
from PIL import Image, ImageDraw

from hfgen.errors import ConfigurationError, DatasetError

logger = logging.getLogger(__name__)

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

_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}
_SPELLINGS = {"colour": "color", "colours": "colors", "grey": "gray"}


# --------------------------------------------------------------------------------------------------- answers


def normalize_answer(text: str | None) -> str:
    """Normalise an answer for exact-match scoring against CLEVR's answer vocabulary.

    Lower-cases, strips white space and trailing punctuation, drops the articles "a", "an" and "the", maps the
    number words "zero".."ten" to "0".."10" and British spellings to CLEVR's ("colour" -> "color",
    "grey" -> "gray"), and joins the words with single spaces. ``"The Sphere."`` -> ``"sphere"``,
    ``"Two"`` -> ``"2"``, ``None`` -> ``""``.

    Args:
        text (`str` or `None`): a model's or the data set's answer.

    Returns:
        `str`: the normalised answer (possibly empty).
    """
    if text is None:
        return ""
    words = []
    for word in str(text).lower().split():
        word = word.strip(".,!?;:\"'()[]")
        if not word or word in _ARTICLES:
            continue
        word = _SPELLINGS.get(word, word)
        words.append(_NUMBER_WORDS.get(word, word))
    return " ".join(words)


# ---------------------------------------------------------------------------------------- loading real CLEVR


def question_type_from_program(program: list[dict] | None) -> str:
    """The kind of a real CLEVR question, from the last function of its functional program.

    CLEVR v1.0 writes program nodes as ``{"function": ..., "inputs": [...], "value_inputs": [...]}``; the older
    generator format ``{"type": ..., "inputs": [...], "side_inputs": [...]}`` is accepted too. The mapping is
    `PROGRAM_QUESTION_TYPES` (``exist``, ``count``, ``query_color/shape/size/material``, ``equal_integer``,
    ``greater_than`` and ``less_than`` -> ``compare_count``, ``equal_<attribute>`` -> ``compare_attribute``).

    Returns:
        `str`: the question type, or ``"unknown"`` for an empty or unrecognised program.
    """
    if not program:
        return "unknown"
    last = program[-1]
    if not isinstance(last, dict):
        return "unknown"
    function = last.get("function", last.get("type"))
    return PROGRAM_QUESTION_TYPES.get(function, "unknown")


def _resolve_clevr_root(root: str | os.PathLike) -> str:
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(
            f"CLEVR root {root!r} does not exist; download {CLEVR_DOWNLOAD_URL} and unzip it, or draw a CLEVR-style "
            "set offline with hfgen.data.clevr.make_clevr_dataset(root), then pass that folder (or its parent)"
        )
    nested = os.path.join(root, CLEVR_FOLDER)
    return nested if os.path.isdir(nested) else root


def _available_splits(base: str) -> list[str]:
    folder = os.path.join(base, "questions")
    if not os.path.isdir(folder):
        return []
    found = (re.fullmatch(r"CLEVR_(\w+)_questions\.json", name) for name in sorted(os.listdir(folder)))
    return [match.group(1) for match in found if match]


def load_clevr(
    root: str | os.PathLike,
    split: str = "train",
    max_questions: int | None = None,
    seed: int = 0,
    require_answers: bool = False,
):
    """Load one split of CLEVR (or of a set written by `make_clevr_dataset`) as a `datasets.Dataset`.

    Reads the official ``CLEVR_v1.0`` layout: ``ROOT/questions/CLEVR_{split}_questions.json`` (``{"info": ...,
    "questions": [...]}``) and the images ``ROOT/images/{split}/<image_filename>``. ``root`` may be the
    ``CLEVR_v1.0`` folder itself or the folder that contains it. Images are stored as file paths and decoded (to
    RGB, 480x320 for CLEVR) only when a row is accessed, so the 70,000 training images are never all in memory.

    Args:
        root (`str` or `os.PathLike`): the ``CLEVR_v1.0`` folder or its parent.
        split (`str`): ``"train"``, ``"val"`` or ``"test"`` (any split with a questions file).
        max_questions (`int`, *optional*): keep at most this many questions, a random subset chosen by shuffling
            with ``seed`` and taking the first ``max_questions`` (kept in file order). `None` keeps all.
        seed (`int`): seed of that subsampling; the same seed always picks the same questions.
        require_answers (`bool`): raise instead of returning ``answer = None`` rows (CLEVR's test split has no
            public answers).

    Returns:
        `datasets.Dataset` with one row per question and the columns ``image`` (`datasets.Image(mode="RGB")`),
        ``question`` (`str`), ``answer`` (`str`, one of `CLEVR_ANSWERS` for CLEVR; `None` when unknown),
        ``question_family_index`` (`int`, the template's index; -1 when missing), ``image_filename`` (`str`) and
        ``question_type`` (`str`: from the program's last function via `question_type_from_program` when the
        question has a ``program``, else the stored ``question_type`` of generated sets, else ``"unknown"``).

    Raises:
        DatasetError: the root does not exist; the questions file of the split (its expected path is named) or
            the split's image folder is missing; the questions file is not CLEVR JSON or holds zero questions; an
            image named by a question does not exist; answers are missing while ``require_answers`` is set.
        ConfigurationError: ``max_questions`` is smaller than 1.
    """
    import datasets

    if max_questions is not None and (int(max_questions) != max_questions or max_questions < 1):
        raise ConfigurationError(f"max_questions must be a positive integer or None, got {max_questions!r}")
    max_questions = None if max_questions is None else int(max_questions)
    base = _resolve_clevr_root(root)
    questions_path = os.path.join(base, "questions", f"CLEVR_{split}_questions.json")
    if not os.path.isfile(questions_path):
        splits = _available_splits(base)
        hint = (
            f"available splits: {', '.join(splits)}"
            if splits
            else f"{base!r} does not look like a {CLEVR_FOLDER} folder (no questions/CLEVR_*_questions.json); pass "
            f"the folder that holds questions/ and images/, unzipped from {CLEVR_DOWNLOAD_URL} or written by "
            "make_clevr_dataset"
        )
        raise DatasetError(f"no questions file for CLEVR split {split!r}: expected {questions_path}; {hint}")
    image_dir = os.path.join(base, "images", split)
    if not os.path.isdir(image_dir):
        raise DatasetError(
            f"no image folder for CLEVR split {split!r}: expected {image_dir} next to {questions_path}; unzip the "
            "images of that split there"
        )
    try:
        with open(questions_path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{questions_path}: cannot read as CLEVR questions JSON ({err})") from None
    questions = data.get("questions") if isinstance(data, dict) else data
    if not isinstance(questions, list):
        raise DatasetError(f"{questions_path}: expected a JSON object with a 'questions' list, as CLEVR writes")
    if not questions:
        raise DatasetError(f"{questions_path} holds zero questions; regenerate or re-extract split {split!r}")

    order = range(len(questions))
    if max_questions is not None and max_questions < len(questions):
        order = np.sort(np.random.default_rng(seed).permutation(len(questions))[:max_questions]).tolist()

    existing = set(os.listdir(image_dir))
    columns: dict[str, list] = {
        "image": [],
        "question": [],
        "answer": [],
        "question_family_index": [],
        "image_filename": [],
        "question_type": [],
    }
    missing_images, missing_answers = [], 0
    for i in order:
        entry = questions[i]
        if not isinstance(entry, dict) or "question" not in entry:
            raise DatasetError(f"{questions_path}: question {i} has no 'question' text")
        filename = entry.get("image_filename")
        if filename is None:
            if "image_index" not in entry:
                raise DatasetError(f"{questions_path}: question {i} names no image (no image_filename/image_index)")
            filename = f"CLEVR_{split}_{int(entry['image_index']):06d}.png"
        if filename not in existing:
            missing_images.append(filename)
            continue
        answer = entry.get("answer")
        missing_answers += answer is None
        if "program" in entry and entry["program"]:
            question_type = question_type_from_program(entry["program"])
        else:
            question_type = entry.get("question_type") or "unknown"
        columns["image"].append(os.path.abspath(os.path.join(image_dir, filename)))
        columns["question"].append(str(entry["question"]))
        columns["answer"].append(None if answer is None else str(answer))
        columns["question_family_index"].append(int(entry.get("question_family_index", -1)))
        columns["image_filename"].append(filename)
        columns["question_type"].append(str(question_type))
    if missing_images:
        distinct = sorted(set(missing_images))
        raise DatasetError(
            f"{len(distinct)} image(s) named in {questions_path} do not exist in {image_dir} (first: "
            f"{os.path.join(image_dir, distinct[0])}); the folder is incomplete: re-extract the images of split "
            f"{split!r} or regenerate the set"
        )
    if require_answers and missing_answers:
        raise DatasetError(
            f"{missing_answers} question(s) of CLEVR split {split!r} have no answer ({questions_path}); CLEVR's test "
            "answers are not public: train and evaluate on 'train' and 'val'"
        )
    features = datasets.Features(
        {
            "image": datasets.Image(mode="RGB"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "question_family_index": datasets.Value("int64"),
            "image_filename": datasets.Value("string"),
            "question_type": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


def split_clevr_by_image(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_held_out_images: int = 50,
    split: str = "train",
    seed: int = 0,
) -> dict:
    """Split one CLEVR split by image into ``train`` and ``val`` parts, written in the ``CLEVR_v1.0`` layout.

    For CLEVR folders with a single split (e.g. ``../shared/data/clevr``: 267 real renders, 2,670 questions), so
    that fine-tuning and held-out evaluation never share an image. ``num_held_out_images`` images drawn with
    ``seed`` (numpy's ``default_rng``) and all their questions go to ``val``, the rest to ``train``; questions and
    scenes keep their fields (``image_filename`` unchanged); images are symbolic links to the originals (copies
    where links are not supported), so nothing is re-encoded.

    Writes::

        output_dir/questions/CLEVR_{train,val}_questions.json
        output_dir/scenes/CLEVR_{train,val}_scenes.json        (when the source has a scenes file)
        output_dir/images/{train,val}/<image_filename>

    Args:
        root: the source ``CLEVR_v1.0`` folder or its parent.
        output_dir: where the split set goes (created; must not already hold a ``questions`` folder).
        num_held_out_images (`int`): images in ``val``; at least 1 and fewer than the split's images.
        split (`str`): the source split to divide.

    Returns:
        ``{"train": {"images": n, "questions": m}, "val": {...}, "output_dir": path}``.

    Raises:
        DatasetError: the source split cannot be read (see `load_clevr`) or ``output_dir`` already holds a set.
        ConfigurationError: ``num_held_out_images`` out of range.
    """
    base = _resolve_clevr_root(root)
    load_clevr(base, split)  # the same checks and messages as loading it
    with open(os.path.join(base, "questions", f"CLEVR_{split}_questions.json"), encoding="utf-8") as handle:
        data = json.load(handle)
    questions = data["questions"] if isinstance(data, dict) else data

    def image_of(question: dict) -> str:
        return question.get("image_filename") or f"CLEVR_{split}_{int(question['image_index']):06d}.png"

    images = sorted({image_of(q) for q in questions})
    if not 1 <= num_held_out_images < len(images):
        raise ConfigurationError(
            f"num_held_out_images must be between 1 and {len(images) - 1} (the split has {len(images)} images), "
            f"got {num_held_out_images}"
        )
    output_dir = os.fspath(output_dir)
    if os.path.isdir(os.path.join(output_dir, "questions")):
        raise DatasetError(f"{output_dir} already holds a CLEVR set (questions/); choose an empty folder")
    chosen = np.random.default_rng(seed).permutation(len(images))[:num_held_out_images]
    held_out = {images[i] for i in chosen}
    part_of = {name: ("val" if name in held_out else "train") for name in images}
    scenes_path = os.path.join(base, "scenes", f"CLEVR_{split}_scenes.json")
    scenes = None
    if os.path.isfile(scenes_path):
        with open(scenes_path, encoding="utf-8") as handle:
            scenes = json.load(handle)
    info = data.get("info", {}) if isinstance(data, dict) else {}
    summary = {"output_dir": output_dir}
    for part in ("train", "val"):
        names = [name for name in images if part_of[name] == part]
        folder = os.path.join(output_dir, "images", part)
        os.makedirs(folder, exist_ok=True)
        for name in names:
            source, target = os.path.abspath(os.path.join(base, "images", split, name)), os.path.join(folder, name)
            try:
                os.symlink(source, target)
            except OSError:
                shutil.copyfile(source, target)
        kept = [q for q in questions if part_of[image_of(q)] == part]
        part_info = {**info, "split_of": f"{split} ({len(images)} images)", "held_out_seed": seed}
        os.makedirs(os.path.join(output_dir, "questions"), exist_ok=True)
        with open(os.path.join(output_dir, "questions", f"CLEVR_{part}_questions.json"), "w") as handle:
            json.dump({"info": part_info, "questions": kept}, handle)
        if scenes is not None:
            entries = scenes["scenes"] if isinstance(scenes, dict) else scenes
            kept_scenes = [entry for entry in entries if part_of.get(entry.get("image_filename")) == part]
            os.makedirs(os.path.join(output_dir, "scenes"), exist_ok=True)
            with open(os.path.join(output_dir, "scenes", f"CLEVR_{part}_scenes.json"), "w") as handle:
                json.dump({"info": part_info, "scenes": kept_scenes}, handle)
        summary[part] = {"images": len(names), "questions": len(kept)}
    return summary


# ------------------------------------------------------------------------------------ question specs and text


def _matches(obj: dict, spec: dict) -> bool:
    return all(spec.get(key) is None or obj.get(key) == spec[key] for key in ATTRIBUTES)


def _select(objects: list[dict], spec: dict) -> list[int]:
    return [i for i, obj in enumerate(objects) if _matches(obj, spec)]


def _unique(objects: list[dict], spec: dict, what: str) -> int:
    found = _select(objects, spec)
    if len(found) != 1:
        raise ValueError(f"{what} {describe(spec)!r} refers to {len(found)} objects, not exactly one")
    return found[0]


def describe(spec: dict, plural: bool = False, noun: str = "thing") -> str:
    """The noun phrase of an object filter, in CLEVR's word order (size, colour, material, shape).

    ``{"size": "large", "color": "red", "shape": None}`` -> ``"large red thing"`` (``"large red things"`` when
    ``plural``); ``noun`` ("thing" or "object") stands in for a missing shape.
    """
    words = [spec[key] for key in ("size", "color", "material") if spec.get(key)]
    head = spec.get("shape") or noun
    words.append(head + "s" if plural else head)
    return " ".join(words)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def answer_question(scene: dict, spec: dict) -> str:
    """The answer to a question spec on a scene, computed from the scene description alone.

    ``scene`` is one entry of a ``CLEVR_{split}_scenes.json`` (ours or real CLEVR's): ``objects`` (dicts with
    ``size``, ``color``, ``material``, ``shape``) and ``relationships`` (``relationships[rel][i]`` = indices of the
    objects that are ``rel`` of object ``i``, ``rel`` in ``left``, ``right``, ``behind``, ``front``). An object
    filter is a dict of those attribute names to a value or `None` (any). Specs, by ``kind``:

    - ``{"kind": "exist", "objects": F}`` -> "yes"/"no"; ``{"kind": "count", "objects": F}`` -> "0".."10";
    - ``{"kind": "query_color" | "query_shape" | "query_size", "object": F}`` -> the attribute of the one object
      matching ``F``;
    - ``{"kind": "compare_count", "op": "more" | "fewer" | "equal", "objects": [F1, F2]}`` -> "yes"/"no";
    - ``{"kind": "spatial", "relation": rel, "object": F1, "reference": F2}`` -> "yes" if the object ``F1`` is
      ``rel`` of the object ``F2``;
    - ``{"kind": "spatial", "relation": rel, "reference": F2, "query": "color" | "shape"}`` -> that attribute of
      the one object that is ``rel`` of the object ``F2``.

    Returns:
        `str`: an answer from `CLEVR_ANSWERS` (counts above 10 are returned as they are).

    Raises:
        ValueError: a referring expression matches no object or several (the question is ambiguous), or the spec
            is malformed.
    """
    objects = scene["objects"]
    kind = spec.get("kind")
    if kind == "exist":
        return "yes" if _select(objects, spec["objects"]) else "no"
    if kind == "count":
        return str(len(_select(objects, spec["objects"])))
    if kind in ("query_color", "query_shape", "query_size", "query_material"):
        return objects[_unique(objects, spec["object"], "the object")][kind.removeprefix("query_")]
    if kind == "compare_count":
        first, second = (len(_select(objects, f)) for f in spec["objects"])
        op = spec["op"]
        if op not in ("more", "fewer", "equal"):
            raise ValueError(f"unknown compare_count op {op!r}; use 'more', 'fewer' or 'equal'")
        holds = first > second if op == "more" else first < second if op == "fewer" else first == second
        return "yes" if holds else "no"
    if kind == "spatial":
        relation = spec["relation"]
        if relation not in RELATIONS:
            raise ValueError(f"unknown relation {relation!r}; use one of {', '.join(RELATIONS)}")
        reference = _unique(objects, spec["reference"], "the reference")
        related = scene["relationships"][relation][reference]
        if "query" in spec:
            if len(related) != 1:
                raise ValueError(f"{len(related)} objects are {relation} of the reference, not exactly one")
            return objects[related[0]][spec["query"]]
        subject = _unique(objects, spec["object"], "the object")
        return "yes" if subject in related else "no"
    raise ValueError(f"unknown question kind {kind!r}; use one of {', '.join(QUESTION_TYPES)}")


def question_text(spec: dict, family: int, noun: str = "thing") -> str:
    """The English question of a spec with the template ``family`` (a `question_family_index` of the generator).

    Raises:
        ValueError: the family does not ask that kind of question.
    """
    kind = spec["kind"]
    if kind in ("exist", "count"):
        one, many = describe(spec["objects"], noun=noun), describe(spec["objects"], True, noun)
        texts = {
            0: f"Are there any {many}?",
            1: f"Is there {_article(one)}?",
            2: f"How many {many} are there?",
            3: f"What number of {many} are there?",
        }
    elif kind.startswith("query_"):
        attribute, what = kind.removeprefix("query_"), describe(spec["object"], noun=noun)
        start = {"color": 4, "shape": 6, "size": 8}[attribute]
        texts = {start: f"What {attribute} is the {what}?", start + 1: f"The {what} has what {attribute}?"}
    elif kind == "compare_count":
        first, second = (describe(f, True, noun) for f in spec["objects"])
        texts = {
            10: f"Are there more {first} than {second}?",
            11: f"Are there fewer {first} than {second}?",
            12: f"Are there an equal number of {first} and {second}?",
            13: f"Is the number of {first} the same as the number of {second}?",
        }
        wanted = {"more": (10,), "fewer": (11,), "equal": (12, 13)}[spec["op"]]
        texts = {k: v for k, v in texts.items() if k in wanted}
    elif kind == "spatial":
        relation, reference = RELATION_WORDS[spec["relation"]], describe(spec["reference"], noun=noun)
        if "query" in spec:
            family_of_query = {"color": 15, "shape": 16}[spec["query"]]
            texts = {family_of_query: f"What {spec['query']} is the {noun} {relation} the {reference}?"}
        else:
            texts = {14: f"Is the {describe(spec['object'], noun=noun)} {relation} the {reference}?"}
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    if family not in texts:
        raise ValueError(f"template family {family} does not ask a {kind} question like {spec}")
    return texts[family]


FAMILIES = {
    "exist": (0, 1),
    "count": (2, 3),
    "query_color": (4, 5),
    "query_shape": (6, 7),
    "query_size": (8, 9),
    "compare_count": (10, 11, 12, 13),
    "spatial": (14, 15, 16),
}


def _phrase_pattern(name: str, plural: bool) -> str:
    colors = "|".join(CLEVR_COLORS)
    nouns = "|".join(("thing", "object") + CLEVR_SHAPES)
    noun = rf"(?P<{name}_noun>{nouns}){'s' if plural else ''}"
    return (
        rf"(?:(?P<{name}_size>small|large) )?(?:(?P<{name}_color>{colors}) )?"
        rf"(?:(?P<{name}_material>rubber|metal) )?{noun}"
    )


_ONE_A, _MANY_A, _MANY_B = _phrase_pattern("a", False), _phrase_pattern("a", True), _phrase_pattern("b", True)
_ONE_B = _phrase_pattern("b", False)
_RELATION = r"(?P<rel>left of|right of|behind|in front of)"
_PATTERNS = [
    (0, rf"Are there any {_MANY_A}\?"),
    (1, rf"Is there an? {_ONE_A}\?"),
    (2, rf"How many {_MANY_A} are there\?"),
    (3, rf"What number of {_MANY_A} are there\?"),
    (4, rf"What color is the {_ONE_A}\?"),
    (5, rf"The {_ONE_A} has what color\?"),
    (6, rf"What shape is the {_ONE_A}\?"),
    (7, rf"The {_ONE_A} has what shape\?"),
    (8, rf"What size is the {_ONE_A}\?"),
    (9, rf"The {_ONE_A} has what size\?"),
    (10, rf"Are there more {_MANY_A} than {_MANY_B}\?"),
    (11, rf"Are there fewer {_MANY_A} than {_MANY_B}\?"),
    (12, rf"Are there an equal number of {_MANY_A} and {_MANY_B}\?"),
    (13, rf"Is the number of {_MANY_A} the same as the number of {_MANY_B}\?"),
    (14, rf"Is the {_ONE_A} {_RELATION} the {_ONE_B}\?"),
    (15, rf"What color is the (?:thing|object) {_RELATION} the {_ONE_B}\?"),
    (16, rf"What shape is the (?:thing|object) {_RELATION} the {_ONE_B}\?"),
]
_PATTERNS = [(family, re.compile(pattern)) for family, pattern in _PATTERNS]
_WORD_RELATION = {words: relation for relation, words in RELATION_WORDS.items()}


def _filter_from_match(match: re.Match, name: str) -> dict:
    found = {key: match.group(f"{name}_{key}") for key in ("size", "color", "material")}
    noun = match.group(f"{name}_noun")
    found["shape"] = noun if noun in CLEVR_SHAPES else None
    return found


def parse_question(text: str) -> tuple[dict, int]:
    """Recover the spec and template family of a question written by `make_clevr_dataset`.

    Returns:
        `(spec, question_family_index)`: a spec for `answer_question` and the template's index (0-16).

    Raises:
        ValueError: the text does not follow any of the generator's templates.
    """
    text = text.strip()
    for family, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        kind = next(k for k, families in FAMILIES.items() if family in families)
        if kind in ("exist", "count"):
            return {"kind": kind, "objects": _filter_from_match(match, "a")}, family
        if kind.startswith("query_"):
            return {"kind": kind, "object": _filter_from_match(match, "a")}, family
        if kind == "compare_count":
            op = {10: "more", 11: "fewer"}.get(family, "equal")
            filters = [_filter_from_match(match, "a"), _filter_from_match(match, "b")]
            return {"kind": kind, "op": op, "objects": filters}, family
        spec = {"kind": "spatial", "relation": _WORD_RELATION[match.group("rel")]}
        spec["reference"] = _filter_from_match(match, "b")
        if family == 14:
            spec["object"] = _filter_from_match(match, "a")
        else:
            spec["query"] = "color" if family == 15 else "shape"
        return spec, family
    raise ValueError(f"not a question of the CLEVR-style templates: {text!r}")


# ----------------------------------------------------------------------------------------------- the generator


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
            if _select(objects, spec) == [index]:
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
            if not _select(objects, candidate):
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
        if first == second or not (_select(objects, first) or _select(objects, second)):
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


def _relationships(objects: list[dict], margin: float) -> dict[str, list[list[int]]]:
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


def _make_scene(rng: random.Random, width: int, height: int, min_objects: int, max_objects: int) -> list[dict]:
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
    return [render_scene(_make_scene(rng, width, height, 3, 6), width, height) for _ in range(num_images)]


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
    _check_output_dir(output_dir)

    num_val = round(num_images * val_fraction)
    counts = {"train": num_images - num_val, "val": num_val}
    if counts["train"] < 1:
        raise ConfigurationError(f"val_fraction={val_fraction} leaves no training image out of {num_images}")
    scale = min(width / IMAGE_SIZE[0], height / IMAGE_SIZE[1])
    margin = RELATION_MARGIN * scale
    directions = {
        "left": [-1.0, 0.0, 0.0],
        "right": [1.0, 0.0, 0.0],
        "behind": [0.0, 1.0, 0.0],
        "front": [0.0, -1.0, 0.0],
        "above": [0.0, 0.0, 1.0],
        "below": [0.0, 0.0, -1.0],
    }
    summary: dict = {"output_dir": output_dir, "seed": seed, "splits": {}, "question_types": Counter()}
    for split, count in counts.items():
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
            "seed": seed,
            "image_size": [width, height],
        }
        scenes, questions = [], []
        for index in range(count):
            rng = random.Random(f"hfgen-clevr/{seed}/{split}/{index}")
            filename = f"CLEVR_{split}_{index:06d}.png"
            objects = _make_scene(rng, width, height, min_objects, max_objects)
            scene = {
                "split": split,
                "image_index": index,
                "image_filename": filename,
                "objects": objects,
                "relationships": _relationships(objects, margin),
                "directions": directions,
            }
            scenes.append(scene)
            render_scene(objects, width, height).save(os.path.join(image_dir, filename))
            start = index * questions_per_image
            kinds = [QUESTION_TYPES[(start + q) % len(QUESTION_TYPES)] for q in range(questions_per_image)]
            for text, spec, family in _questions_for_scene(scene, rng, kinds, questions_per_image):
                questions.append(
                    {
                        "image_index": index,
                        "split": split,
                        "image_filename": filename,
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
