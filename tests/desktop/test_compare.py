"""History, Compare: two past jobs side by side in one window, their clips played by one timer, and the parameters
that differ listed, under Xvfb against a real ``t2v serve``.

Adds more than a minute: two jobs are made by a real server and played side by side by the Tk app under Xvfb."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from t2v.client import Client
from tests.desktop.conftest import SMALL, pump, ready


def test_compare_plays_two_jobs_in_step_and_lists_what_differs(display, root, server, make_app, tmp_path):
    from PIL import ImageGrab

    client = Client(server.url, server.key)
    # A: 4 frames, seed 1; B: 6 frames, seed 2 (the same prompt and fps): B is the longer clip
    jobs = [client.submit("a compared ball", seed=seed, formats=["mp4"], **{**SMALL, "num_frames": frames})
            for seed, frames in ((1, 4), (2, 6))]
    jobs = [client.wait(job.id, timeout=120) for job in jobs]
    assert [job.status for job in jobs] == ["succeeded", "succeeded"]
    app = make_app()
    app.report_path = str(tmp_path / "window.json")
    pump(root, lambda: ready(app) and {j.id for j in jobs} <= set(app.history.jobs), 30, "the history", app)
    table = app.history.table

    table.selection_set(jobs[0].id)
    app.history.compare_button.invoke()
    assert app.error.cget("text") == "⚠ Compare: select two jobs (Ctrl-click the second); 1 selected"
    assert app.comparing is None

    table.selection_set(jobs[1].id, jobs[0].id)
    app.history.compare_button.invoke()
    window = app.comparing
    pump(root, lambda: window.playing or "⚠" in window.status.cget("text"), 60, "the two clips", app)
    assert window.playing, window.status.cget("text")
    a, b = window.jobs  # the table's order: newest first
    assert (a.id, b.id) == (jobs[1].id, jobs[0].id)
    assert [len(p.photos) for p in window.players] == [6, 4]
    assert window.players[0].photos[0].width() == 320  # each at the compare window's size
    assert window.differences.splitlines() == ["Frames: A 6 | B 4", "Seed: A 2 | B 1"]
    assert "2 parameters differ" in window.text.cget("text")

    # one timer: each tick shows the same instant of both; the shorter (B) holds its last frame until A ends
    seen = []
    for _ in range(40):
        ticks = window.ticks
        pump(root, lambda: window.ticks > ticks, 5, "a tick", app)
        ia, ib = (p.current for p in window.players)
        seen.append((ia, ib))
        assert ib == min(ia, 3), seen
        for screen, player in zip(window.screens, window.players):
            assert root.tk.splitlist(screen.cget("image")) == (str(player.photos[player.current]),)
    assert {ia for ia, _ in seen} == set(range(6))  # A played through, and looped
    assert (5, 3) in seen and (0, 0) in seen[1:]  # B held its last frame, then both started again together
    app.report()
    report = json.loads(Path(app.report_path).read_text())["compare"]
    assert report["playing"] and report["frames"][1] == min(report["frames"][0], 3)
    assert report["differences"] == window.differences

    # on screen: a picture in each player, and not the same one (different seeds)
    root.update()
    shots = []
    for screen in window.screens:
        x, y, w, h = screen.winfo_rootx(), screen.winfo_rooty(), screen.winfo_width(), screen.winfo_height()
        left, top = x + (w - 320) // 2, y + (h - 320) // 2
        shot = ImageGrab.grab(bbox=(left, top, left + 320, top + 320), xdisplay=display).convert("RGB")
        shots.append(np.asarray(shot).astype(int))
    assert all(shot.std() > 5 for shot in shots)  # pictures, not blank labels
    assert np.abs(shots[0] - shots[1]).mean() > 5

    window.close()
    assert not window.playing and app.report() is None and app.comparing.closed
