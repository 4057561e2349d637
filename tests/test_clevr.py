"""CLEVR data (`hfgen.data.clevr`): the official-layout loader and the offline CLEVR-style generator.

The answers of generated questions are recomputed here by an evaluator written independently of the generator:
it parses the question text with its own patterns and evaluates it on the objects of the scenes JSON, using their
pixel coordinates (not the stored ``relationships``) for spatial questions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter

import datasets
import numpy as np
import pytest
from PIL import Image

from hfgen.data.clevr import (
    CLEVR_ANSWERS,
    CLEVR_COLORS,
    QUESTION_TYPES,
    answer_question,
    load_clevr,
    make_clevr_dataset,
    parse_question,
    question_type_from_program,
    split_clevr_by_image,
)
from hfgen.errors import ConfigurationError, DatasetError
from hfgen.vqa.evaluation import normalize_answer

SIZES = ["small", "large"]
COLORS = ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"]
SHAPES = ["cube", "sphere", "cylinder"]
VOCABULARY = {"yes", "no", *map(str, range(11)), *COLORS, *SIZES, *SHAPES, "rubber", "metal"}
KINDS = {"exist", "count", "query_color", "query_shape", "query_size", "compare_count", "spatial"}
QUESTION_KEYS = {
    "image_index",
    "split",
    "image_filename",
    "question",
    "answer",
    "question_family_index",
    "question_index",
    "question_type",
}
COLUMNS = {"image", "question", "answer", "question_family_index", "image_filename", "question_type"}
EDGE = {"large": 64, "small": 36}  # documented object sizes at 480x320
MIN_GAP = 10  # documented empty pixels between bounding boxes
SPATIAL_MARGIN = 16  # documented minimum centre distance for spatial questions


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """300 generated images (240 train, 60 val) in tmp/CLEVR_v1.0: (root, summary)."""
    parent = tmp_path_factory.mktemp("clevr")
    root = parent / "CLEVR_v1.0"
    summary = make_clevr_dataset(root, num_images=300, seed=0, val_fraction=0.2)
    return root, summary


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def split_files(root, split):
    questions = read_json(root / "questions" / f"CLEVR_{split}_questions.json")
    scenes = read_json(root / "scenes" / f"CLEVR_{split}_scenes.json")
    return questions, scenes


# ------------------------------------------------------------------------------ an independent evaluator


def parse_phrase(phrase: str) -> dict:
    """'large red things' -> {'size': 'large', 'color': 'red', 'shape': None}."""
    *words, noun = phrase.split()
    noun = noun[:-1] if noun.endswith("s") and noun[:-1] in SHAPES + ["thing", "object"] else noun
    assert noun in SHAPES + ["thing", "object"], phrase
    spec = {"size": None, "color": None, "shape": noun if noun in SHAPES else None}
    for word in words:
        key = "size" if word in SIZES else "color" if word in COLORS else None
        assert key is not None and spec[key] is None, phrase
        spec[key] = word
    return spec


def matching(objects, spec) -> list[int]:
    return [i for i, o in enumerate(objects) if all(v is None or o[k] == v for k, v in spec.items())]


def the_one(objects, spec) -> int:
    found = matching(objects, spec)
    assert len(found) == 1, f"ambiguous or empty reference {spec}: {len(found)} objects"
    return found[0]


def is_related(objects, a: int, b: int, relation: str) -> bool:
    """Is object a `relation` of object b, from pixel coordinates (up in the image = behind)."""
    (xa, ya), (xb, yb) = objects[a]["pixel_coords"][:2], objects[b]["pixel_coords"][:2]
    return {"left of": xa < xb, "right of": xa > xb, "behind": ya < yb, "in front of": ya > yb}[relation]


RELATION = r"(left of|right of|behind|in front of)"
RULES = [
    ("exist", r"Are there any (.+)\?"),
    ("exist", r"Is there an? (.+)\?"),
    ("count", r"How many (.+) are there\?"),
    ("count", r"What number of (.+) are there\?"),
    ("more", r"Are there more (.+) than (.+)\?"),
    ("fewer", r"Are there fewer (.+) than (.+)\?"),
    ("equal", r"Are there an equal number of (.+) and (.+)\?"),
    ("equal", r"Is the number of (.+) the same as the number of (.+)\?"),
    ("spatial_query", rf"What (color|shape) is the (?:thing|object) {RELATION} the (.+)\?"),
    ("query", r"What (color|shape|size) is the (.+)\?"),
    ("query_reversed", r"The (.+) has what (color|shape|size)\?"),
    ("spatial", rf"Is the (.+?) {RELATION} the (.+)\?"),
]


def evaluate(question: str, objects: list[dict]) -> tuple[str, str]:
    """(question kind, answer) of a generated question on a scene's objects."""
    for rule, pattern in RULES:
        match = re.fullmatch(pattern, question)
        if match is None:
            continue
        groups = match.groups()
        if rule == "exist":
            return "exist", "yes" if matching(objects, parse_phrase(groups[0])) else "no"
        if rule == "count":
            return "count", str(len(matching(objects, parse_phrase(groups[0]))))
        if rule in ("more", "fewer", "equal"):
            a, b = (len(matching(objects, parse_phrase(g))) for g in groups)
            assert a + b > 0, f"a comparison of two empty sets: {question}"
            holds = {"more": a > b, "fewer": a < b, "equal": a == b}[rule]
            return "compare_count", "yes" if holds else "no"
        if rule in ("query", "query_reversed"):
            attribute, phrase = groups if rule == "query" else groups[::-1]
            spec = parse_phrase(phrase)
            assert spec[attribute] is None, f"the question gives its answer away: {question}"
            return f"query_{attribute}", objects[the_one(objects, spec)][attribute]
        if rule == "spatial_query":
            attribute, relation, phrase = groups
            b = the_one(objects, parse_phrase(phrase))
            related = [i for i in range(len(objects)) if i != b and is_related(objects, i, b, relation)]
            assert len(related) == 1, f"{len(related)} objects are {relation} the reference: {question}"
            return "spatial", objects[related[0]][attribute]
        if rule == "spatial":
            first, relation, second = groups
            a, b = the_one(objects, parse_phrase(first)), the_one(objects, parse_phrase(second))
            axis = 0 if relation in ("left of", "right of") else 1
            distance = abs(objects[a]["pixel_coords"][axis] - objects[b]["pixel_coords"][axis])
            assert distance >= SPATIAL_MARGIN, f"a borderline spatial question ({distance} px): {question}"
            return "spatial", "yes" if is_related(objects, a, b, relation) else "no"
    raise AssertionError(f"no template matches {question!r}")


