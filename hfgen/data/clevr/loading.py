"""Reading the official CLEVR layout (``ROOT/images/{split}/*.png``, ``ROOT/questions/CLEVR_{split}_questions.json``)
into a `datasets.Dataset`, and splitting a CLEVR folder by image."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import numpy as np

from hfgen.data.clevr.vocabulary import CLEVR_DOWNLOAD_URL, CLEVR_FOLDER, PROGRAM_QUESTION_TYPES
from hfgen.errors import ConfigurationError, DatasetError

logger = logging.getLogger(__name__)


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


def _checked_max_questions(max_questions) -> int | None:
    """``max_questions`` as an int (None stays None); ConfigurationError unless it is a positive integer."""
    if max_questions is not None and (int(max_questions) != max_questions or max_questions < 1):
        raise ConfigurationError(f"max_questions must be a positive integer or None, got {max_questions!r}")
    return None if max_questions is None else int(max_questions)


def _split_paths(base: str, split: str) -> tuple[str, str]:
    """``(questions file, image folder)`` of ``split`` under ``base``; DatasetError naming the one that is missing."""
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
    return questions_path, image_dir


def _read_questions(questions_path: str, split: str) -> list:
    """The ``questions`` list of a CLEVR questions file; DatasetError when unreadable, not CLEVR JSON or empty."""
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
    return questions


def _question_columns(
    questions: list, order, split: str, questions_path: str, image_dir: str
) -> tuple[dict[str, list], list[str], int]:
    """The `load_clevr` columns of the questions at ``order``, the image files they name that do not exist, and the
    number of questions without an answer; DatasetError for a question without text or image."""
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
    return columns, missing_images, missing_answers


def _clevr_features():
    """The `datasets.Features` of `load_clevr`'s rows (images decoded to RGB on access)."""
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(mode="RGB"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "question_family_index": datasets.Value("int64"),
            "image_filename": datasets.Value("string"),
            "question_type": datasets.Value("string"),
        }
    )


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

    max_questions = _checked_max_questions(max_questions)
    base = _resolve_clevr_root(root)
    questions_path, image_dir = _split_paths(base, split)
    questions = _read_questions(questions_path, split)
    order = range(len(questions))
    if max_questions is not None and max_questions < len(questions):
        order = np.sort(np.random.default_rng(seed).permutation(len(questions))[:max_questions]).tolist()
    columns, missing_images, missing_answers = _question_columns(questions, order, split, questions_path, image_dir)
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
    return datasets.Dataset.from_dict(columns, features=_clevr_features())


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
    images = sorted({_image_of(q, split) for q in questions})
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
    scenes = _read_scenes(os.path.join(base, "scenes", f"CLEVR_{split}_scenes.json"))
    info = data.get("info", {}) if isinstance(data, dict) else {}
    summary = {"output_dir": output_dir}
    for part in ("train", "val"):
        names = [name for name in images if part_of[name] == part]
        _link_images(os.path.join(base, "images", split), names, os.path.join(output_dir, "images", part))
        kept = [q for q in questions if part_of[_image_of(q, split)] == part]
        part_info = {**info, "split_of": f"{split} ({len(images)} images)", "held_out_seed": seed}
        _write_part(output_dir, "questions", part, {"info": part_info, "questions": kept})
        if scenes is not None:
            entries = scenes["scenes"] if isinstance(scenes, dict) else scenes
            kept_scenes = [entry for entry in entries if part_of.get(entry.get("image_filename")) == part]
            _write_part(output_dir, "scenes", part, {"info": part_info, "scenes": kept_scenes})
        summary[part] = {"images": len(names), "questions": len(kept)}
    return summary


def _image_of(question: dict, split: str) -> str:
    """The image file name of a CLEVR question (from ``image_index`` when it has no ``image_filename``)."""
    return question.get("image_filename") or f"CLEVR_{split}_{int(question['image_index']):06d}.png"


def _read_scenes(scenes_path: str):
    """The parsed CLEVR scenes file at ``scenes_path``, or None when there is none."""
    if not os.path.isfile(scenes_path):
        return None
    with open(scenes_path, encoding="utf-8") as handle:
        return json.load(handle)


def _link_images(source_dir: str, names: list[str], folder: str) -> None:
    """Symbolic links in ``folder`` (created) to the images ``names`` of ``source_dir``; copies where links fail."""
    os.makedirs(folder, exist_ok=True)
    for name in names:
        source, target = os.path.abspath(os.path.join(source_dir, name)), os.path.join(folder, name)
        try:
            os.symlink(source, target)
        except OSError:
            shutil.copyfile(source, target)


def _write_part(output_dir: str, kind: str, part: str, payload: dict) -> None:
    """Write ``payload`` as ``output_dir/{kind}/CLEVR_{part}_{kind}.json`` (``kind``: questions or scenes)."""
    os.makedirs(os.path.join(output_dir, kind), exist_ok=True)
    with open(os.path.join(output_dir, kind, f"CLEVR_{part}_{kind}.json"), "w") as handle:
        json.dump(payload, handle)


__all__ = [
    "load_clevr",
    "question_type_from_program",
    "split_clevr_by_image",
]
