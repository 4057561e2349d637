"""`hfgen demo`'s diffusion tab: DDPM with any diffusers scheduler, class-conditional DDPM and NCSN, the chain
streamed."""

from __future__ import annotations

import queue
import threading
import time

from hfgen.demo.common import MAX_IMAGES, DemoInputError, DemoModel, grid, image_count, seeded_generator
from hfgen.errors import HfgenError


class DiffusionDemo(DemoModel):
    """DDPM (any diffusers scheduler), a class-conditional DDPM (with classifier-free guidance) or an NCSN (annealed
    Langevin dynamics; the steps are Langevin steps per noise level)."""

    kind = "diffusion"

    @property
    def is_langevin(self) -> bool:
        return not type(self.pipeline.scheduler).__module__.startswith("diffusers.")

    @property
    def scheduler_choices(self) -> list[str]:
        from hfgen.pipelines.scheduling import scheduler_names

        return ["annealed-langevin"] if self.is_langevin else scheduler_names()

    @property
    def default_scheduler(self) -> str:
        return "annealed-langevin" if self.is_langevin else "ddim"

    @property
    def default_steps(self) -> int:
        return int(self.pipeline.scheduler.config.steps_per_level) if self.is_langevin else min(50, self.max_steps)

    @property
    def max_steps(self) -> int:
        config = self.pipeline.scheduler.config
        return 200 if self.is_langevin else int(config.num_train_timesteps)

    def _options(self, scheduler, steps) -> tuple[dict, int]:
        try:
            steps = int(steps)
        except (TypeError, ValueError):
            raise DemoInputError(f"steps must be a whole number, got {steps!r}") from None
        if not 1 <= steps <= self.max_steps:
            raise DemoInputError(f"steps must be between 1 and {self.max_steps}, got {steps}")
        if self.is_langevin:
            return {"pipeline_kwargs": {"steps_per_level": steps}}, steps
        if scheduler not in self.scheduler_choices:
            raise DemoInputError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(self.scheduler_choices)}")
        return {"scheduler_name": scheduler, "num_inference_steps": steps}, steps

    def generate(self, scheduler, steps, seed, num_images, class_name=None, guidance_scale=1.0, on_step=None):
        """Sample ``num_images`` images.

        Args:
            scheduler (`str`): a short scheduler name (`scheduler_choices`); ignored by NCSN.
            steps (`int`): denoising steps (DDPM family) or Langevin steps per noise level (NCSN).
            seed (`int`): makes the images reproducible.
            num_images (`int`): 1 to `MAX_IMAGES`.
            class_name (`str`, *optional*): the class of every image (conditional models); None: every class in turn.
            guidance_scale (`float`): classifier-free guidance w (conditional models; 1 = none).
            on_step (callable, *optional*): ``on_step(index, latents)`` after each step (``latents`` `(B, C, H, W)`).

        Returns:
            (`PIL.Image.Image` grid, `str` with the sampler, network evaluations per image and images/s).

        Raises:
            DemoInputError: out-of-range steps, images or guidance, an unknown scheduler or class.
        """
        from hfgen.pipelines.sampling import sample_images

        count = image_count(num_images)
        options, steps = self._options(scheduler, steps)
        label = self.class_label(class_name)
        conditional = {}
        if self.class_names:
            conditional["class_labels"] = label
            conditional["guidance_scale"] = float(guidance_scale)
        if on_step is not None:
            options.setdefault("pipeline_kwargs", {})["callback_on_step_end"] = _callback(on_step)
        start = time.perf_counter()
        with self._lock:
            try:
                result = sample_images(
                    self.pipeline,
                    count,
                    generator=seeded_generator(seed),
                    show_progress=False,
                    batch_size=MAX_IMAGES,
                    **options,
                    **conditional,
                )
            except DemoInputError:
                raise
            except HfgenError as err:
                raise DemoInputError(str(err)) from None
        seconds = time.perf_counter() - start
        info = (
            f"{count} images with {result.scheduler_name} ({result.network_evaluations} network evaluations per "
            f"image) in {seconds:.2f} s: {count / seconds:.1f} images/s"
        )
        return grid(result.images), info

    def chain(self, scheduler, steps, seed, num_images, class_name=None, guidance_scale=1.0, frames: int = 10):
        """Like `generate`, but yields the images on the way (about ``frames`` grids of x_t, or the end of each
        noise level for NCSN), then the final grid with the speed line.

        Yields:
            (`PIL.Image.Image` grid, `str` progress or speed line).
        """
        updates: queue.Queue = queue.Queue()
        _options, total = self._options(scheduler, steps)
        levels = int(self.pipeline.scheduler.config.num_noise_levels) if self.is_langevin else 0
        if self.is_langevin:  # a frame at the end of each noise level; L * T Langevin steps + 1 denoising step
            every, total = total, total * levels + 1
        else:
            every = max(1, total // frames)

        def on_step(index, latents):
            if (index + 1) % every == 0 and index + 1 < total:
                updates.put(("step", index + 1, ((latents.detach().float() + 1) / 2).clamp(0, 1).cpu()))

        def run():
            try:
                updates.put(("done", *self.generate(scheduler, steps, seed, num_images, class_name, guidance_scale,
                                                    on_step)))  # fmt: skip
            except Exception as err:  # noqa: BLE001 - handed to the caller's thread below
                updates.put(("error", err, None))

        threading.Thread(target=run, daemon=True).start()
        while True:
            kind, first, second = updates.get()
            if kind == "error":
                raise first
            if kind == "done":
                yield first, second
                return
            if self.is_langevin:
                yield grid(second), f"noise level {first // every} of {levels}"
            else:
                yield grid(second), f"step {first} of {total}"


def _callback(on_step):
    """diffusers' ``callback_on_step_end(pipeline, index, timestep, callback_kwargs)`` calling ``on_step``."""

    def callback(pipeline, index, timestep, callback_kwargs):
        on_step(index, callback_kwargs["latents"])
        return callback_kwargs

    return callback