# ---------------------------------------------------------------------------------------------- generator


def test_generated_folder_has_the_clevr_layout_and_keys(generated):
    root, summary = generated
    assert sorted(os.listdir(root)) == ["images", "questions", "scenes"]
    assert sorted(os.listdir(root / "images")) == ["train", "val"]
    assert sorted(os.listdir(root / "questions")) == ["CLEVR_train_questions.json", "CLEVR_val_questions.json"]
    assert sorted(os.listdir(root / "scenes")) == ["CLEVR_train_scenes.json", "CLEVR_val_scenes.json"]
    for split, count in (("train", 240), ("val", 60)):
        assert sorted(os.listdir(root / "images" / split)) == [f"CLEVR_{split}_{i:06d}.png" for i in range(count)]
        questions, scenes = split_files(root, split)
        assert set(questions) == {"info", "questions"} and set(scenes) == {"info", "scenes"}
        assert questions["info"]["split"] == split
        for position, question in enumerate(questions["questions"]):
            assert set(question) == QUESTION_KEYS
            assert question["split"] == split and question["question_index"] == position
            assert question["image_filename"] == f"CLEVR_{split}_{question['image_index']:06d}.png"
            assert isinstance(question["question_family_index"], int)
        assert [s["image_index"] for s in scenes["scenes"]] == list(range(count))
        for scene in scenes["scenes"]:
            assert {"split", "image_index", "image_filename", "objects", "relationships"} <= set(scene)
            assert scene["image_filename"] == f"CLEVR_{split}_{scene['image_index']:06d}.png"
            assert set(scene["relationships"]) == {"left", "right", "behind", "front"}
            assert 3 <= len(scene["objects"]) <= 6
            for obj in scene["objects"]:
                assert {"color", "size", "shape", "material", "pixel_coords"} <= set(obj)
                assert obj["color"] in COLORS and obj["size"] in SIZES and obj["shape"] in SHAPES
                assert obj["material"] == "rubber" and len(obj["pixel_coords"]) == 3
        stats = summary["splits"][split]
        assert stats["images"] == count and stats["questions"] == len(questions["questions"])
        assert stats["question_types"] == dict(Counter(q["question_type"] for q in questions["questions"]))


