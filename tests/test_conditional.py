"""Class-conditional generation (issue 18): --class_conditional in every family that samples, class labels and
classifier-free guidance in the pipelines, hfgen sample/evaluate, label dropout, exact resume, clear errors."""

import json
import os

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from helpers import error_line, run_cli
from PIL import Image
from safetensors.torch import load_file

import hfgen
from hfgen.errors import HfgenError
from hfgen.pipelines.conditioning import classifier_free_guidance, resolve_class_labels
from hfgen.training.objectives.base import drop_labels

TINY_UNET = {"resolution": 8, "block_out_channels": [8, 16], "attention_levels": ["none"], "norm_num_groups": 4}
COMMON = {"train_batch_size": 16, "num_sample_images": 4, "logger": "none", "save_images_steps": 10_000,
          "checkpointing_steps": 10_000, "seed": 0}  # fmt: skip
FAMILIES = {
    "ddpm": {**TINY_UNET, "ddpm_num_steps": 20, "sample_num_inference_steps": 2, "lr_warmup_steps": 0},
    "ncsn": {**TINY_UNET, "num_noise_levels": 3, "steps_per_level": 2, "lr_warmup_steps": 0},
    "vae": {"block_out_channels": [8, 16], "latent_dim": 4},
    "dcgan": {"latent_dim": 8, "generator_channels": 8, "critic_channels": 8},
    "wgan-gp": {"latent_dim": 8, "generator_channels": 8, "critic_channels": 8, "n_critic": 2},
}
DIFFUSION = ("ddpm", "ncsn")


def flags_of(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flags.append(f"--{key}")
        flags.extend(str(v) for v in value) if isinstance(value, list) else flags.append(str(value))
    return flags


@pytest.fixture(scope="module")
def conditional_dirs(tmp_path_factory):
    """One tiny class-conditional folder per family, trained for 4 steps through the command line."""
    from hfgen.cli import main

    root = tmp_path_factory.mktemp("conditional")
    folders = {}
    for name, extra in FAMILIES.items():
        folder = root / name
        args = ["train", name, "--class_conditional", "--max_train_steps", "4", "--output_dir", str(folder)]
        main(args + flags_of({**COMMON, **extra}))
        folders[name] = folder
    return folders


# ------------------------------------------------------------------------------------------ guidance (unit)
@pytest.fixture(scope="module")
def class_unet():
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, layers_per_block=1, num_class_embeds=4)  # fmt: skip
    return unet.eval()


def test_guidance_one_is_the_conditional_prediction_and_zero_the_unconditional_one(class_unet):
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t, labels = torch.tensor(7), torch.tensor([0, 2, 1])
    calls = []

    def predict(sample, timestep, class_labels):
        calls.append(len(sample))
        return class_unet(sample, timestep, class_labels=class_labels).sample

    with torch.no_grad():
        conditional = class_unet(x, t, class_labels=labels).sample
        unconditional = class_unet(x, t, class_labels=torch.full_like(labels, 3)).sample
        assert not torch.allclose(conditional, unconditional)  # the labels matter
        assert torch.equal(classifier_free_guidance(predict, x, t, labels, 3, 1.0), conditional)
        assert torch.equal(classifier_free_guidance(predict, x, t, labels, 3, 0.0), unconditional)
        assert calls == [3, 3]  # one forward pass each
        guided = classifier_free_guidance(predict, x, t, labels, 3, 2.5)
    assert calls[-1] == 6  # both halves in one batched pass
    torch.testing.assert_close(guided, unconditional + 2.5 * (conditional - unconditional), atol=1e-5, rtol=1e-4)


def test_label_dropout_rate_over_many_batches():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 10
    dropped = total = 0
    for _ in range(300):
        out = drop_labels(labels, 10, 0.1, generator)
        kept = out != 10
        assert torch.equal(out[kept], labels[kept])  # a label is either kept or replaced by "no label"
        dropped += int((~kept).sum())
        total += len(labels)
    rate = dropped / total
    assert abs(rate - 0.1) < 0.01, rate  # 19,200 draws: the standard error is 0.002
    assert torch.equal(drop_labels(labels, 10, 0.0, generator), labels)


