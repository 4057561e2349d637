"""`hfgen demo`'s flow tab: samples with a temperature, the bits/dim of an upload against the held-out histogram."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from hfgen.demo.common import DemoInputError, DemoModel, grid, image_count, seeded_generator, uploaded_image


class FlowDemo(DemoModel):
    """Real NVP: samples with a temperature, and the bits/dim of an uploaded image against the held-out histogram."""

    kind = "flow"

    def __init__(self, folder: str, pipeline):
        super().__init__(folder, pipeline)
        images, _ = self._held_out(max_images=500)
        self.held_out_bpd = None
        if images is not None:
            self.held_out_bpd = pipeline.bits_per_dim(images, generator=torch.Generator().manual_seed(0)).cpu()

    def sample(self, seed, num_images, temperature=1.0) -> Image.Image:
        """``num_images`` samples of z ~ N(0, temperature^2 I) pushed through the inverse flow."""
        count = image_count(num_images)
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            raise DemoInputError(f"temperature must be a number, got {temperature!r}") from None
        if not 0 < temperature <= 2:
            raise DemoInputError(f"temperature must be in (0, 2], got {temperature}")
        with self._lock:
            images = self.pipeline(
                batch_size=count, generator=seeded_generator(seed), temperature=temperature, output_type="pt"
            ).images
        return grid(images)

    def score(self, upload) -> tuple[str, Image.Image | None]:
        """Bits/dim of an uploaded image and a verdict against the held-out histogram (a typicality test: in
        distribution when its bits/dim fall between the 1st and 99th percentile of the held-out images'; flows give
        some out-of-distribution images *lower* bits/dim, Nalisnick et al. 2019, so both tails count).

        Returns:
            (`str` verdict line, `PIL.Image.Image` histogram with the upload marked, or None without held-out data).
        """
        cfg = self.pipeline.flow.config
        image = uploaded_image(upload, cfg.sample_size, cfg.in_channels)
        with self._lock:
            bpd = float(self.pipeline.bits_per_dim(image, generator=torch.Generator().manual_seed(0))[0])
        if self.held_out_bpd is None:
            return f"{bpd:.3f} bits/dim (no held-out data here to compare with)", None
        held = self.held_out_bpd
        percentile = float((held < bpd).float().mean() * 100)
        low, high = np.percentile(held.numpy(), [1, 99])
        if bpd < low:
            verdict = "out of distribution (atypically LOW bits/dim: simpler than the training images)"
        elif bpd > high:
            verdict = "out of distribution (higher bits/dim than 99% of the held-out images)"
        else:
            verdict = "in distribution (typical bits/dim)"
        line = f"{bpd:.3f} bits/dim, percentile {percentile:.1f} of {len(held)} held-out images: {verdict}"
        return line, _histogram(held.numpy(), bpd, (low, high))


def _histogram(values: np.ndarray, marked: float, band: tuple[float, float]) -> Image.Image:
    """A histogram of ``values`` with ``marked`` as a red line and ``band`` shaded, as a PIL image."""
    import io

    from hfgen.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=100)
    ax.hist(values, bins=30, color="#4c72b0", alpha=0.8, label="held-out images")
    ax.axvspan(*band, color="#55a868", alpha=0.15, label="1st-99th percentile")
    ax.axvline(marked, color="#c44e52", linewidth=2, label="your image")
    ax.set_xlabel("bits/dim")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
