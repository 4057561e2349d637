"""`hfgen demo`: a Gradio app with one tab per trained folder, chosen by family (`hfgen.demo.loading`).

Every action is a named API endpoint (``/generate_0``, ``/decode_1``, ...: the action and the tab's index), so
`gradio_client` can call what the page calls. Work runs in Gradio's queue (one job at a time: two PyTorch jobs on two
cores are slower than one after the other) with a progress bar; input the demo cannot use is a message in the page
(`gradio.Error`), never a traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os

from hfgen.demo.common import MAX_IMAGES, DemoModel
from hfgen.errors import HfgenError

logger = logging.getLogger(__name__)
INTRO = (
    "# hfgen demo\n"
    "Models trained with hfgen: one tab per folder. Sampling runs on this "
    "machine's CPU, one request at a time."
)


def _shown(fn):
    """``fn`` whose refusals (`HfgenError`) and failures become `gradio.Error` messages in the page."""
    import gradio as gr

    def message(err: Exception) -> Exception:
        if isinstance(err, HfgenError):
            return gr.Error(str(err))
        logger.exception("demo action failed")
        return gr.Error(f"{type(err).__name__}: {err}")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001 - shown as a message, not a traceback
                raise message(err) from None

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - shown as a message, not a traceback
            raise message(err) from None

    return call


def _class_inputs(gr, model: DemoModel, guidance: bool) -> list:
    """The class dropdown (and guidance slider) of a conditional model; nothing for an unconditional one."""
    names = model.class_names
    if not names:
        return []
    widgets = [gr.Dropdown(["every class", *names], value="every class", label="Class")]
    if guidance:
        widgets.append(gr.Slider(0, 10, value=1.0, step=0.5, label="Guidance scale w (1 = none)"))
    return widgets


def _path_inputs(gr) -> tuple:
    """Seed A, seed B and the number of steps (2..16, as `LatentDemo.morph` and `GANDemo.interpolate` take them)
    of a path between two images."""
    return (
        gr.Number(value=0, precision=0, minimum=0, label="Seed A"),
        gr.Number(value=1, precision=0, minimum=0, label="Seed B"),
        gr.Slider(2, 16, value=8, step=1, label="Steps"),
    )


def _diffusion_tab(gr, model, index: int) -> None:
    with gr.Row():
        with gr.Column():
            scheduler = gr.Dropdown(
                model.scheduler_choices,
                value=model.default_scheduler,
                label="Scheduler",
                interactive=not model.is_langevin,
            )
            steps = gr.Slider(
                1,
                model.max_steps,
                value=model.default_steps,
                step=1,
                label="Langevin steps per noise level" if model.is_langevin else "Steps",
            )
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
            conditional = _class_inputs(gr, model, guidance=True)
            show_chain = gr.Checkbox(
                value=False, label="Show the chain" + (" (the end of each noise level)" if model.is_langevin else "")
            )
            button = gr.Button("Generate", variant="primary", elem_id=f"generate-{index}")
        with gr.Column():
            image = gr.Image(label="Samples", type="pil", format="png", elem_id=f"samples-{index}")
            info = gr.Markdown(elem_id=f"info-{index}")

    def generate(scheduler, steps, seed, count, *rest, progress=gr.Progress()):
        *conditional_values, chain = rest
        class_name, guidance = (conditional_values + [None, 1.0])[:2]
        if chain:
            yield from model.chain(scheduler, steps, seed, count, class_name, guidance or 1.0)
            return
        total = int(steps)
        progress(0, desc="Sampling")
        yield model.generate(
            scheduler,
            steps,
            seed,
            count,
            class_name,
            guidance or 1.0,
            on_step=lambda step, _latents: progress((step + 1) / max(total, step + 1), desc="Sampling"),
        )

    button.click(
        _shown(generate),
        inputs=[scheduler, steps, seed, count, *conditional, show_chain],
        outputs=[image, info],
        api_name=f"generate_{index}",
    )


def _latent_tab(gr, model, index: int) -> None:
    gr.Markdown(
        "Each slider moves one latent dimension (in standard deviations of the "
        + ("prior" if model.is_vae else "held-out codes")
        + "), the most used first."
    )
    with gr.Row():
        with gr.Column():
            sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=label) for label in model.slider_labels]
            conditional = _class_inputs(gr, model, guidance=False)
        with gr.Column():
            decoded = gr.Image(label="Decoded", type="pil", format="png", elem_id=f"decoded-{index}")
    decode = _shown(
        lambda *values: model.decode_sliders(*values[: len(sliders)], class_name=(values[len(sliders) :] or [None])[0])
    )
    inputs = [*sliders, *conditional]
    for number, slider in enumerate(sliders):
        slider.release(
            decode,
            inputs=inputs,
            outputs=decoded,
            api_name=f"decode_{index}" if number == 0 else None,
            api_visibility="public" if number == 0 else "private",
        )
    for widget in conditional:
        widget.change(decode, inputs=inputs, outputs=decoded, api_visibility="private")
    if not model.class_names:
        with gr.Accordion("Morph between two images", open=False):
            with gr.Row():
                upload_a = gr.Image(label="Image A (or leave empty: a held-out image by seed)", type="pil")
                upload_b = gr.Image(label="Image B", type="pil")
            with gr.Row():
                seed_a, seed_b, steps = _path_inputs(gr)
            morph_button = gr.Button("Morph")
            morph = gr.Image(label="Morph", type="pil", format="png")
        morph_button.click(
            _shown(model.morph),
            inputs=[upload_a, upload_b, seed_a, seed_b, steps],
            outputs=morph,
            api_name=f"morph_{index}",
        )
    if model.attribute_names:
        names = model.attribute_names
        with gr.Accordion("Attribute vector", open=False):
            gr.Markdown("Held-out images of one label plus alpha = -1, 0, 1, 2 times (mean code of the other label "
                        "minus theirs), one row per image (White 2016).")  # fmt: skip
            with gr.Row():
                source = gr.Dropdown(names, value=names[0], label="From label")
                target = gr.Dropdown(names, value=names[-1], label="To label")
            attribute_button = gr.Button("Apply")
            attribute = gr.Image(label="Attribute vector", type="pil", format="png")
        attribute_button.click(
            _shown(model.attribute), inputs=[source, target], outputs=attribute, api_name=f"attribute_{index}"
        )


def _gan_tab(gr, model, index: int) -> None:
    with gr.Row():
        with gr.Column():
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
            conditional = _class_inputs(gr, model, guidance=False)
            button = gr.Button("Generate", variant="primary", elem_id=f"generate-{index}")
        samples = gr.Image(label="Samples", type="pil", format="png", elem_id=f"samples-{index}")
    button.click(
        _shown(model.sample), inputs=[seed, count, *conditional], outputs=samples, api_name=f"generate_{index}"
    )
    with gr.Row():
        seed_a, seed_b, steps = _path_inputs(gr)
        interpolate_button = gr.Button("Interpolate")
    path = gr.Image(label="Interpolation (spherical)", type="pil", format="png")
    interpolate_button.click(
        _shown(model.interpolate),
        inputs=[seed_a, seed_b, steps, *conditional],
        outputs=path,
        api_name=f"interpolate_{index}",
    )


def _flow_tab(gr, model, index: int) -> None:
    with gr.Row():
        with gr.Column():
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
            button = gr.Button("Generate", variant="primary", elem_id=f"generate-{index}")
        samples = gr.Image(label="Samples", type="pil", format="png", elem_id=f"samples-{index}")
    button.click(
        _shown(model.sample), inputs=[seed, count, temperature], outputs=samples, api_name=f"generate_{index}"
    )
    gr.Markdown("Upload an image: its bits/dim under the flow, against the held-out images' histogram.")
    with gr.Row():
        upload = gr.Image(label="Your image", type="pil")
        with gr.Column():
            verdict = gr.Markdown()
            histogram = gr.Image(label="Held-out bits/dim", type="pil", format="png")
    score_button = gr.Button("Score")
    score_button.click(_shown(model.score), inputs=upload, outputs=[verdict, histogram], api_name=f"score_{index}")


def _vqa_tab(gr, model, index: int) -> None:
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Image (upload, or pick a CLEVR scene below)", type="pil")
            question = gr.Textbox(label="Question", value="How many objects are there?")
            button = gr.Button("Answer", variant="primary")
        answer = gr.Textbox(label="Answer", interactive=False)
    if model.example_images:
        gr.Examples(examples=[[path] for path in model.example_images], inputs=image)
    button.click(_shown(model.answer), inputs=[image, question], outputs=answer, api_name=f"answer_{index}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` right now (the OS picks it)."""
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