def test_every_generated_answer_is_correct_for_its_scene(generated):
    root, _ = generated
    checked = 0
    family_kinds = {}
    for split in ("train", "val"):
        questions, scenes = split_files(root, split)
        scenes = scenes["scenes"]
        for question in questions["questions"]:
            scene = scenes[question["image_index"]]
            kind, answer = evaluate(question["question"], scene["objects"])
            assert answer == question["answer"], (question, scene["objects"])
            assert kind == question["question_type"], question
            family_kinds.setdefault(question["question_family_index"], set()).add(kind)
            # The library's own parser and evaluator agree too (they use the stored relationships).
            spec, family = parse_question(question["question"])
            assert family == question["question_family_index"]
            assert answer_question(scene, spec) == answer
            checked += 1
    assert checked == 3000  # 300 images x 10 questions
    assert all(len(kinds) == 1 for kinds in family_kinds.values()), family_kinds  # a family is one template


def test_relationships_follow_clevr_convention(generated):
    root, _ = generated
    _, scenes = split_files(root, "val")
    for scene in scenes["scenes"]:
        objects = scene["objects"]
        for relation, words in (
            ("left", "left of"),
            ("right", "right of"),
            ("behind", "behind"),
            ("front", "in front of"),
        ):
            for i, related in enumerate(scene["relationships"][relation]):
                assert i not in related
                # relationships[rel][i] lists the objects that are rel of object i
                assert all(is_related(objects, j, i, words) for j in related)


def test_answers_are_in_clevr_vocabulary_and_balanced(generated):
    root, summary = generated
    assert set(CLEVR_ANSWERS) == VOCABULARY and len(CLEVR_ANSWERS) == 28
    assert list(CLEVR_COLORS) == COLORS and CLEVR_COLORS["red"] == (173, 35, 35)
    questions = split_files(root, "train")[0]["questions"] + split_files(root, "val")[0]["questions"]
    answers = Counter(q["answer"] for q in questions)
    assert set(answers) <= VOCABULARY
    assert set(COLORS) <= set(answers) and set(SHAPES) <= set(answers) and set(SIZES) <= set(answers)
    assert 0.4 <= answers["yes"] / (answers["yes"] + answers["no"]) <= 0.6
    for kind in ("exist", "compare_count", "spatial"):
        yes_no = Counter(q["answer"] for q in questions if q["question_type"] == kind and q["answer"] in ("yes", "no"))
        assert 0.3 <= yes_no["yes"] / sum(yes_no.values()) <= 0.7, (kind, yes_no)


def test_all_question_kinds_and_templates_appear(generated):
    root, summary = generated
    assert set(QUESTION_TYPES) == KINDS
    kinds = Counter(q["question_type"] for q in split_files(root, "train")[0]["questions"])
    assert set(kinds) == KINDS
    total = sum(kinds.values())
    assert all(count / total >= 0.1 for count in kinds.values()), kinds  # balanced: 1/7 = 0.14 each
    families = {
        q["question_family_index"] for split in ("train", "val") for q in split_files(root, split)[0]["questions"]
    }
    assert families == set(range(17))
    assert summary["question_types"] == {
        k: summary["splits"]["train"]["question_types"].get(k, 0)
        + summary["splits"]["val"]["question_types"].get(k, 0)
        for k in KINDS
    }


