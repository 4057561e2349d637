"""scripts/reproduce.py end to end with --smoke (2 training steps per model) on the real MNIST data.

Skipped when ../shared/data is absent (a user's fresh clone). The numbers of a 2-step run mean nothing; these tests
check that every recipe runs, writes its table with every row and its figures, and that the table's numbers are the
ones its models give (finite, in range).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not (DATA / "mnist").is_dir(), reason="../shared/data (real data sets) is absent")


def run(tmp_path, *names):
    command = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--smoke", "--output_dir", str(tmp_path)]
    result = subprocess.run([*command, "--only", *names], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", text)]


def test_mnist_autoencoder_and_vae_recipes(tmp_path):
    out = run(tmp_path, "mnist-autoencoder", "mnist-vae")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"mnist-autoencoder", "mnist-vae"}
    for name, entry in summary.items():
        table = (tmp_path / name / "table.md").read_text()
        assert table.strip() in out  # what is printed is what is written
        assert f"## {name} (wall time" in out
        for figure in entry["figures"]:
            with Image.open(figure) as image:
                assert image.format == "PNG" and min(image.size) > 100
    autoencoder = (tmp_path / "mnist-autoencoder" / "table.md").read_text()
    assert "2000 images" in autoencoder  # the held-out MNIST part
    assert len(re.findall(r"overlap \d / \d", autoencoder)) == 3
    accuracy = float(re.search(r"10-NN digit accuracy of the held-out 2-D codes \| ([\d.]+)", autoencoder).group(1))
    assert 0.0 <= accuracy <= 1.0
    vae = (tmp_path / "mnist-vae" / "table.md").read_text()
    assert "`--latent_dim 2`" in vae and "`--latent_dim 100`" in vae
    assert all(value == value and abs(value) < 1e6 for value in numbers(vae))  # finite
    assert "floor" in vae and "bits/dim" in vae


def test_unknown_recipe_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--only", "nope", "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid choice: 'nope'" in result.stderr