TABS = {"diffusion": _diffusion_tab, "latent": _latent_tab, "gan": _gan_tab, "flow": _flow_tab, "vqa": _vqa_tab}


def build_demo(models: list[DemoModel]):
    """The Gradio app: one tab per model (`hfgen.demo.loading.load_demo_model`), queued one job at a time.

    Args:
        models (`list[DemoModel]`): the loaded folders, in tab order.

    Returns:
        `gradio.Blocks` (not launched).

    Raises:
        ImportError: gradio is not installed (``pip install 'hfgen[demo]'``).
    """
    import gradio as gr

    with gr.Blocks(title="hfgen demo", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        for index, model in enumerate(models):
            with gr.Tab(model.title, elem_id=f"tab-{index}"):
                TABS[model.kind](gr, model, index)
    demo.queue(default_concurrency_limit=1)
    return demo


def launch_demo(
    folders: list[str], port: int = 7860, share: bool = False, host: str = "127.0.0.1", block: bool = True
):
    """Load ``folders``, build the app and serve it on ``host:port``.

    Args:
        folders (`list[str]`): output folders, Hub ids or VQA adapter folders.
        port (`int`): the port; 0 picks a free one.
        share (`bool`): a public gradio.live link (needs the network).
        block (`bool`): keep serving until interrupted (False: return at once, for tests).

    Returns:
        (`gradio.Blocks`, the local URL).

    Raises:
        HfgenError: gradio missing, a folder that is not trained, or a port in use.
    """
    from hfgen.demo.loading import load_demo_model

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise HfgenError("hfgen demo needs gradio: pip install 'hfgen[demo]'") from None
    models = [load_demo_model(folder) for folder in folders]
    demo = build_demo(models)
    if not port:
        port = free_port(host)
    try:
        _app, url, _share_url = demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
        )
    except OSError as err:
        raise HfgenError(f"cannot serve on {host}:{port} ({err}); pass another --port") from None
    print(f"hfgen demo: {len(models)} tab(s) at {url}", flush=True)
    if block:
        demo.block_thread()
    return demo, url