def test_objects_do_not_overlap_and_are_drawn_where_the_scene_says(generated):
    root, _ = generated
    silhouettes = {shape: [] for shape in SHAPES}
    for split in ("train", "val"):
        for scene in split_files(root, split)[1]["scenes"]:
            boxes = []
            for obj in scene["objects"]:
                x, y = obj["pixel_coords"][:2]
                edge = EDGE[obj["size"]]
                box = obj["bbox"]
                assert box[2] - box[0] == edge and box[3] - box[1] == edge
                assert box[0] <= x < box[2] and box[1] <= y < box[3]
                assert abs((box[0] + box[2]) / 2 - x) <= 1 and abs((box[1] + box[3]) / 2 - y) <= 1
                assert 0 <= box[0] and box[2] <= 480 and 0 <= box[1] and box[3] <= 320
                boxes.append(box)
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    gap_x = max(b[0] - a[2], a[0] - b[2])
                    gap_y = max(b[1] - a[3], a[1] - b[3])
                    assert max(gap_x, gap_y) >= MIN_GAP, (scene["image_filename"], a, b)
            if scene["image_index"] >= 15:  # pixels: a sample of the images is enough
                continue
            image = np.asarray(Image.open(root / "images" / split / scene["image_filename"]), dtype=np.int64)
            assert image.shape == (320, 480, 3)
            for obj in scene["objects"]:
                x, y = obj["pixel_coords"][:2]
                assert np.abs(image[y, x] - CLEVR_COLORS[obj["color"]]).max() <= 2, obj
                x0, y0, x1, y1 = obj["bbox"]
                floor = image[y0:y1, :1]  # the left-most column is always floor (objects keep off the border)
                drawn = np.abs(image[y0:y1, x0:x1] - floor).max(-1) > 12
                silhouettes[obj["shape"]].append(drawn.mean())
    # the three shapes have different silhouettes: squares fill their box, circles pi/4, cylinders about 2/3
    assert min(silhouettes["cube"]) > 0.97
    assert 0.74 < min(silhouettes["sphere"]) and max(silhouettes["sphere"]) < 0.85
    assert 0.58 < min(silhouettes["cylinder"]) and max(silhouettes["cylinder"]) < 0.71


def test_generator_is_deterministic_and_regenerates_in_place(tmp_path):
    first = make_clevr_dataset(tmp_path / "a", num_images=6, seed=3, questions_per_image=5)
    make_clevr_dataset(tmp_path / "b", num_images=6, seed=3, questions_per_image=5)
    make_clevr_dataset(tmp_path / "c", num_images=6, seed=4, questions_per_image=5)
    for relative in ("questions/CLEVR_train_questions.json", "scenes/CLEVR_val_scenes.json"):
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()
        assert (tmp_path / "a" / relative).read_bytes() != (tmp_path / "c" / relative).read_bytes()
    png = "images/train/CLEVR_train_000004.png"
    assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
    assert first["splits"]["train"]["images"] == 5 and first["splits"]["val"]["images"] == 1
    # regenerating into the same folder replaces the earlier files, stale images included
    make_clevr_dataset(tmp_path / "a", num_images=3, seed=3, val_fraction=0.0, questions_per_image=5)
    assert sorted(os.listdir(tmp_path / "a" / "images" / "train")) == [f"CLEVR_train_{i:06d}.png" for i in range(3)]
    assert os.listdir(tmp_path / "a" / "images" / "val") == []
    with pytest.raises(DatasetError, match="zero questions"):
        load_clevr(tmp_path / "a", split="val")


def test_generator_scales_to_other_image_sizes(tmp_path):
    summary = make_clevr_dataset(tmp_path, num_images=3, image_size=(240, 160), val_fraction=0.0)
    assert summary["splits"]["train"]["questions"] == 30
    dataset = load_clevr(tmp_path, split="train")
    assert dataset[0]["image"].size == (240, 160)
    for scene in split_files(tmp_path, "train")[1]["scenes"]:
        for obj in scene["objects"]:
            x0, y0, x1, y1 = obj["bbox"]
            assert x1 - x0 == EDGE[obj["size"]] // 2 and 0 <= x0 and x1 <= 240 and 0 <= y0 and y1 <= 160


def test_generator_refuses_bad_arguments_and_foreign_folders(tmp_path):
    with pytest.raises(ConfigurationError, match="val_fraction"):
        make_clevr_dataset(tmp_path / "x", num_images=4, val_fraction=1.0)
    with pytest.raises(ConfigurationError, match="num_images"):
        make_clevr_dataset(tmp_path / "x", num_images=0)
    official = write_official_fixture(tmp_path / "real")
    with pytest.raises(DatasetError, match="did not write"):
        make_clevr_dataset(official, num_images=2)
    assert (official / "images" / "train" / "CLEVR_train_000000.png").exists()


