"""CLEVR visual question answering data: the official ``CLEVR_v1.0`` folder and an offline CLEVR-style generator.

Source: J. Johnson, B. Hariharan, L. van der Maaten, L. Fei-Fei, C. L. Zitnick and R. Girshick, "CLEVR: A Diagnostic
Dataset for Compositional Language and Elementary Visual Reasoning", CVPR 2017 (https://arxiv.org/abs/1612.06890).

- `load_clevr` reads the official layout (``ROOT/images/{split}/*.png``,
  ``ROOT/questions/CLEVR_{split}_questions.json``) into a `datasets.Dataset` whose images are read lazily from disk.
- `make_clevr_dataset` draws CLEVR-style 2-D scenes with PIL (CLEVR's 8 colours, 2 sizes, 3 shapes, rubber) and
  writes them in exactly that layout, plus ``scenes/CLEVR_{split}_scenes.json`` in CLEVR's scene format and
  questions from templates of CLEVR's kinds, so that everything downstream runs without the 18 GB download.
- `answer_question` evaluates a question spec on a scene (ours or real CLEVR's) and `parse_question` turns a
  generated question back into its spec.
  (The answer normalisation of the VQA evaluator is `hfgen.vqa.evaluation.normalize_answer`.)

In the generated 2-D world "behind" means higher up in the image and "in front of" lower down, the way CLEVR's
camera sees its floor; the ``relationships`` of a scene follow CLEVR: ``relationships["left"][i]`` lists the
objects that are left of object ``i``.

The package: `vocabulary` (CLEVR's names and the scene geometry), `loading` (the official layout), `questions`
(specs, answers, text, parsing), `scenes` (placement, relationships, rendering), `synthetic` (the generator).
"""

from hfgen.data.clevr import loading, questions, scenes, synthetic, vocabulary
from hfgen.data.clevr.loading import *  # noqa: F403 (each submodule's __all__ is the package's)
from hfgen.data.clevr.questions import *  # noqa: F403
from hfgen.data.clevr.scenes import *  # noqa: F403
from hfgen.data.clevr.synthetic import *  # noqa: F403
from hfgen.data.clevr.vocabulary import *  # noqa: F403

__all__ = sorted({*loading.__all__, *questions.__all__, *scenes.__all__, *synthetic.__all__, *vocabulary.__all__})