def test_the_ddpm_objective_drops_labels_at_the_requested_rate(tmp_path):
    """The loss the loop calls hands the UNet "no label" (index C) at --conditioning_dropout_prob."""
    from hfgen.training.arguments import parse_train_kwargs
    from hfgen.training.objectives import get_objective
    from hfgen.training.objectives.base import TrainingContext

    objective = get_objective("ddpm")
    flags = {**FAMILIES["ddpm"], "conditioning_dropout_prob": 0.25, "class_conditional": True}
    data_args, training_args, model_args = parse_train_kwargs(objective, flags)
    objective.resolve_defaults(data_args, training_args, model_args)
    context = TrainingContext(data_args, training_args, model_args, 1, 8, 100, "digits", num_classes=5,
                              id2label={i: str(i) for i in range(5)})  # fmt: skip
    models = objective.build_models(context)
    assert models["unet"].config.num_class_embeds == 6
    seen = []
    models["unet"].register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["class_labels"]),
                                             with_kwargs=True)  # fmt: skip
    labels = torch.arange(32) % 5
    for step in range(100):
        objective.compute_loss(models, torch.zeros(32, 1, 8, 8), torch.Generator().manual_seed(step),
                               class_labels=labels)  # fmt: skip
    seen = torch.cat(seen)
    assert abs(float((seen == 5).double().mean()) - 0.25) < 0.025
    assert set(seen.tolist()) == {0, 1, 2, 3, 4, 5}


def test_resolve_class_labels_by_index_name_one_for_all_and_every_class_in_turn():
    names = {0: "cat", 1: "dog", 2: "fox"}
    assert resolve_class_labels(None, 7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert resolve_class_labels("dog", 3, 3, names).tolist() == [1, 1, 1]
    assert resolve_class_labels(["fox", 0, "1"], 3, 3, names).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"class label 3 is outside the model's 3 classes: 0 \(cat\)"):
        resolve_class_labels(3, 2, 3, names)
    with pytest.raises(ValueError, match="'wolf' is not one of the model's 3 classes"):
        resolve_class_labels("wolf", 2, 3, names)
    with pytest.raises(ValueError, match="got 2 class labels for 3 images"):
        resolve_class_labels([0, 1], 3, 3, names)


# ----------------------------------------------------------------------------------- every family, end to end
@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_trains_conditionally_and_samples_the_asked_classes(name, conditional_dirs, capsys, tmp_path):
    folder = conditional_dirs[name]
    with open(folder / "model_index.json") as handle:
        index = json.load(handle)
    assert index["id2label"] == {str(i): str(i) for i in range(10)}  # the digits' class names, stored
    with open(folder / "training_args.json") as handle:
        assert json.load(handle)["num_classes"] == 10
    configs = [json.loads(p.read_text()) for p in folder.glob("*/config.json")]
    assert any(c.get("num_class_embeds") == 11 or c.get("num_classes") == 10 for c in configs)
    # the periodic grid: one row per class (4 images asked for, 10 classes -> 1 per class, one column)
    with Image.open(folder / "samples" / "step-000004.png") as grid:
        assert grid.size[1] > 8 * grid.size[0]
    card = (folder / "README.md").read_text()
    assert "## Class-conditional" in card and "class-conditional" in card and "class_labels=[3] * 8" in card
    # hfgen sample --class_labels 3 (--guidance_scale 2 for diffusion)
    grid = tmp_path / "three.png"
    args = ["sample", folder, "--class_labels", "3", "--num_images", "4", "--output", grid]
    if name == "ddpm":
        args += ["--guidance_scale", "2", "--scheduler", "ddim", "--num_inference_steps", "3"]
    if name == "ncsn":
        args += ["--guidance_scale", "2", "--pipeline_kwargs", '{"steps_per_level": 1}']
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert grid.is_file() and "4 images" in out
    if name in DIFFUSION:  # guidance doubles the network evaluations
        unguided = run_cli(capsys, *[a if a != "2" else "1" for a in args])[1]
        evals = [int(line.split(": ")[1]) for t in (out, unguided) for line in t.splitlines() if "evaluations" in line]
        assert evals[0] == 2 * evals[1], evals
    # Python: load_pipeline(folder)(class_labels=[0, 1], ...) returns 2 images
    pipeline = hfgen.load_pipeline(str(folder))
    pipeline.set_progress_bar_config(disable=True)
    kwargs = {"guidance_scale": 2.0} if name in DIFFUSION else {}
    kwargs.update({"num_inference_steps": 2} if name == "ddpm" else {"steps_per_level": 1} if name == "ncsn" else {})
    out = pipeline(class_labels=[0, 1], generator=torch.Generator().manual_seed(0), **kwargs)
    expected = (8, 8) if name in DIFFUSION else (16, 16)  # the UNet families were trained at --resolution 8
    assert len(out.images) == 2 and out.images[0].size == expected


