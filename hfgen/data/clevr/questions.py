"""CLEVR question specs: matching objects, answering a spec on a scene (ours or real CLEVR's), the question text of
each template family, and parsing a generated question back into its spec."""

from __future__ import annotations

import re

from hfgen.data.clevr.vocabulary import (
    ATTRIBUTES,
    CLEVR_COLORS,
    CLEVR_SHAPES,
    QUESTION_TYPES,
    RELATION_WORDS,
    RELATIONS,
)


def _matches(obj: dict, spec: dict) -> bool:
    return all(spec.get(key) is None or obj.get(key) == spec[key] for key in ATTRIBUTES)


def select_objects(objects: list[dict], spec: dict) -> list[int]:
    return [i for i, obj in enumerate(objects) if _matches(obj, spec)]


def _unique(objects: list[dict], spec: dict, what: str) -> int:
    found = select_objects(objects, spec)
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
        return "yes" if select_objects(objects, spec["objects"]) else "no"
    if kind == "count":
        return str(len(select_objects(objects, spec["objects"])))
    if kind in ("query_color", "query_shape", "query_size", "query_material"):
        return objects[_unique(objects, spec["object"], "the object")][kind.removeprefix("query_")]
    if kind == "compare_count":
        first, second = (len(select_objects(objects, f)) for f in spec["objects"])
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


__all__ = [
    "FAMILIES",
    "answer_question",
    "describe",
    "parse_question",
    "question_text",
    "select_objects",
]
