"""Make docs/screenshots/ui.png: the web page of `t2v ui` over the shipped t2v-shapes model, after a real clip.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots/ui.png]

It starts `t2v ui` on a free loopback port with a throwaway T2V_HOME (offline: t2v-shapes ships inside the
package), queues one clip through the REST API so the history has something in it, then drives the page in a
headless Chromium with Playwright: types a prompt, presses Generate, waits for the clip, stops the player
part-way through it, and takes a full-page screenshot. The browser is Debian's (`apt-get install chromium`),
since Playwright's own browser download is not used. Takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MODEL = "t2v-shapes"
HISTORY_PROMPT = "a blue square moving up"
PROMPT = "a red circle moving right"
SEED = 6  # t2v-shapes draws this clip's circle reddest among seeds 1-20 (its red leans orange)
VIDEO = "#t2v-video video"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"t2v ui exited with status {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"t2v ui did not answer {url} within {timeout:.0f} s")


def make_clip(base: str, prompt: str, seed: int) -> dict:
    """Queue a clip through the REST API and wait for it; the finished job."""
    job = http_json(f"{base}/v1/videos", {"prompt": prompt, "seed": seed, "formats": ["mp4", "webm"]})
    for _ in range(600):
        job = http_json(f"{base}/v1/videos/{job['id']}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    if job["status"] != "succeeded":
        sys.exit(f"the history clip did not succeed: {job.get('status')} {job.get('error')}")
    return job


def screenshot(base: str, out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            expect.set_options(timeout=180_000)
            page.goto(base + "/")
            page.locator("#t2v-generate").wait_for()
            page.locator("#t2v-prompt textarea").fill(PROMPT)
            page.locator("#t2v-seed-mode input[value='fixed']").check()
            page.locator("#t2v-seed input, #t2v-seed textarea").first.fill(str(SEED))
            page.locator("#t2v-generate").click()
            expect(page.locator("#t2v-status")).to_contain_text(f"Seed {SEED}")
            page.wait_for_function(f"() => {{ const v = document.querySelector('{VIDEO}');"
                                   " return v && v.readyState >= 2 && isFinite(v.duration) && v.duration > 0; }")
            # stop at frame 7 of 8, so the still shows the circle on its way right
            page.evaluate(f"""async () => {{
                const v = document.querySelector('{VIDEO}');
                v.muted = true; v.pause(); v.currentTime = v.duration * 0.8;
                await new Promise(done => v.seeked ? done() : v.addEventListener('seeked', done, {{once: true}}));
            }}""")
            expect(page.locator("#t2v-history img")).to_have_count(2)
            page.mouse.move(0, 0)
            page.wait_for_timeout(500)
            if "Traceback" in page.content():
                sys.exit("the page shows a traceback")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "ui.png")
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
                wait_until_up(base + "/", proc)
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
