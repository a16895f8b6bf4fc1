"""The Image sequence tab in headless Chromium against a real `t2v serve` (tiny SD as the image model).

Skipped, with the reason, without /usr/bin/chromium, Playwright or Gradio (see tests/ui/test_browser.py).
"""

from __future__ import annotations

import pytest

from tests.api.test_server import Server
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, _needs_browser, number, set_number
from tests.web import HTTP

pytestmark = pytest.mark.slow

VIDEO = "#t2v-seq-video video"
SHEET = "#t2v-seq-contact-sheet img"


@pytest.fixture(scope="module")
def server(tiny_model, tiny_sd_model, tmp_path_factory):
    _needs_browser()
    tmp = tmp_path_factory.mktemp("ui-seq-server")
    s = Server(tmp / "home", tiny_model, extra_env={"GRADIO_TEMP_DIR": str(tmp / "gradio"),
                                                    "T2V_DEFAULT_IMAGE_MODEL": str(tiny_sd_model)}, ui=True).start()
    yield s
    s.stop()


@pytest.fixture
def page(server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 1000}, accept_downloads=True)
        pg = context.new_page()
        pg.goto(server.url + "/")
        pg.get_by_role("tab", name="Image sequence").click()
        pg.locator("#t2v-seq-generate").wait_for()
        yield pg
        context.close()
        browser.close()


def test_sequence_tab_rejects_bad_keyframes_then_makes_a_video_and_contact_sheet(page, server):
    from playwright.sync_api import expect

    status, keyframes = page.locator("#t2v-seq-status"), page.locator("#t2v-seq-keyframes textarea")
    model = page.locator("#t2v-seq-model input, #t2v-seq-model textarea").first
    expect(model).to_have_value(server.env["T2V_DEFAULT_IMAGE_MODEL"])  # the server's default image model
    keyframes.fill("0: a red ball\n8: a blue ball\n4: a green ball")
    page.locator("#t2v-seq-generate").click()
    expect(status.locator(".t2v-error")).to_contain_text("Keyframes: keyframe 3: frame 4 comes after frame 8")
    assert HTTP.get(f"{server.url}/v1/videos", timeout=30).json()["items"] == []  # nothing queued
    assert "Traceback" not in page.content()

    keyframes.fill("0: a red ball on grass\n3: a blue ball on grass\n5: a green ball on grass")
    expect(page.locator("#t2v-seq-note")).to_contain_text("3 keyframes → 6 frames")
    for elem_id, value in (("t2v-seq-steps", 2), ("t2v-seq-width", 32), ("t2v-seq-height", 32), ("t2v-seq-fps", 6)):
        set_number(page, elem_id, value)
    expect(number(page, "t2v-seq-width")).to_have_value("32")
    expect(page.locator("#t2v-seq-note")).to_contain_text("6 frames, 1.0 s at 6 fps")
    expect(page.locator("#t2v-seq-contact input[type=checkbox]")).to_be_checked()
    page.locator("#t2v-seq-generate").click()

    expect(status).to_contain_text("Done", timeout=120_000)
    job_id = page.locator("#t2v-seq-job-id textarea, #t2v-seq-job-id input").first.input_value()
    job = server.job(job_id)
    assert job["status"] == "succeeded" and job["request"]["mode"] == "sequence" and job["request"]["num_frames"] == 6
    seed = job["request"]["seed"]  # the seed box was left blank: drawn by the server (not a 0 sent by the page)
    assert seed != 0 and page.locator("#t2v-seq-seed input, #t2v-seq-seed textarea").first.input_value() == ""
    expect(status).to_contain_text(f"Seed {seed}.")
    expect(page.locator("#t2v-seq-progress progress")).to_have_attribute("max", "12")  # 6 frames x 2 steps

    # The player loads the WebM: 6 frames at 6 fps = 1 s.
    page.wait_for_function(f"() => {{ const v = document.querySelector('{VIDEO}');"
                           " return v && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }")
    src, duration, width = page.evaluate(f"() => {{ const v = document.querySelector('{VIDEO}');"
                                         " return [v.currentSrc, v.duration, v.videoWidth]; }")
    assert src.endswith(".webm") and width == 32 and abs(duration - 1.0) < 0.2

    # The contact sheet shows: 3 x 2 frames of 32 px with 2 px padding.
    expect(page.locator(SHEET)).to_be_visible()
    sheet = f"document.querySelector('{SHEET}')"
    page.wait_for_function(f"() => {{ const i = {sheet}; return i && i.complete && i.naturalWidth > 0; }}")
    assert page.evaluate(f"() => {{ const i = {sheet}; return [i.naturalWidth, i.naturalHeight]; }}") == [104, 70]
    expect(page.locator("#t2v-seq-denoise-grid img")).to_have_count(0)  # not asked for
    for fmt in ("mp4", "webm", "json"):
        expect(page.locator(f"#t2v-seq-download-{fmt}")).to_be_visible()
    expect(page.locator("#t2v-history img")).to_have_count(1)  # the page's history lists the sequence too
    assert "Traceback" not in page.content()

    # Choosing img2img opens its folded options (strength and camera).
    expect(page.locator("#t2v-seq-strength")).not_to_be_visible()
    page.locator("#t2v-seq-method input").click()
    page.get_by_role("option", name="img2img").click()
    expect(page.locator("#t2v-seq-strength")).to_be_visible()
    expect(page.locator("#t2v-seq-zoom")).to_be_visible()

    # Picked from the history: shown in the Video tab's result panel with its contact sheet (#20) ...
    keyframes.fill("0: something else entirely")
    page.locator("#t2v-history img").first.click()
    expect(page.locator("#t2v-job-id textarea, #t2v-job-id input").first).to_have_value(job_id)
    expect(page.locator("#t2v-contact-sheet img")).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector('#t2v-contact-sheet img');"
                           " return i && i.complete && i.naturalWidth === 104 && i.naturalHeight === 70; }")
    # ... and Remix puts its keyframes, method and seed back in the Image sequence tab, which comes to the front.
    page.locator("#t2v-remix").click()
    expect(keyframes).to_be_visible()
    expect(keyframes).to_have_value("0: a red ball on grass\n3: a blue ball on grass\n5: a green ball on grass")
    expect(page.locator("#t2v-seq-seed input, #t2v-seq-seed textarea").first).to_have_value(str(seed))
    expect(page.locator("#t2v-seq-method input")).to_have_value("latent-walk")
    expect(page.locator("#t2v-prompt textarea")).to_have_value("")  # the video form is left alone
    assert "Traceback" not in page.content()
