"""The web page in a real headless Chromium against a real `t2v serve` with API keys: the key box sets the
same-site cookie the page's uploads need, so an image dropped on the first-frame field uploads and shows, and
before the key is entered the upload route refuses it."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from t2v.service import build_services
from t2v.settings import Settings
from tests.api.test_server import Server
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, _needs_browser
from tests.web import HTTP

pytestmark = pytest.mark.slow


def test_the_key_box_lets_the_first_frame_upload_and_only_its_key_reads_it(tiny_model, tmp_path):
    _needs_browser()
    from playwright.sync_api import expect, sync_playwright

    home = tmp_path / "home"
    service = build_services(Settings(home=home, default_model=str(tiny_model)))
    _, key = service.access.create_key("alice")
    _, other = service.access.create_key("bob")
    picture = tmp_path / "first.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(picture)
    server = Server(home, tiny_model, extra_env={"GRADIO_TEMP_DIR": str(tmp_path / "gradio")}, ui=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            expect.set_options(timeout=60_000)
            uploaded = []
            # the upload itself (its progress stream, /gradio_api/upload_progress, is another route)
            page.on("response", lambda r: uploaded.append(r) if urlsplit(r.url).path == "/gradio_api/upload" else None)
            page.goto(server.url + "/")
            page.locator("#t2v-key input").fill(key)
            page.locator("#t2v-key-button").click()
            expect(page.locator("#t2v-key-status")).to_contain_text("alice")
            cookie = next(c for c in page.context.cookies() if c["name"] == "t2v_key")
            assert cookie["sameSite"] == "Strict" and cookie["value"] == key
            expect(page.locator("#t2v-image")).to_be_hidden()  # the tiny model takes no first frame
            model = page.locator("#t2v-model input")
            model.fill("Lightricks/LTX-Video")  # a model that does: its first-frame box appears
            model.press("Enter")
            page.locator("#t2v-image input[type=file]").set_input_files(str(picture))
            expect(page.locator("#t2v-image img")).to_be_visible()
            assert uploaded and uploaded[-1].status == 200, [r.status for r in uploaded]
            path = uploaded[-1].json()[0]
            src = page.locator("#t2v-image img").get_attribute("src")
            assert page.evaluate("u => fetch(u).then(r => r.status)", src) == 200  # the page reads its own upload
            browser.close()
        shown = HTTP.get(f"{server.url}/gradio_api/file={path}", cookies={"t2v_key": key})
        assert shown.status_code == 200 and Image.open(io.BytesIO(shown.content)).size == (48, 48)
        for cookies in ({}, {"t2v_key": other}):  # no key, another key: as if there were no such file
            assert HTTP.get(f"{server.url}/gradio_api/file={path}", cookies=cookies).status_code == 404
        no_key = HTTP.post(f"{server.url}/gradio_api/upload", files={"files": ("x.png", picture.read_bytes())})
        assert no_key.status_code == 401
    finally:
        server.stop()