def test_the_asked_class_changes_the_image(conditional_dirs):
    pipeline = hfgen.load_pipeline(str(conditional_dirs["dcgan"]))
    z = torch.randn(1, 8, generator=torch.Generator().manual_seed(0)).repeat(2, 1)
    images = pipeline(latents=z, class_labels=[0, 1], batch_size=2, output_type="pt").images
    assert not torch.allclose(images[0], images[1])  # same z, another class: another image
    again = pipeline(latents=z, class_labels=[0, 0], batch_size=2, output_type="pt").images
    assert torch.equal(again[0], again[1]) and torch.equal(again[0], images[0])


# ------------------------------------------------------------------------------------------------- errors
def test_a_label_outside_the_classes_is_one_clear_error(conditional_dirs, capsys):
    code, _, err = run_cli(capsys, "sample", conditional_dirs["vae"], "--class_labels", "12", "--num_images", "2")
    assert "class label 12 is outside the model's 10 classes: 0, 1, 2" in error_line(code, err)
    pipeline = hfgen.load_pipeline(str(conditional_dirs["vae"]))
    with pytest.raises(ValueError, match="outside the model's 10 classes"):
        pipeline(class_labels=[10])
    with pytest.raises(HfgenError, match="3 class labels for 2 images"):
        from hfgen.pipelines.sampling import sample_images

        sample_images(pipeline, 2, class_labels=[1, 2, 3], show_progress=False)


