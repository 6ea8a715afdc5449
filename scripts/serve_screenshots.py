"""Screenshots of `convnlp serve`'s page for the docs: one trained model per task, one text
typed and predicted in headless Chromium (Debian's, through Playwright).

    python scripts/serve_screenshots.py --out docs/images \
        tagging=outputs/ud_tagger:"The new rules take effect next month ." \
        generation=/tmp/g2p_convs2s:"convolution"

Each argument is NAME=CHECKPOINT:TEXT; writes NAME.png (serve_NAME.png) into --out.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

from convnlp.server.process import BROWSER_FLAGS, ServerProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shots", nargs="+", help="NAME=CHECKPOINT:TEXT")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--nbest", type=int, default=3, help="the page's n-best field (autoregressive generation)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no Chromium installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=list(BROWSER_FLAGS))
        for shot in args.shots:
            name, _, rest = shot.partition("=")
            checkpoint, _, text = rest.partition(":")
            with ServerProcess(Path("."), f"checkpoint={checkpoint}", "threads=1") as server:
                page = browser.new_page(viewport={"width": 1100, "height": 560})
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready=true]")
                page.fill("#text", text)
                if page.is_visible("#nbest"):
                    page.fill("#nbest", str(args.nbest))
                page.click("#submit")
                page.wait_for_selector("#result[data-done]")
                page.screenshot(path=str(args.out / f"serve_{name}.png"), full_page=True)
                page.close()
                server.stop()
            print(f"wrote {args.out / f'serve_{name}.png'}")
        browser.close()


if __name__ == "__main__":
    main()
