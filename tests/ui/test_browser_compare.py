"""The Compare tab, the queue view and the player's controls in a real headless Chromium against a real
`t2v serve` (see test_browser for what it needs): two clips play side by side in step with their differences
listed; the key's waiting jobs show in the queue table, and a row opens its job; the result player's controls
are visible without hovering.

Adds more than a minute: Chromium drives the web page against a real server making the clips it compares."""

from __future__ import annotations

import time

import pytest

from tests.api.test_server import Server
from tests.ui.test_browser import CHROMIUM_ARGS, CHROMIUM, VIDEO, server, browser, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

A, B = "#t2v-compare-a video", "#t2v-compare-b video"


def test_two_clips_play_side_by_side_in_step_with_their_differences(page, server):  # noqa: F811
    from playwright.sync_api import expect

    a = server.submit(prompt="a red circle moving right", seed=1, num_frames=16, fps=8)
    b = server.submit(prompt="a red circle moving right", seed=2, num_frames=16, fps=8, num_inference_steps=3)
    for job in (a, b):
        assert server.wait(job)["status"] == "succeeded"
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#t2v-compare-a-job input")).not_to_have_value("", timeout=30_000)
    page.locator("#t2v-compare").click()
    expect(page.locator("#t2v-compare-status")).to_contain_text("parameters differ", timeout=30_000)
    expect(page.locator("#t2v-compare-diff")).to_contain_text("Seed")
    page.wait_for_function(f"() => [{A!r}, {B!r}].every(s => {{ const v = document.querySelector(s);"
                           " return v && v.readyState >= 2 && !v.paused && v.videoWidth > 0; })")
    # both 2 s loops, both playing: sampled together again and again, they show the same moment
    gaps = []
    for _ in range(12):
        t = page.evaluate(f"() => [document.querySelector({A!r}).currentTime, document.querySelector({B!r}).currentTime]")
        gaps.append(min(abs(t[0] - t[1]), 2.0 - abs(t[0] - t[1])))  # (one may have wrapped an instant earlier)
        time.sleep(0.25)
    assert sorted(gaps)[len(gaps) // 2] < 0.15, gaps
    page.evaluate(f"() => document.querySelector({A!r}).pause()")  # B follows A's pause
    page.wait_for_function(f"() => document.querySelector({B!r}).paused")


def test_the_queue_shows_the_waiting_jobs_and_a_row_opens_one_to_cancel(browser, tiny_model, tmp_path):  # noqa: F811
    """A server that queues for workers elsewhere (--no-workers): its jobs wait, in the table, in order."""
    from playwright.sync_api import expect

    idle = Server(tmp_path / "home", tiny_model, args=["--no-workers"], ui=True,
                  extra_env={"GRADIO_TEMP_DIR": str(tmp_path / "gradio")}).start()
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        first = idle.submit(prompt="a green square waiting")
        second = idle.submit(prompt="a blue circle waiting", priority=5)
        pg = context.new_page()
        pg.goto(idle.url + "/")
        table = pg.locator("#t2v-queue-table")
        expect(table).to_contain_text("a green square waiting", timeout=30_000)  # the timer brings them in
        text = table.inner_text()  # the higher priority runs first
        assert text.index("a blue circle waiting") < text.index("a green square waiting"), text
        table.get_by_text("a blue circle waiting").click()
        expect(pg.locator("#t2v-job-id textarea, #t2v-job-id input").first).to_have_value(second)
        expect(pg.locator("#t2v-status")).to_contain_text("position 1")
        pg.locator("#t2v-cancel").click()
        expect(pg.locator("#t2v-status")).to_contain_text("Cancelled")
        assert idle.job(second)["status"] == "cancelled" and idle.job(first)["status"] == "queued"
        expect(table).not_to_contain_text("a blue circle waiting", timeout=30_000)
        expect(table).to_contain_text("a green square waiting")
    finally:
        context.close()
        idle.stop()


def test_the_result_player_shows_its_controls_without_a_hover_and_captions_are_whole(page, server):  # noqa: F811
    done = server.submit(prompt="a red circle moving right across a long green field at noon", seed=3)
    server.wait(done)
    page.locator("#t2v-refresh").click()
    page.locator("#t2v-history img").first.click()
    page.wait_for_function(f"() => {{ const v = document.querySelector({VIDEO!r}); return v && v.readyState >= 1; }}")
    page.mouse.move(0, 0)  # not hovering the player
    opacity = page.evaluate("() => { const c = document.querySelector('#t2v-video .controls');"
                            " return c ? getComputedStyle(c).opacity : null; }")
    assert opacity == "1", opacity
    captions = page.evaluate("() => [...document.querySelectorAll('#t2v-history .caption-label')]"
                             ".map(e => [e.innerText, e.scrollWidth - e.clientWidth])")
    long = [c for c in captions if "long green field" in c[0]]
    assert long and all(cut <= 1 for _, cut in long), captions  # the whole caption shows, not "a red circle m…"
