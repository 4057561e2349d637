"""`hfgen demo` and `hfgen space` (issue 19): each tab's actions as plain Python, every endpoint through
`gradio_client`, the Space folder answering on its port, and the page driven in headless Chromium.

The folders are tiny untrained pipelines (`tiny_pipelines.py`), 8x8 like the digits, so the held-out digits give the
VAE its KL-sorted sliders and attribute labels and the flow its held-out histogram."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipelines import tiny_pipelines

from hfgen.demo.common import DemoInputError, uploaded_image
from hfgen.demo.loading import load_demo_model

ARTIFACTS = os.environ.get("HFGEN_TEST_ARTIFACTS", os.path.join(os.path.dirname(__file__), "..", "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    paths = {}
    for name, pipeline in tiny_pipelines().items():
        pipeline.save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths


@pytest.fixture(scope="module")
def models(folders):
    return {name: load_demo_model(folders[name]) for name in ("ddpm", "cddpm", "ncsn", "vae", "gan", "flow")}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_each_folder_gets_its_tab(models):
    kinds = {name: model.kind for name, model in models.items()}
    assert kinds == {
        "ddpm": "diffusion",
        "cddpm": "diffusion",
        "ncsn": "diffusion",
        "vae": "latent",
        "gan": "gan",
        "flow": "flow",
    }
    assert models["cddpm"].class_names == ["0", "1", "2"] and models["ddpm"].class_names is None
    assert (
        models["ncsn"].scheduler_choices == ["annealed-langevin"] and "dpmsolver++" in models["ddpm"].scheduler_choices
    )


def test_diffusion_generate_is_seeded_and_reports_speed(models):
    ddpm = models["ddpm"]
    first, info = ddpm.generate("ddim", 5, 3, 4)
    again, _ = ddpm.generate("ddim", 5, 3, 4)
    other, _ = ddpm.generate("ddim", 5, 4, 4)
    assert first.size == again.size and np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))
    assert "4 images with DDIMScheduler (5 network evaluations per image)" in info and "images/s" in info


def test_the_chain_streams_and_ends_with_the_same_samples(models):
    ddpm = models["ddpm"]
    frames = list(ddpm.chain("ddpm", 20, 1, 4))
    assert [text for _, text in frames[:-1]] == [f"step {s} of 20" for s in range(2, 20, 2)]
    final, _ = ddpm.generate("ddpm", 20, 1, 4)
    assert np.array_equal(pixels(frames[-1][0]), pixels(final))
    assert not np.array_equal(pixels(frames[0][0]), pixels(final))  # x_t on the way is not the sample
    levels = list(models["ncsn"].chain("annealed-langevin", 2, 0, 4))
    assert [text for _, text in levels[:-1]] == ["noise level 1 of 3", "noise level 2 of 3", "noise level 3 of 3"]


def test_conditional_diffusion_takes_class_and_guidance(models):
    cddpm = models["cddpm"]
    ones, info = cddpm.generate("ddim", 4, 0, 2, class_name="1", guidance_scale=3.0)
    twos, _ = cddpm.generate("ddim", 4, 0, 2, class_name="2", guidance_scale=3.0)
    assert not np.array_equal(pixels(ones), pixels(twos))
    assert "(8 network evaluations per image)" in info  # guidance: conditional + unconditional pass per step
    with pytest.raises(DemoInputError, match="unknown class 'x'; choose one of 0, 1, 2"):
        cddpm.generate("ddim", 4, 0, 2, class_name="x")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.generate("nope", 5, 0, 4), "unknown scheduler 'nope'"),
        (lambda m: m.generate("ddim", 0, 0, 4), "steps must be between 1 and 20"),
        (lambda m: m.generate("ddim", 5, -1, 4), "seed must be a whole number >= 0"),
        (lambda m: m.generate("ddim", 5, 0, 65), "number of images must be between 1 and 64"),
    ],
)
def test_diffusion_refuses_bad_values_in_one_line(models, call, message):
    with pytest.raises(DemoInputError, match=message):
        call(models["ddpm"])


def test_vae_sliders_follow_kl_and_decode_the_prior_mean(models):
    vae = models["vae"]
    assert len(vae.dims) == 2 and sorted(vae.dims) == [0, 1]
    assert vae.scores == sorted(vae.scores, reverse=True)  # the most used dimension first
    centre = vae.decode_sliders(0.0, 0.0)
    expected = vae.pipeline.decode(torch.zeros(1, 2), output_type="pt").images
    from hfgen.demo.common import grid

    assert np.array_equal(pixels(centre), pixels(grid(expected, nrow=1)))
    assert not np.array_equal(pixels(vae.decode_sliders(2.5, -2.5)), pixels(centre))
    with pytest.raises(DemoInputError, match="expected 2 slider values"):
        vae.decode_sliders(1.0)


def test_vae_morph_and_attribute_vector(models):
    vae = models["vae"]
    row = vae.morph(None, None, 0, 1, 5)
    assert row.width > 4 * row.height  # five tiles in one row
    upload = Image.fromarray((np.random.RandomState(0).rand(20, 20) * 255).astype(np.uint8))
    assert vae.morph(upload, None, 0, 1, 3).size[0] > 0
    assert vae.attribute_names == [str(d) for d in range(10)]  # the held-out digits' labels
    table = vae.attribute("1", "7")
    assert table.width == table.height  # 4 held-out images (rows) x 4 alphas (columns)
    with pytest.raises(DemoInputError, match="choose two different labels"):
        vae.attribute("1", "1")


def test_gan_samples_and_interpolates(models):
    gan = models["gan"]
    assert np.array_equal(pixels(gan.sample(5, 4)), pixels(gan.sample(5, 4)))
    path = gan.interpolate(0, 1, 6)
    assert path.width > 5 * path.height
    with pytest.raises(DemoInputError, match="steps must be between 2 and 16"):
        gan.interpolate(0, 1, 1)


def test_flow_scores_an_upload_against_the_held_out_histogram(models):
    flow = models["flow"]
    held = flow.held_out_bpd
    assert held is not None and len(held) == 360  # the digits' test split
    median = int(torch.argsort(held)[len(held) // 2])
    images, _ = flow._held_out()
    digit = ((images[median, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
    line, histogram = flow.score(digit)
    assert "in distribution" in line and histogram.size[0] > 100
    assert flow.sample(0, 4, 0.5).size[0] > 0
    with pytest.raises(DemoInputError, match="temperature must be in"):
        flow.sample(0, 4, 0)


@pytest.mark.parametrize(
    "upload, message",
    [
        (None, "upload an image first"),
        (np.zeros((4, 4, 7)), r"expected an \(H, W\) or \(H, W, 1\|3\|4\) image"),
        (__file__, "this file is not an image hfgen can read"),
        (42, "expected an image, got int"),
    ],
)
def test_bad_uploads_are_one_message(upload, message):
    with pytest.raises(DemoInputError, match=message):
        uploaded_image(upload, 8, 1)


def test_uploads_are_converted_like_training_images():
    rgb = Image.fromarray(np.full((32, 48, 3), 255, np.uint8))
    tensor = uploaded_image(rgb, 8, 1)
    assert tensor.shape == (1, 1, 8, 8) and torch.allclose(tensor, torch.ones_like(tensor))


# --- gradio -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(folders):
    pytest.importorskip("gradio", reason="pip install 'hfgen[demo]' for the demo tests")
    from hfgen.demo.app import launch_demo

    names = ["ddpm", "vae", "gan", "flow", "cddpm", "ncsn"]
    demo, url = launch_demo([folders[n] for n in names], port=0, block=False)
    yield url
    demo.close()


def test_every_tab_answers_through_gradio_client(served):
    from gradio_client import Client

    client = Client(served, verbose=False)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) >= {
        "/generate_0",
        "/decode_1",
        "/morph_1",
        "/attribute_1",
        "/generate_2",
        "/interpolate_2",
        "/generate_3",
        "/score_3",
        "/generate_4",
        "/generate_5",
    }
    calls = {
        "/generate_0": ("ddim", 5, 0, 4, False),
        "/decode_1": (0.5, -0.5),
        "/morph_1": (None, None, 0, 1, 5),
        "/attribute_1": ("1", "7"),
        "/generate_2": (0, 4),
        "/interpolate_2": (0, 1, 4),
        "/generate_3": (0, 4, 0.7),
        "/generate_4": ("ddim", 5, 0, 4, "1", 2.0, False),
        "/generate_5": ("annealed-langevin", 2, 0, 4, True),
    }
    for api_name, arguments in calls.items():
        result = client.predict(*arguments, api_name=api_name)
        path = result[0] if isinstance(result, (tuple, list)) else result
        with Image.open(path) as image:
            assert image.width >= 64 and image.height >= 16, api_name
    speed = client.predict("ddim", 5, 0, 4, False, api_name="/generate_0")[1]
    assert "images/s" in speed


def test_bad_input_is_a_message_not_a_traceback(served):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(served, verbose=False)
    with pytest.raises(AppError) as caught:
        client.predict("ddim", 5, 0, 4, "x", 2.0, False, api_name="/generate_4")
    assert "x" in str(caught.value) and "Traceback" not in str(caught.value)
    with pytest.raises(AppError, match="one of 1, 7|choose two different labels"):
        client.predict("1", "1", api_name="/attribute_1")


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 180) -> str:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode("utf-8", "replace")
        except OSError:
            time.sleep(1)
    raise AssertionError(f"nothing answered at {url} within {seconds} s")


def test_space_folder_runs_with_python_app_py(folders, tmp_path):
    pytest.importorskip("gradio", reason="pip install 'hfgen[demo]' for the demo tests")
    from hfgen.demo.space import write_space

    trained = tmp_path / "trained"
    shutil.copytree(folders["ddpm"], trained)
    (trained / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    space = tmp_path / "space"
    paths = write_space(str(trained), str(space))
    readme = (space / "README.md").read_text()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme
    assert (space / "requirements.txt").read_text().splitlines()[1].startswith("hfgen[demo]==")
    assert (space / "model" / "model_index.json").is_file() and not (space / "model" / "checkpoints").exists()
    assert set(paths) == {"model", "app", "requirements", "readme"}
    from hfgen.demo.app import free_port

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        page = _wait_for(f"http://127.0.0.1:{port}/", process)
        assert "hfgen demo" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_space_refuses_to_overwrite_or_nest(folders, tmp_path):
    from hfgen.demo.space import write_space
    from hfgen.errors import CheckpointError, HfgenError

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(HfgenError, match="exists and is not empty; pass --overwrite"):
        write_space(folders["vae"], str(tmp_path / "busy"))
    with pytest.raises(HfgenError, match="lies inside"):
        write_space(folders["vae"], os.path.join(folders["vae"], "space"))
    with pytest.raises(CheckpointError, match="is not a trained hfgen folder"):
        write_space(str(tmp_path), str(tmp_path / "space"))


# --- a real browser -------------------------------------------------------------------------------------------------


def test_browser_generates_images_and_moves_a_slider(served):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (the browser comes from Debian: apt install chromium)"
    )
    if CHROMIUM is None:
        pytest.skip("Chromium is missing: apt install chromium (Debian's package; browsers cannot be downloaded)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served)
        page.click("#generate-0")
        page.wait_for_selector("#samples-0 img", timeout=120_000)
        assert "images/s" in page.inner_text("#info-0")
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-diffusion.png"))
        page.get_by_role("tab", name="vae (VAE)").click()
        slider = page.locator("#tab-1 input[type=range]").first
        slider.wait_for(state="visible")
        box = slider.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
        page.wait_for_selector("#decoded-1 img", timeout=120_000)
        page.screenshot(path=os.path.join(ARTIFACTS, "demo-vae.png"))
        browser.close()
    assert os.path.getsize(os.path.join(ARTIFACTS, "demo-vae.png")) > 10_000


# --- the VQA tab --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vqa_adapter(tmp_path_factory):
    from hfgen.data.clevr import make_clevr_dataset
    from hfgen.vqa.finetune import VQAFinetuneArguments, finetune

    root = tmp_path_factory.mktemp("vqa")
    clevr = root / "CLEVR_v1.0"
    make_clevr_dataset(str(clevr), num_images=12, seed=0)
    adapter = root / "adapter"
    finetune(VQAFinetuneArguments(clevr_dir=str(clevr), output_dir=str(adapter), tiny=True, max_train_steps=2,
                                  train_batch_size=4, logger="none"))  # fmt: skip
    return adapter


def test_vqa_tab_answers_a_question_about_a_clevr_scene(vqa_adapter):
    vqa = load_demo_model(str(vqa_adapter))
    assert vqa.kind == "vqa" and vqa.title.endswith("(VQA)")
    assert vqa.example_images and all(path.endswith(".png") for path in vqa.example_images)
    answer = vqa.answer(vqa.example_images[0], "How many objects are there?")
    assert isinstance(answer, str) and answer == vqa.answer(
        Image.open(vqa.example_images[0]), "How many objects are there?"
    )
    with pytest.raises(DemoInputError, match="type a question"):
        vqa.answer(vqa.example_images[0], "  ")
    with pytest.raises(DemoInputError, match="upload an image"):
        vqa.answer(None, "What color is the cube?")
    with pytest.raises(DemoInputError, match="not an image"):
        vqa.answer(__file__, "What color is the cube?")


def test_vqa_tab_answers_through_gradio_client(vqa_adapter):
    pytest.importorskip("gradio", reason="pip install 'hfgen[demo]' for the demo tests")
    from gradio_client import Client, handle_file

    from hfgen.demo.app import launch_demo

    demo, url = launch_demo([str(vqa_adapter)], port=0, block=False)
    try:
        vqa = load_demo_model(str(vqa_adapter))
        answer = Client(url, verbose=False).predict(
            handle_file(vqa.example_images[0]), "How many objects are there?", api_name="/answer_0"
        )
        assert answer == vqa.answer(vqa.example_images[0], "How many objects are there?")
    finally:
        demo.close()
