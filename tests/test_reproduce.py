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


def test_mnist_ddpm_recipe_compares_samplers_against_the_floor(tmp_path):
    out = run(tmp_path, "mnist-ddpm")
    table = check_written(tmp_path, out, ["mnist-ddpm"])["mnist-ddpm"]
    rows = json.loads((tmp_path / "mnist-ddpm" / "model" / "sampler_comparison.json").read_text())
    assert [(r["scheduler"], r["num_inference_steps"]) for r in rows][:2] == [("ddpm", 50), ("ddim", 50)]
    floor = rows[0]["real_data_floor"]
    assert all(r["real_data_floor"] == floor for r in rows)  # one floor, written with every row
    assert "(best ≤ 25 steps)" in table and "real-data floor" in table
    for row in rows:  # the table's ratio is FID over the floor's FID
        assert f"{row['fid']:.2f} ({row['fid'] / floor['fid']:.1f}x floor)" in table


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


def check_written(tmp_path, out: str, names: list[str]) -> dict[str, str]:
    """Every recipe printed the table it wrote, and its figures are real PNGs; returns name -> table."""
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(names)
    tables = {}
    for name, entry in summary.items():
        tables[name] = (tmp_path / name / "table.md").read_text()
        assert tables[name].strip() in out and f"## {name} (wall time" in out
        assert entry["figures"]
        for figure in entry["figures"]:
            with Image.open(figure) as image:
                assert image.format == "PNG" and min(image.size) > 100
    return tables


def test_mnist_gan_recipes(tmp_path):
    out = run(tmp_path, "mnist-dcgan", "mnist-wgan")
    tables = check_written(tmp_path, out, ["mnist-dcgan", "mnist-wgan"])
    dcgan = tables["mnist-dcgan"]
    assert "without tricks" in dcgan and "--label_smoothing 0.1, --instance_noise 0.1" in dcgan
    for classes, entropy in re.findall(r"\| (\d+) / ([\d.]+) \|", dcgan):  # classes covered / entropy
        assert 1 <= int(classes) <= 10 and 0 <= float(entropy) <= 3.33
    for real, fake in re.findall(r"\| ([\d.]+) / ([\d.]+) \|$", dcgan, flags=re.M):  # D accuracy
        assert 0 <= float(real) <= 1 and 0 <= float(fake) <= 1
    wgan = tables["mnist-wgan"]
    assert re.search(r"^\| wgan \|", wgan, re.M) and re.search(r"^\| wgan-gp \|", wgan, re.M)
    assert all(value == value for value in numbers(wgan.replace("nan", "0.0")))


def test_flow_ood_recipes(tmp_path):
    out = run(tmp_path, "flow-ood-mnist", "flow-ood-cifar")
    tables = check_written(tmp_path, out, ["flow-ood-mnist", "flow-ood-cifar"])
    assert "CIFAR-10 (greyscale, 28x28)" in tables["flow-ood-mnist"]
    assert "MNIST (padded to 32, 3 channels)" in tables["flow-ood-cifar"]
    for table in tables.values():
        aurocs = [
            float(x) for row in re.findall(r"\| ((?:[\d.]+ \| ){2}[\d.]+) \|$", table, re.M) for x in row.split(" | ")
        ]
        assert aurocs and all(0 <= value <= 1 for value in aurocs)
    assert "PNG, all images tiled into one file" in tables["flow-ood-cifar"] and "| 3.49 |" in tables["flow-ood-cifar"]


def test_clevr_recipe_splits_by_image_and_compares_with_the_generator(tmp_path):
    out = run(tmp_path, "clevr-vqa")
    table = check_written(tmp_path, out, ["clevr-vqa"])["clevr-vqa"]
    split = tmp_path / "clevr-vqa" / "clevr-split" / "questions"
    train = json.loads((split / "CLEVR_train_questions.json").read_text())["questions"]
    val = json.loads((split / "CLEVR_val_questions.json").read_text())["questions"]
    assert len(train) + len(val) == 2670
    assert len({q["image_filename"] for q in val}) == 50 and len({q["image_filename"] for q in train}) == 217
    assert not {q["image_filename"] for q in val} & {q["image_filename"] for q in train}
    assert "majority answer per question type" in table and "question type `query_material`" in table
    assert "images / questions | 267 / 2670 | 27 / 270" in table


def test_readme_tables_are_the_ones_the_recipes_wrote():
    """Each recipe's README block (between its markers) holds exactly docs/reproduce/NAME/table.md, as
    `--update_docs` leaves it; a hand-edited number or a stale copy fails here. Runs without ../shared."""
    readme = (ROOT / "README.md").read_text()
    script = (ROOT / "scripts" / "reproduce.py").read_text()
    names = re.findall(r'^@recipe\("([\w-]+)"\)', script, flags=re.M)
    assert len(names) == 13
    for name in names:
        block = re.search(rf"<!-- reproduce:{name} -->\n(.*?)\n<!-- /reproduce:{name} -->", readme, flags=re.S)
        assert block, f"README has no table block for {name}"
        written = ROOT / "docs" / "reproduce" / name / "table.md"
        if not written.exists():
            assert block.group(1) == "Not run yet.", name
            continue
        assert re.match(r"Wall time of the recipe: \d+\.\d min\.\n\n", block.group(1)), name
        assert block.group(1).split("\n\n", 1)[1].strip() == written.read_text().strip(), name
