"""`hfgen demo`'s VQA tab: an image (upload, or a CLEVR scene of the adapter's data) and a question, the answer of
PaliGemma with the LoRA adapter of a `hfgen vqa finetune` folder."""

from __future__ import annotations

import glob
import os

from PIL import Image

from hfgen.demo.common import DemoInputError, DemoModel
from hfgen.errors import CheckpointError


class VQADemo(DemoModel):
    """A fine-tuned adapter folder: its base model (the tiny one saved in the folder, or ``model_name_or_path`` of
    its ``training_args.json``) with the adapter attached.

    Raises:
        CheckpointError: a folder without ``training_args.json`` or an adapter that does not load.
    """

    kind = "vqa"

    def __init__(self, folder: str):
        from hfgen.output_folder.layout import read_training_args
        from hfgen.vqa.evaluation import attach_adapter
        from hfgen.vqa.modeling import load_base_model

        super().__init__(folder)
        args = read_training_args(folder)
        if args is None:
            raise CheckpointError(f"{folder} has no training_args.json; pass the --output_dir of hfgen vqa finetune")
        tiny = bool(args.get("tiny"))
        model, processor = load_base_model(
            None if tiny else args.get("model_name_or_path"),
            tiny=tiny,
            clevr_dir=args.get("clevr_dir"),
            adapter=folder,
            seed=int(args.get("seed") or 0),
        )
        self.model, self.processor = attach_adapter(model, processor, folder)
        self.model.eval()
        clevr_dir = args.get("clevr_dir") or ""
        pattern = os.path.join(clevr_dir, "**", "images", "val", "*.png")
        self.example_images = sorted(glob.glob(pattern, recursive=True))[:4] if clevr_dir else []

    @property
    def family(self) -> str:
        return "VQA"

    def answer(self, image, question) -> str:
        """The model's greedy answer to ``question`` about ``image`` (a PIL image or a file path).

        Raises:
            DemoInputError: no image, no question, or a file that is not an image.
        """
        from hfgen.vqa.evaluation import generate_answers, normalize_answer

        if image is None:
            raise DemoInputError("upload an image (or pick a CLEVR scene) first")
        if not question or not str(question).strip():
            raise DemoInputError("type a question")
        try:
            if not isinstance(image, Image.Image):
                image = Image.open(image)
            image = image.convert("RGB")
        except (OSError, ValueError, AttributeError) as err:
            raise DemoInputError(f"this file is not an image hfgen can read ({type(err).__name__})") from None
        with self._lock:
            raw = generate_answers(
                self.model, self.processor, [{"image": image, "question": str(question)}], show_progress=False
            )[0]
        return normalize_answer(raw) or raw.strip()
