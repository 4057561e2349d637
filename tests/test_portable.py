"""Portable output folders: stock `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` loads every
hfgen family without hfgen importable, and samples exactly what `hfgen.load_pipeline` samples."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from tiny_pipelines import tiny_pipelines

from hfgen import load_pipeline
from hfgen.models import VAEModel
from hfgen.pipelines import GANPipeline, VAEPipeline
from hfgen.pipelines.portable import bundle_source

pytestmark = pytest.mark.unit  # `make test-fast`

# name -> (keyword arguments of the call, whether it samples)
CALLS = {
    "vae": {"batch_size": 2},
    "cvae": {"batch_size": 2, "class_labels": [0, 2]},
    "gan": {"batch_size": 2},
    "cgan": {"batch_size": 2, "class_labels": ["b", "a"]},
    "flow": {"batch_size": 2},
    "ncsn": {"batch_size": 2},
    "cddpm": {"batch_size": 2, "class_labels": [1, 0], "num_inference_steps": 3, "guidance_scale": 2.0},
}


# Runs in a fresh interpreter in which `import hfgen` fails: only torch, diffusers and the folders' own source.
LOAD_WITHOUT_HFGEN = """
import json, sys
sys.modules["hfgen"] = None  # hfgen is not importable
import numpy as np, torch
from diffusers import DiffusionPipeline
root, calls = sys.argv[1], json.loads(sys.argv[2])
for name, kwargs in calls.items():
    pipe = DiffusionPipeline.from_pretrained(f"{root}/{name}", trust_remote_code=True)
    images = pipe(generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images
    np.save(f"{root}/{name}.npy", images)
    print(name, type(pipe).__name__, images.shape)
pipe = DiffusionPipeline.from_pretrained(f"{root}/autoencoder", trust_remote_code=True)
codes = pipe.encode(torch.zeros(1, 1, 8, 8))
print("autoencoder", type(pipe).__name__, tuple(codes.shape))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("portable")
    pipelines = tiny_pipelines()
    for name, pipeline in pipelines.items():
        pipeline.save_pretrained(root / name)
    return root, pipelines


def test_every_family_loads_and_samples_without_hfgen(saved, tmp_path):
    root, _ = saved
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_HFGEN, str(root), json.dumps(CALLS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert lines["vae"] == "VAEPipeline (2, 8, 8, 1)"
    assert lines["cgan"] == "GANPipeline (2, 8, 8, 1)"
    assert lines["ncsn"] == "AnnealedLangevinPipeline (2, 8, 8, 1)"
    assert lines["cddpm"] == "ClassConditionalDiffusionPipeline (2, 8, 8, 1)"
    assert lines["autoencoder"] == "AutoencoderPipeline (1, 2)"
    assert "Expected types" not in done.stderr  # the written source and the weights agree on the classes
    # hfgen's own loader builds the same pipeline from hfgen's classes: the same images for the same seed.
    for name, kwargs in CALLS.items():
        pipeline = load_pipeline(str(root / name))
        ours = pipeline(generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images
        np.testing.assert_allclose(np.load(root / f"{name}.npy"), ours, atol=1e-5, err_msg=name)


def test_model_index_points_at_the_written_source(saved):
    root, _ = saved
    index = json.loads((root / "gan" / "model_index.json").read_text())
    assert index["_class_name"] == ["hfgen_pipeline_gan", "GANPipeline"]
    assert index["generator"] == ["hfgen_gan", "DCGANGenerator"]
    assert (root / "gan" / "hfgen_pipeline_gan.py").is_file() and (root / "gan" / "critic" / "hfgen_gan.py").is_file()
    ncsn = json.loads((root / "ncsn" / "model_index.json").read_text())
    assert ncsn["unet"] == ["diffusers", "UNet2DModel"]  # diffusers' own components stay diffusers'
    assert ncsn["scheduler"][1] == "AnnealedLangevinScheduler"


def test_load_pipeline_never_runs_the_written_source(saved, tmp_path):
    """`hfgen.load_pipeline` needs no trust_remote_code: planted code in the folder's source files never runs."""
    root, _ = saved
    folder = tmp_path / "vae"
    import shutil

    shutil.copytree(root / "vae", folder)
    for path in (folder / "hfgen_pipeline_vae.py", folder / "vae" / "hfgen_vae.py"):
        path.write_text("raise SystemExit('planted code ran')\n")
    pipeline = load_pipeline(str(folder))
    assert type(pipeline).__module__ == "hfgen.pipelines.pipeline_vae"
    assert pipeline(batch_size=1, output_type="np").images.shape == (1, 8, 8, 1)


def test_folders_saved_before_portability_still_load(saved, tmp_path):
    root, pipelines = saved
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(root / "cvae", folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update({"_class_name": "VAEPipeline", "vae": ["hfgen.models.vae", "VAEModel"]})
    (folder / "model_index.json").write_text(json.dumps(index))
    pipeline = load_pipeline(str(folder))
    assert pipeline.id2label == {0: "a", 1: "b", 2: "c"}
    torch.testing.assert_close(pipeline.vae.state_dict(), pipelines["cvae"].vae.state_dict())


@pytest.mark.parametrize("module", ["hfgen.models.vae", "hfgen.pipelines.pipeline_langevin"])
def test_bundles_import_nothing_from_hfgen(module):
    tree = ast.parse(bundle_source(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("hfgen"), ast.unparse(node)
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("hfgen") for alias in node.names), ast.unparse(node)
    assert ast.unparse(tree.body[1]) == "from __future__ import annotations"


def test_bundling_refuses_modules_that_need_more_than_torch():
    with pytest.raises(ValueError, match="cannot be bundled"):
        bundle_source("hfgen.pipelines.sampling")


def test_pipeline_from_pretrained_uses_hfgen_classes(saved):
    """`VAEPipeline.from_pretrained(folder)` (the diffusers idiom) needs no trust_remote_code and takes components."""
    from hfgen.errors import CheckpointError

    root, pipelines = saved
    loaded = VAEPipeline.from_pretrained(str(root / "cvae"))
    assert type(loaded) is VAEPipeline and loaded.id2label == {0: "a", 1: "b", 2: "c"}
    other = VAEModel(sample_size=8, latent_dim=2, block_out_channels=(8, 16), num_classes=3)
    assert VAEPipeline.from_pretrained(str(root / "cvae"), vae=other).vae is other
    with pytest.raises(CheckpointError, match="holds a VAEPipeline, not a GANPipeline"):
        GANPipeline.from_pretrained(str(root / "cvae"))
