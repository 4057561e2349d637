"""Screenshots of `hfgen demo`'s tabs for the README, taken in headless Chromium (Debian's) with Playwright.

    python scripts/demo_screenshots.py [FOLDER ...] [--out docs/demo]

Starts the demo on the folders (default: the conditional MNIST DDPM and DCGAN of `python scripts/reproduce.py --only
conditional-mnist`, and the digits VAE and Real NVP of `hfgen train vae --output_dir outputs/demo/vae-digits` and
`hfgen train realnvp --output_dir outputs/demo/realnvp-digits --max_train_steps 600`), presses each tab's main
button (or moves the first slider), waits for the image and saves one PNG per tab.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

DEFAULT_FOLDERS = [
    "outputs/reproduce/conditional-mnist/conditional-ddpm",
    "outputs/demo/vae-digits",
    "outputs/reproduce/conditional-mnist/conditional-dcgan",
    "outputs/demo/realnvp-digits",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=DEFAULT_FOLDERS, help="Trained folders, one tab each.")
    parser.add_argument("--out", default="docs/demo", help="Where to write the PNGs.")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("demo_screenshots: error: needs Debian's chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    from hfgen.demo.app import launch_demo

    missing = [folder for folder in args.folders if not os.path.isdir(folder)]
    if missing:
        sys.exit(f"demo_screenshots: error: {', '.join(missing)} not found; train them first (see --help)")
    demo, url = launch_demo(args.folders, port=0, block=False)
    os.makedirs(args.out, exist_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url)
        for index, folder in enumerate(args.folders):
            page.locator(f"#tab-{index}-button, button[role=tab]").nth(index).click()
            tab = page.locator(f"#tab-{index}")
            tab.wait_for(state="visible")
            if page.locator(f"#generate-{index}").count():
                page.click(f"#generate-{index}")
                page.wait_for_selector(f"#samples-{index} img", timeout=600_000)
            else:  # the VAE tab: move the first slider
                slider = tab.locator("input[type=range]").first
                box = slider.bounding_box()
                page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)
                page.wait_for_selector(f"#decoded-{index} img", timeout=600_000)
            page.wait_for_timeout(500)
            name = os.path.basename(os.path.normpath(folder))
            path = os.path.join(args.out, f"{index}-{name}.png")
            page.screenshot(path=path)
            print(path)
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