def test_guidance_and_labels_where_they_do_not_apply_are_refused(conditional_dirs, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", conditional_dirs["vae"], "--guidance_scale", "2", "--num_images", "2")
    assert "VAEPipeline has no classifier-free guidance" in error_line(code, err)
    code, _, err = run_cli(capsys, "sample", conditional_dirs["ddpm"], "--guidance_scale", "-1")
    assert "--guidance_scale: must be a finite number >= 0" in error_line(code, err)
    unconditional = tmp_path / "plain"
    hfgen.train("dcgan", output_dir=str(unconditional), max_train_steps=1, **COMMON, **FAMILIES["dcgan"])
    code, _, err = run_cli(capsys, "sample", unconditional, "--class_labels", "3", "--num_images", "2")
    assert "was not trained with --class_conditional, so --class_labels does not apply" in error_line(code, err)


def test_a_data_set_without_labels_is_one_clear_error(tmp_path, capsys):
    array = tmp_path / "faces.npy"
    np.save(array, np.random.default_rng(0).integers(0, 255, (40, 8, 8), dtype=np.uint8))
    out = tmp_path / "never"
    code, _, err = run_cli(capsys, "train", "ddpm", "--class_conditional", "--train_data_dir", array,
                           "--output_dir", out, *flags_of({**COMMON, **FAMILIES["ddpm"]}))  # fmt: skip
    line = error_line(code, err)
    assert "--class_conditional trains on the data's labels" in line and "has none" in line
    assert not out.exists()  # refused before anything was written


def test_families_without_a_conditional_variant_refuse_in_one_line(tmp_path, capsys):
    for name in ("realnvp", "autoencoder"):
        code, _, err = run_cli(capsys, "train", name, "--class_conditional", "--output_dir", tmp_path / name)
        assert f"hfgen train {name}: --class_conditional is not supported" in error_line(code, err)
        assert not (tmp_path / name).exists()
    code, _, err = run_cli(capsys, "train", "ddpm", "--conditioning_dropout_prob", "nan", "--output_dir", tmp_path)
    assert "--conditioning_dropout_prob must be in [0, 1)" in error_line(code, err)


# ----------------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("name", ["ddpm", "wgan-gp"])
def test_exact_resume_of_a_conditional_run(name, tmp_path):
    flags = dict(COMMON, **FAMILIES[name], class_conditional=True, checkpointing_steps=3, lr_scheduler="constant")
    hfgen.train(name, output_dir=str(tmp_path / "straight"), max_train_steps=6, **flags)
    hfgen.train(name, output_dir=str(tmp_path / "resumed"), max_train_steps=3, **flags)
    hfgen.train(name, output_dir=str(tmp_path / "resumed"), max_train_steps=6, resume_from_checkpoint="latest",
                **flags)  # fmt: skip
    component = "unet" if name == "ddpm" else "generator"
    files = [os.path.join(d, component, "diffusion_pytorch_model.safetensors") for d in ("straight", "resumed")]
    straight, resumed = (load_file(str(tmp_path / f)) for f in files)
    assert straight.keys() == resumed.keys()
    assert any("class_embedding" in key for key in straight)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


# ------------------------------------------------------------------------------------------- evaluation
def test_class_accuracy_judges_real_images_by_their_labels():
    """Real held-out digits with their true labels score a high class accuracy, with shuffled labels about 1/10."""
    from hfgen.metrics.image_quality import MetricScorer, extract_features

    scorer = MetricScorer("digits", "digits", 16, 1)
    images, labels = scorer.sets.reference, scorer.sets.reference_labels
    assert labels is not None and len(labels) == len(images) == 360
    features, logits = extract_features(scorer.extractor, images)
    right = scorer.conditional_scores(features, logits, labels)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    wrong = scorer.conditional_scores(features, logits, shuffled)
    assert right["class_accuracy"] > 0.9
    assert wrong["class_accuracy"] < 0.25
    assert "per_class_fid" not in right  # 36 images per class: fewer than the 65 that 64-d FID needs


def test_evaluate_and_the_guidance_sweep_of_a_conditional_ddpm(conditional_dirs, capsys):
    folder = conditional_dirs["ddpm"]
    code, out, err = run_cli(capsys, "evaluate", folder, "--num_images", "70", "--scheduler", "ddim",
                             "--num_inference_steps", "2", "--guidance_scales", "0,1,3")  # fmt: skip
    assert code == 0, err
    rows = json.loads((folder / "guidance_sweep.json").read_text())
    assert [row["guidance_scale"] for row in rows] == [0.0, 1.0, 3.0]
    for row in rows:
        assert 0 <= row["class_accuracy"] <= 1 and row["num_classes_scored"] == 10 and row["fid"] > 0
    assert [row["nfe"] for row in rows] == [2, 2, 4]
    assert "| 3 |" in out and (folder / "guidance_sweep.md").read_text().count("\n| ") == 4
    with Image.open(folder / "guidance_sweep.png") as image:
        assert image.format == "PNG" and image.size[0] > 600
    evaluations = json.loads((folder / "metrics.json").read_text())["evaluations"]
    assert {key.rsplit("-", 1)[-1] for key in evaluations} >= {"guidance=0", "guidance=1", "guidance=3"}
    code, _, err = run_cli(capsys, "evaluate", conditional_dirs["vae"], "--guidance_scales", "1,2")
    assert "--guidance_scales needs a class-conditional DDPM or NCSN" in error_line(code, err)


def test_explore_refuses_a_conditional_vae_in_one_line(conditional_dirs, capsys, tmp_path):
    code, _, err = run_cli(capsys, "explore", conditional_dirs["vae"], "--figures_dir", tmp_path / "figures")
    assert "holds a class-conditional VAE" in error_line(code, err)


def test_guided_ddim_samples_without_x0_clipping_and_other_schedulers_are_kept():
    """diffusers' DDIM clips x0 but keeps the unclipped eps; guided sampling therefore drops the clipping."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    from hfgen.pipelines.pipeline_class_conditional import guided_scheduler

    ddim = DDIMScheduler(num_train_timesteps=50, clip_sample=True)
    guided = guided_scheduler(ddim, 3.0)
    assert type(guided) is DDIMScheduler and not guided.config.clip_sample and not guided.config.thresholding
    assert guided.config.num_train_timesteps == 50 and ddim.config.clip_sample  # a copy: the original is unchanged
    assert guided_scheduler(ddim, 1.0) is ddim and guided_scheduler(ddim, 0.0) is ddim  # one network pass: as trained
    for other in (DDPMScheduler(clip_sample=True), DPMSolverMultistepScheduler()):
        assert guided_scheduler(other, 3.0) is other
