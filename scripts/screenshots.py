"""Make the web page's screenshots in docs/screenshots/ from `t2v ui` over the shipped t2v-shapes model, and
check the pixels of each state they show.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

It starts `t2v ui` on a free loopback port with a throwaway T2V_HOME (offline: t2v-shapes ships inside the
package), queues one clip through the REST API so the history has something in it, then drives the page in a
headless Chromium with Playwright and writes:

- ui.png: the whole page after typing a prompt and pressing Generate, the player stopped part-way through;
- ui-first-screen.png: the first screenful at 1366x900, where Generate, the progress bar and the player must
  all be, the player showing the clip (its red circle: reddish pixels counted in the player's box);
- ui-error.png: a value over the server's limit refused by name: the error line wholly inside the screen, its
  text not cut (scrollWidth within its box) and drawn in red;
- ui-compare.png: the Compare tab with two clips playing in step: both players show a picture, and not the
  same one.

A check that fails stops the script with its numbers. The browser is Debian's (`apt-get install chromium`),
since Playwright's own browser download is not used. Takes about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from shotkit import free_port, make_clip, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MODEL = "t2v-shapes"
HISTORY_PROMPT = "a blue square moving up"
PROMPT = "a red circle moving right"
SEED = 6  # t2v-shapes draws this clip's circle reddest among seeds 1-20 (its red leans orange)
VIDEO = "#t2v-video video"


def in_view(page, selector: str, viewport: tuple[int, int]) -> dict:
    """The element's box; exits unless it lies inside the first screenful."""
    box = page.locator(selector).first.bounding_box()
    w, h = viewport
    if box is None or box["x"] < 0 or box["y"] < 0 or box["x"] + box["width"] > w or box["y"] + box["height"] > h:
        sys.exit(f"{selector} is not inside the first {w}x{h} screenful: {box}")
    return box


def pixels(page, box: dict):
    """The screen inside ``box`` as an RGB numpy array."""
    import io

    import numpy as np
    from PIL import Image

    shot = page.screenshot(clip={k: box[k] for k in ("x", "y", "width", "height")})
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def check(name: str, value: float, low: float) -> None:
    print(f"  {name}: {value:g} (at least {low:g})")
    if value < low:
        sys.exit(f"check failed: {name} is {value:g}, under {low:g}")


def play_until(page, selector: str) -> None:
    page.wait_for_function(f"() => {{ const v = document.querySelector('{selector}');"
                           " return v && v.readyState >= 2 && isFinite(v.duration) && v.duration > 0; }")


def stop_at(page, selector: str, fraction: float) -> None:
    page.evaluate(f"""async () => {{
        const v = document.querySelector('{selector}');
        v.muted = true; v.pause(); v.currentTime = v.duration * {fraction};
        await new Promise(done => v.seeked ? done() : v.addEventListener('seeked', done, {{once: true}}));
    }}""")


def generate(page, prompt: str, seed: int) -> None:
    from playwright.sync_api import expect

    page.locator("#t2v-prompt textarea").fill(prompt)
    page.locator("#t2v-seed-mode input[value='fixed']").check()
    page.locator("#t2v-seed input, #t2v-seed textarea").first.fill(str(seed))
    page.locator("#t2v-generate").click()
    expect(page.locator("#t2v-status")).to_contain_text(f"Seed {seed}")
    play_until(page, VIDEO)


def screenshot(base: str, out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            expect.set_options(timeout=180_000)
            view = (1366, 900)
            page = browser.new_page(viewport={"width": view[0], "height": view[1]})
            page.goto(base + "/")
            page.locator("#t2v-generate").wait_for()
            generate(page, PROMPT, SEED)
            stop_at(page, VIDEO, 0.8)  # frame 7 of 8: the circle on its way right
            expect(page.locator("#t2v-history img")).to_have_count(2)
            page.mouse.move(0, 0)
            page.wait_for_timeout(500)
            if "Traceback" in page.content():
                sys.exit("the page shows a traceback")
            print("ui-first-screen.png")
            for selector in ("#t2v-prompt", "#t2v-model", "#t2v-generate", "#t2v-progress"):
                in_view(page, selector, view)
            rgb = pixels(page, in_view(page, VIDEO, view))
            red = ((rgb[..., 0] > 150) & (rgb[..., 0] > rgb[..., 1] + 60) & (rgb[..., 0] > rgb[..., 2] + 60)).sum()
            check("reddish pixels in the player", red, 200)
            page.screenshot(path=str(out / "ui-first-screen.png"))
            page.screenshot(path=str(out / "ui.png"), full_page=True)

            print("ui-error.png")
            frames = page.locator("#t2v-frames input[type=number]")
            frames.fill("600")
            frames.press("Enter")
            page.locator("#t2v-generate").click()
            error = page.locator("#t2v-status .t2v-error")
            expect(error).to_contain_text("Frames:")
            box = in_view(page, "#t2v-status .t2v-error", view)
            cut = page.evaluate("() => { const e = document.querySelector('#t2v-status .t2v-error');"
                                " return e.scrollWidth - e.clientWidth; }")
            check("error text not cut (clientWidth - scrollWidth)", -cut, 0)
            rgb = pixels(page, box)
            check("red text pixels in the error line",
                  ((rgb[..., 0] > 140) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum(), 30)
            page.screenshot(path=str(out / "ui-error.png"))
            frames.fill("8")
            frames.press("Enter")

            print("ui-compare.png")
            page.get_by_role("tab", name="Compare").click()
            expect(page.locator("#t2v-compare-b-job input")).not_to_have_value("")
            page.locator("#t2v-compare").click()
            expect(page.locator("#t2v-compare-status")).to_contain_text("differ")
            a, b = "#t2v-compare-a video", "#t2v-compare-b video"
            play_until(page, a)
            play_until(page, b)
            for selector in (a, b):
                stop_at(page, selector, 0.5)
            page.mouse.move(0, 0)
            page.wait_for_timeout(300)
            shots = [pixels(page, page.locator(sel).bounding_box()) for sel in (a, b)]
            for name, rgb in zip("AB", shots):
                check(f"distinct colours in player {name}", len({tuple(c) for c in rgb[::4, ::4].reshape(-1, 3)}), 20)
            h, w = min(shots[0].shape[0], shots[1].shape[0]), min(shots[0].shape[1], shots[1].shape[1])
            check("mean difference between the two players", float(abs(shots[0][:h, :w] - shots[1][:h, :w]).mean()), 1)
            page.screenshot(path=str(out / "ui-compare.png"))
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="the folder to write into")
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"no Chromium at {CHROMIUM} (Debian/Ubuntu: apt-get install chromium)")

    with tempfile.TemporaryDirectory(prefix="t2v-screenshots-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "T2V_HOME": str(home), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1",
               "GRADIO_TEMP_DIR": str(Path(tmp) / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
        for name in ("T2V_MODEL", "T2V_DEFAULT_MODEL", "T2V_DATABASE_URL", "T2V_STORAGE_URL", "T2V_SERVER"):
            env.pop(name, None)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(Path(tmp) / "ui.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "t2v", "ui", "--port", str(port), "--model", MODEL],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
            try:
                wait_until_up(base + "/", proc, name="t2v ui")
                job = make_clip(base, HISTORY_PROMPT, seed=5)
                print(f"history clip: {job['id']} ({HISTORY_PROMPT!r})")
                screenshot(base, args.out)
            except BaseException:
                log.flush()
                sys.stderr.write((Path(tmp) / "ui.log").read_text(errors="replace")[-4000:])
                raise
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
