"""Sample-quality and likelihood metrics: pure scores of tensors (features, FID/KID/CMMD, precision/recall/density/
coverage, likelihood, ROUGE). The jobs that load a folder, sample and write results live in `hfgen.jobs`."""

from pathlib import Path

# hfgen's own ROUGE `evaluate` module (a script shipped as package data, not an importable module of hfgen):
# `evaluate.load(ROUGE_PATH)` loads it from this local file, offline, without looking at the Hub.
ROUGE_PATH = str(Path(__file__).resolve().parent / "rouge" / "rouge.py")
