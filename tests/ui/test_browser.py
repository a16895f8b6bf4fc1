"""The web page in a real headless Chromium against a real `t2v serve` on a loopback port.

Needs Chromium at /usr/bin/chromium (Debian: apt-get install chromium) and Playwright for Python; skipped
with the reason otherwise. Set T2V_UPDATE_SCREENSHOT=1 to rewrite docs/screenshots/ui.png.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.api.test_server import Server
from tests.web import HTTP

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "ui.png"
VIDEO = "#t2v-video video"


def _needs_browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian/Ubuntu: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright; the browser comes from apt)")
    try:
        import gradio  # noqa: F401
    except ImportError:
        pytest.skip("Gradio is not installed: `t2v serve` has no web UI")


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    _needs_browser()
    tmp = tmp_path_factory.mktemp("ui-server")
    s = Server(tmp / "home", tiny_model, extra_env={"GRADIO_TEMP_DIR": str(tmp / "gradio")}, ui=True).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    context = browser.new_context(viewport={"width": 1360, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.goto(server.url + "/")
    pg.locator("#t2v-generate").wait_for()
    yield pg
    context.close()


def number(page, elem_id):
    return page.locator(f"#{elem_id} input[type=number]")


def set_number(page, elem_id, value):
    box = number(page, elem_id)
    box.fill(str(value))
    box.press("Enter")


def test_api_routes_still_answer_beside_the_page(server):
    models = HTTP.get(f"{server.url}/v1/models", timeout=30)
    assert models.status_code == 200 and models.json()["default"] == server.model.name
    assert HTTP.get(f"{server.url}/healthz", timeout=30).json() == {"status": "ok"}
    assert HTTP.get(f"{server.url}/readyz", timeout=30).status_code == 200
    assert "/v1/videos" in HTTP.get(f"{server.url}/openapi.json", timeout=30).json()["paths"]
    assert "swagger" in HTTP.get(f"{server.url}/docs", timeout=30).text.lower()
    assert "t2v_jobs" in HTTP.get(f"{server.url}/metrics", timeout=30).text
    assert HTTP.get(f"{server.url}/v1/videos/nope", timeout=30).status_code == 404
    home = HTTP.get(f"{server.url}/", timeout=30)
    assert home.status_code == 200 and "gradio" in home.text.lower()


def test_generate_play_download_history_remix_and_delete(page, server):
    from playwright.sync_api import expect

    prompt = "a red ball bouncing on green grass"
    page.locator("#t2v-prompt textarea").fill(prompt)
    expect(page.locator("#t2v-image")).to_be_hidden()  # a text-only model: no first-frame box
    page.locator("#t2v-preset-fast").click()  # tiny model: 8 frames, 2 steps, at its own 64x64
    expect(number(page, "t2v-steps")).to_have_value("2")
    expect(number(page, "t2v-width")).to_have_value("64")
    page.locator("#t2v-generate").click()

    expect(page.locator("#t2v-status")).to_contain_text("Done", timeout=90_000)
    job_id = page.locator("#t2v-job-id textarea, #t2v-job-id input").first.input_value()
    job = server.job(job_id)
    assert job["status"] == "succeeded" and job["request"]["prompt"] == prompt
    seed = job["request"]["seed"]
    expect(page.locator("#t2v-status")).to_contain_text(f"Seed {seed}")
    expect(page.locator("#t2v-info")).to_contain_text("Timings")

    # The player has loaded a clip Chromium decodes (WebM/VP9), 8 frames at 8 fps = 1 s, and it plays.
    page.wait_for_function(f"() => {{ const v = document.querySelector('{VIDEO}');"
                           " return v && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }")
    src, duration, width = page.evaluate(f"() => {{ const v = document.querySelector('{VIDEO}');"
                                         " return [v.currentSrc, v.duration, v.videoWidth]; }")
    assert src.endswith(".webm") and width == 64 and abs(duration - 1.0) < 0.2
    # The player's URL is a private copy in Gradio's cache: it names neither the job nor T2V_HOME.
    assert job_id not in src and str(server.home) not in src and re.search(r"/t2v-[0-9a-f]{32}/video\.webm$", src), src
    page.evaluate(f"() => {{ const v = document.querySelector('{VIDEO}'); v.muted = true; return v.play(); }}")
    page.wait_for_function(f"() => document.querySelector('{VIDEO}').currentTime > 0")
    page.evaluate(f"() => document.querySelector('{VIDEO}').pause()")

    # Download buttons for every format; the JSON record is the job's.
    for fmt in ("mp4", "webm", "gif", "json"):
        expect(page.locator(f"#t2v-download-{fmt}")).to_be_visible()
    with page.expect_download() as download:
        page.locator("#t2v-download-json").click()
    record = json.loads(Path(download.value.path()).read_text())
    assert record["seed"] == seed and record["prompt"] == prompt and record["num_frames"] == 8
    with page.expect_download() as download:
        page.locator("#t2v-download-mp4").click()
    assert download.value.suggested_filename == f"a-red-ball-bouncing-on-green-grass-seed{seed}.mp4"
    assert Path(download.value.path()).stat().st_size > 0

    # History shows the job; change the form, pick the job, Remix: the form has its parameters again.
    thumbs = page.locator("#t2v-history img")
    expect(thumbs).to_have_count(1)
    page.locator("#t2v-prompt textarea").fill("something else entirely")
    page.locator("#t2v-preset-quality").click()
    expect(number(page, "t2v-steps")).to_have_value("4")
    thumbs.first.click()
    expect(page.locator("#t2v-job-id textarea, #t2v-job-id input").first).to_have_value(job_id)
    page.locator("#t2v-remix").click()
    expect(page.locator("#t2v-prompt textarea")).to_have_value(prompt)
    expect(number(page, "t2v-steps")).to_have_value("2")
    expect(number(page, "t2v-width")).to_have_value("64")
    expect(number(page, "t2v-height")).to_have_value("64")
    expect(number(page, "t2v-frames")).to_have_value("8")
    expect(page.locator("#t2v-seed input, #t2v-seed textarea").first).to_have_value(str(seed))  # a text box
    expect(page.locator("#t2v-seed-mode input[value='fixed']")).to_be_checked()
    assert "Traceback" not in page.content()

    if os.environ.get("T2V_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator("#t2v-delete").click()  # declined: nothing goes
    expect(page.locator("#t2v-status")).to_contain_text("Nothing deleted.")
    assert asked == [f"Delete job {job_id} and its files?"] and server.job(job_id)["status"] == "succeeded"
    page.once("dialog", lambda d: d.accept())
    page.locator("#t2v-delete").click()  # the job shown: row and files go, the history empties
    expect(page.locator("#t2v-status")).to_contain_text("Deleted the job and its files.")
    expect(thumbs).to_have_count(0)
    assert HTTP.get(f"{server.url}/v1/videos/{job_id}", timeout=30).status_code == 404


def test_live_progress_cancel_and_readable_errors(page, server):
    from playwright.sync_api import expect

    status = page.locator("#t2v-status")
    for name in ("cancel", "pause", "resume"):  # no job shown: nothing for them to act on
        expect(page.locator(f"#t2v-{name}")).to_be_disabled()
    page.locator("#t2v-generate").click()  # no prompt yet
    expect(status.locator(".t2v-error")).to_contain_text("Prompt: describe the video")

    page.locator("#t2v-prompt textarea").fill("a long slow sunrise")
    set_number(page, "t2v-width", 52)
    page.locator("#t2v-generate").click()
    expect(status.locator(".t2v-error")).to_contain_text("Width: must be a multiple of 8, got 52")

    set_number(page, "t2v-width", 32)
    set_number(page, "t2v-height", 32)
    set_number(page, "t2v-steps", 300)
    page.locator("#t2v-generate").click()
    bar = page.locator("#t2v-progress progress")
    page.wait_for_function("() => { const p = document.querySelector('#t2v-progress progress');"
                           " return p && p.max == 300 && p.value >= 1; }", timeout=90_000)
    expect(page.locator("#t2v-progress")).to_contain_text(re.compile(r"step \d+ / 300 · ETA"))
    expect(status).to_contain_text(re.compile(r"Denoising: step \d+ of 300"))
    expect(page.locator("#t2v-preview img")).to_be_visible()  # the latent preview, rewritten as it denoises
    job_id = page.locator("#t2v-job-id textarea, #t2v-job-id input").first.input_value()
    assert server.job(job_id)["status"] == "running" and int(bar.get_attribute("max")) == 300

    expect(page.locator("#t2v-pause")).to_be_enabled()
    expect(page.locator("#t2v-resume")).to_be_disabled()
    page.locator("#t2v-cancel").click()
    expect(status).to_contain_text("Cancelled.")
    for name in ("cancel", "pause", "resume"):  # a finished job: off
        expect(page.locator(f"#t2v-{name}")).to_be_disabled()
    job = server.job(job_id)
    assert job["status"] == "cancelled" and job["progress"]["step"] < 300
    # The cancelled job is in the history (newest first), so it can be picked and deleted (#20).
    page.locator("#t2v-history img").first.click()
    expect(page.locator("#t2v-job-id textarea, #t2v-job-id input").first).to_have_value(job_id)
    expect(status).to_have_text("Cancelled.")
    page.once("dialog", lambda d: d.accept())
    page.locator("#t2v-delete").click()
    expect(status).to_contain_text("Deleted the job and its files.")
    assert HTTP.get(f"{server.url}/v1/videos/{job_id}", timeout=30).status_code == 404

    model = page.locator("#t2v-model input")
    model.fill("/no/such/model")
    model.press("Enter")
    page.locator("#t2v-generate").click()
    expect(status.locator(".t2v-error")).to_contain_text("Model unavailable: this model is not available on this server")
    assert "Traceback" not in page.content()


def test_a_long_video_plays_in_the_page_before_the_job_ends(page, server):
    """--seconds on the tiny model runs in segments: at the first one the player gets the clip so far (the
    growing mp4 the worker streams) and plays it while the job is still running."""
    from playwright.sync_api import expect

    page.locator("#t2v-prompt textarea").fill("a slow river at dawn")
    page.locator("#t2v-long").get_by_text("Longer video").click()
    for elem_id, value in (("t2v-width", 32), ("t2v-height", 32), ("t2v-steps", 150), ("t2v-seconds", 8)):
        set_number(page, elem_id, value)
    page.locator("#t2v-generate").click()
    page.wait_for_function(f"() => {{ const v = document.querySelector('{VIDEO}');"
                           " return v && v.currentSrc.endsWith('.mp4') && v.readyState >= 2; }", timeout=120_000)
    page.evaluate(f"() => {{ const v = document.querySelector('{VIDEO}'); v.muted = true; return v.play(); }}")
    page.wait_for_function(f"() => document.querySelector('{VIDEO}').currentTime > 0")
    job_id = page.locator("#t2v-job-id textarea, #t2v-job-id input").first.input_value()
    job = server.job(job_id)
    assert job["status"] == "running" and job["progress"]["step"] < job["progress"]["total"], job["progress"]
    page.locator("#t2v-cancel").click()
    expect(page.locator("#t2v-status")).to_contain_text("Cancelled.")


@pytest.mark.parametrize("viewport", [(1366, 900), (1920, 1080)])
def test_generate_the_progress_and_the_player_are_in_the_first_screenful(browser, server, viewport):
    w, h = viewport
    context = browser.new_context(viewport={"width": w, "height": h})
    try:
        pg = context.new_page()
        pg.goto(server.url + "/")
        pg.locator("#t2v-generate").wait_for()
        for elem in ("#t2v-prompt", "#t2v-model", "#t2v-generate", "#t2v-status", "#t2v-progress", "#t2v-video"):
            box = pg.locator(elem).bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= h, (elem, box, viewport)
        assert pg.evaluate("() => window.scrollY") == 0
    finally:
        context.close()


def test_a_value_out_of_range_is_refused_by_name_and_never_changed(page, server):
    from playwright.sync_api import expect

    before = len(HTTP.get(f"{server.url}/v1/videos", timeout=30).json()["items"])
    page.locator("#t2v-prompt textarea").fill("a red circle moving right")
    set_number(page, "t2v-frames", 600)
    page.locator("#t2v-prompt textarea").click()  # the box loses focus: the value stays as typed
    expect(number(page, "t2v-frames")).to_have_value("600")
    page.locator("#t2v-generate").click()
    error = page.locator("#t2v-status .t2v-error")
    expect(error).to_contain_text("Frames:")
    expect(error).to_contain_text("512")
    expect(number(page, "t2v-frames")).to_have_value("600")
    expect(page.locator("#t2v-generate")).to_be_enabled()  # ready for the corrected value
    assert len(HTTP.get(f"{server.url}/v1/videos", timeout=30).json()["items"]) == before