# ------------------------------------------------------------------------------------------------- loader


def test_load_clevr_reads_generated_set_lazily_as_rgb(generated):
    root, _ = generated
    questions = split_files(root, "val")[0]["questions"]
    dataset = load_clevr(root, split="val")
    assert isinstance(dataset, datasets.Dataset)
    assert len(dataset) == len(questions) == 600
    assert set(dataset.column_names) == COLUMNS
    assert isinstance(dataset.features["image"], datasets.Image)
    assert dataset["question"] == [q["question"] for q in questions]
    assert dataset["answer"] == [q["answer"] for q in questions]
    assert dataset["question_type"] == [q["question_type"] for q in questions]
    assert dataset["question_family_index"] == [q["question_family_index"] for q in questions]
    row = dataset[7]
    assert row["image"].mode == "RGB" and row["image"].size == (480, 320)
    assert row["image_filename"] == questions[7]["image_filename"]
    stored = dataset.cast_column("image", datasets.Image(decode=False))[7]["image"]
    assert stored["bytes"] is None and stored["path"].endswith(questions[7]["image_filename"])  # read lazily


def test_load_clevr_root_may_be_the_folder_or_its_parent(generated):
    root, _ = generated
    from_parent = load_clevr(root.parent, split="val", max_questions=30)
    from_folder = load_clevr(root, split="val", max_questions=30)
    assert from_parent["question"] == from_folder["question"]
    assert from_parent["image_filename"] == from_folder["image_filename"]


def test_max_questions_subsamples_deterministically(generated):
    root, _ = generated
    full = load_clevr(root, split="val")
    every = list(zip(full["image_filename"], full["question"]))
    first = load_clevr(root, split="val", max_questions=25, seed=1)
    again = load_clevr(root, split="val", max_questions=25, seed=1)
    other = load_clevr(root, split="val", max_questions=25, seed=2)
    assert len(first) == 25 and first["question"] == again["question"]
    assert first["image_filename"] == again["image_filename"]
    assert first["question"] != other["question"]
    positions = [every.index(key) for key in zip(first["image_filename"], first["question"])]
    assert positions == sorted(set(positions))  # a subset, kept in file order
    assert len(load_clevr(root, split="val", max_questions=10_000)) == len(every)
    with pytest.raises(ConfigurationError, match="max_questions"):
        load_clevr(root, split="val", max_questions=0)


def test_load_clevr_errors_name_the_problem_and_the_fix(generated, tmp_path):
    root, _ = generated
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="does not exist") as error:
        load_clevr(missing)
    assert str(missing) in str(error.value) and "make_clevr_dataset" in str(error.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    expected = os.path.join(str(empty), "questions", "CLEVR_train_questions.json")
    with pytest.raises(DatasetError, match="no questions file") as error:
        load_clevr(empty)
    assert expected in str(error.value)

    with pytest.raises(DatasetError, match="split 'test'") as error:
        load_clevr(root, split="test")
    assert "CLEVR_test_questions.json" in str(error.value) and "available splits: train, val" in str(error.value)

    broken = tmp_path / "broken" / "CLEVR_v1.0"
    shutil.copytree(root / "questions", broken / "questions")
    shutil.copytree(root / "images" / "val", broken / "images" / "val")
    with pytest.raises(DatasetError, match="no image folder") as error:
        load_clevr(broken.parent, split="train")
    assert os.path.join(str(broken), "images", "train") in str(error.value)
    os.remove(broken / "images" / "val" / "CLEVR_val_000003.png")
    with pytest.raises(DatasetError, match="do not exist") as error:
        load_clevr(broken.parent, split="val")
    assert os.path.join(str(broken), "images", "val", "CLEVR_val_000003.png") in str(error.value)

    (broken / "questions" / "CLEVR_val_questions.json").write_text(json.dumps({"info": {}, "questions": []}))
    with pytest.raises(DatasetError, match="zero questions"):
        load_clevr(broken, split="val")


def program(*functions):
    """A CLEVR v1.0 program: a chain of nodes, each taking the previous one as input."""
    nodes = [{"inputs": [], "function": "scene", "value_inputs": []}]
    for function in functions:
        values = [function.split(":")[1]] if ":" in function else []
        nodes.append({"inputs": [len(nodes) - 1], "function": function.split(":")[0], "value_inputs": values})
    return nodes


def write_official_fixture(base):
    """A tiny CLEVR_v1.0 folder as the official download lays it out (3 train images, 1 test image)."""
    root = base / "CLEVR_v1.0"
    for split, modes in (("train", ("RGBA", "L", "RGB")), ("test", ("RGBA",))):
        (root / "images" / split).mkdir(parents=True)
        for index, mode in enumerate(modes):
            Image.new(mode, (480, 320), 120).save(root / "images" / split / f"CLEVR_{split}_{index:06d}.png")
    (root / "questions").mkdir()

    def entry(index, image_index, question, answer, family, nodes, split="train"):
        out = {
            "image_index": image_index,
            "program": nodes,
            "question_index": index,
            "image_filename": f"CLEVR_{split}_{image_index:06d}.png",
            "question_family_index": family,
            "split": split,
            "question": question,
        }
        if answer is not None:
            out["answer"] = answer
        return out

    train = [
        entry(
            0, 0, "Are there any large cubes?", "yes", 38, program("filter_size:large", "filter_shape:cube", "exist")
        ),
        entry(1, 0, "How many red things are there?", "2", 40, program("filter_color:red", "count")),
        entry(
            2,
            1,
            "What material is the big sphere?",
            "metal",
            47,
            program("filter_shape:sphere", "unique", "query_material"),
        ),
        entry(
            3,
            1,
            "Are there more cubes than spheres?",
            "no",
            5,
            [
                {"inputs": [], "function": "scene", "value_inputs": []},
                {"inputs": [0], "function": "filter_shape", "value_inputs": ["cube"]},
                {"inputs": [1], "function": "count", "value_inputs": []},
                {"inputs": [], "function": "scene", "value_inputs": []},
                {"inputs": [3], "function": "filter_shape", "value_inputs": ["sphere"]},
                {"inputs": [4], "function": "count", "value_inputs": []},
                {"inputs": [2, 5], "function": "greater_than", "value_inputs": []},
            ],
        ),
        entry(
            4,
            2,
            "What color is the thing left of the cube?",
            "cyan",
            60,
            program("filter_shape:cube", "unique", "relate:left", "unique", "query_color"),
        ),
        entry(5, 2, "Is the cube the same color as the sphere?", "no", 70, program("equal_color")),
        entry(6, 2, "Odd program", "yes", 71, program("mystery_function")),
        # the older generator format names a node's function "type"
        entry(
            7,
            2,
            "What shape is the small thing?",
            "cylinder",
            45,
            [
                {"type": "scene", "inputs": []},
                {"type": "filter_size", "inputs": [0], "side_inputs": ["small"]},
                {"type": "unique", "inputs": [1]},
                {"type": "query_shape", "inputs": [2]},
            ],
        ),
    ]
    info = {
        "split": "train",
        "license": "Creative Commons Attribution (CC BY 4.0)",
        "version": "1.0",
        "date": "2/14/2017",
    }
    (root / "questions" / "CLEVR_train_questions.json").write_text(json.dumps({"info": info, "questions": train}))
    test = [entry(0, 0, "How many spheres are there?", None, 40, program("filter_shape:sphere", "count"), "test")]
    (root / "questions" / "CLEVR_test_questions.json").write_text(json.dumps({"info": info, "questions": test}))
    return root


def test_official_format_fixture_loads_with_types_from_programs(tmp_path):
    root = write_official_fixture(tmp_path)
    dataset = load_clevr(tmp_path, split="train")
    assert len(dataset) == 8 and set(dataset.column_names) == COLUMNS
    assert dataset["question_type"] == [
        "exist",
        "count",
        "query_material",
        "compare_count",
        "query_color",
        "compare_attribute",
        "unknown",
        "query_shape",
    ]
    assert dataset["answer"][:3] == ["yes", "2", "metal"]
    assert dataset["question_family_index"][:3] == [38, 40, 47]
    for row in dataset:  # RGBA, L and RGB files all come out RGB 480x320
        assert row["image"].mode == "RGB" and row["image"].size == (480, 320)

    test = load_clevr(root, split="test")
    assert test["answer"] == [None] and test["question_type"] == ["count"]
    with pytest.raises(DatasetError, match="no answer"):
        load_clevr(root, split="test", require_answers=True)


def test_question_type_from_program_edge_cases():
    assert question_type_from_program(None) == "unknown"
    assert question_type_from_program([]) == "unknown"
    assert question_type_from_program(program("filter_color:red", "count", "equal_integer")) == "compare_count"
    assert question_type_from_program(program("less_than")) == "compare_count"


# ----------------------------------------------------------------------------------- helpers for evaluation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Yes", "yes"),
        ("  no.  ", "no"),
        ("The Sphere.", "sphere"),
        ("a cube", "cube"),
        ("an object", "object"),
        ("Two", "2"),
        ("ten!", "10"),
        ("zero", "0"),
        ("3", "3"),
        ("Colour", "color"),
        ("grey", "gray"),
        ("the   large  Cube?", "large cube"),
        (None, ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_answer_question_refuses_ambiguous_references():
    scene = {
        "objects": [
            {"size": "large", "color": "red", "material": "rubber", "shape": "cube", "pixel_coords": [10, 10, 9]},
            {"size": "small", "color": "red", "material": "rubber", "shape": "cube", "pixel_coords": [90, 10, 9]},
        ],
        "relationships": {"left": [[], [0]], "right": [[1], []], "behind": [[], []], "front": [[], []]},
    }
    red = {"size": None, "color": "red", "material": None, "shape": None}
    with pytest.raises(ValueError, match="2 objects"):
        answer_question(scene, {"kind": "query_size", "object": red})
    assert answer_question(scene, {"kind": "count", "objects": red}) == "2"
    large = dict(red, size="large")
    small = dict(red, size="small")
    assert (
        answer_question(scene, {"kind": "spatial", "relation": "left", "object": large, "reference": small}) == "yes"
    )
    assert (
        answer_question(scene, {"kind": "spatial", "relation": "left", "reference": small, "query": "size"}) == "large"
    )
    with pytest.raises(ValueError):
        parse_question("What is the meaning of life?")


def test_split_by_image_keeps_every_question_once_and_no_image_in_both_parts(generated, tmp_path):
    root, _ = generated
    summary = split_clevr_by_image(root, tmp_path / "split", num_held_out_images=20, seed=0)
    assert summary["val"]["images"] == 20 and summary["train"]["images"] == 220  # the 240 train images
    train, val = load_clevr(tmp_path / "split", "train"), load_clevr(tmp_path / "split", "val")
    assert not set(train["image_filename"]) & set(val["image_filename"])
    original = load_clevr(root, "train")
    assert len(train) + len(val) == len(original) == summary["train"]["questions"] + summary["val"]["questions"]
    parts = list(zip(train["question"], train["answer"])) + list(zip(val["question"], val["answer"]))
    assert sorted(parts) == sorted(zip(original["question"], original["answer"]))
    scenes = read_json(tmp_path / "split" / "scenes" / "CLEVR_val_scenes.json")["scenes"]
    assert sorted(s["image_filename"] for s in scenes) == sorted(set(val["image_filename"]))
    # the same seed picks the same images; another seed other ones
    again = split_clevr_by_image(root, tmp_path / "again", num_held_out_images=20, seed=0)
    other = split_clevr_by_image(root, tmp_path / "other", num_held_out_images=20, seed=1)
    assert again["val"] == summary["val"]
    assert set(load_clevr(tmp_path / "other", "val")["image_filename"]) != set(val["image_filename"])
    assert other["val"]["images"] == 20


def test_split_by_image_refuses_bad_sizes_and_a_used_folder(generated, tmp_path):
    root, _ = generated
    with pytest.raises(ConfigurationError, match="between 1 and 239"):
        split_clevr_by_image(root, tmp_path / "a", num_held_out_images=240)
    split_clevr_by_image(root, tmp_path / "b", num_held_out_images=5)
    with pytest.raises(DatasetError, match="already holds a CLEVR set"):
        split_clevr_by_image(root, tmp_path / "b", num_held_out_images=5)
