"""Make the desktop app's screenshots in docs/screenshots/, from a real run over the shipped t2v-shapes model:

    .venv/bin/python scripts/desktop_screenshots.py [--out docs/screenshots]

It starts `t2v serve --model t2v-shapes` on a free loopback port with a throwaway T2V_HOME (offline: the model
ships inside the package), queues one clip through the REST API so the history has something in it, starts its
own Xvfb display and runs `t2v desktop` there with T2V_DESKTOP_REPORT set: the JSON report gives the boxes of the
widgets, and xdotool clicks and types into them as a person would. It writes

- desktop.png: "a blue square moving down" (seed fixed) generated and playing in the player;
- desktop-error.png: Frames 600, over the model's limit: the error line under the form;
- desktop-small.png: the window at its smallest size (900x650) with a clip playing;
- desktop-compare.png: the Compare window with two clips of the history side by side.

Each picture is checked first (the numbers are printed); the script exits non-zero when a check fails. Needs
Xvfb and xdotool (apt-get install xvfb xdotool). Takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from shotkit import Failed, free_port, http_json, make_clip, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
MODEL = "t2v-shapes"
HISTORY_PROMPT, HISTORY_SEED = "a red circle moving right", 6
PROMPT, SEED = "a blue square moving down", 3
TITLE = "t2v: text to video"
SIZE, SMALL = (1040, 780), (900, 650)


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """An Xvfb display of its own (Xvfb picks a free number and writes it to a pipe)."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x960x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write,))
    os.close(write)
    with os.fdopen(read) as pipe:
        ready, _, _ = select.select([pipe], [], [], 30)
        number = pipe.readline().strip() if ready else ""
    if not number.isdigit():
        proc.kill()
        raise Failed(f"Xvfb did not start (exit code {proc.poll()})")
    return proc, f":{number}"


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Window:
    """The running `t2v desktop`: its report, and xdotool on its display."""

    def __init__(self, display: str, report: Path, proc: subprocess.Popen) -> None:
        self.display, self.path, self.proc = display, report, proc

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(["xdotool", *args], check=True, timeout=30, capture_output=True, text=True,
                              env={**os.environ, "DISPLAY": self.display})
        return done.stdout

    def state(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, until, what: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state and until(state):
                return state
            if self.proc.poll() is not None:
                raise Failed(f"t2v desktop exited with status {self.proc.returncode} waiting for {what}")
            if time.monotonic() > deadline:
                raise Failed(f"timed out waiting for {what}; the window reported status {state.get('status')!r}, "
                             f"error {state.get('error')!r}")
            time.sleep(0.1)

    def click(self, box: list[int], *, left: int | None = None, ctrl: bool = False) -> None:
        """Click ``box``'s centre (or ``left`` pixels in from its left edge: a spin box's text, not its arrows)."""
        x, y, w, h = box
        at = (str(x + (left if left is not None else w // 2)), str(y + h // 2))
        if ctrl:
            self.xdotool("mousemove", *at, "keydown", "ctrl", "click", "1", "keyup", "ctrl")
        else:
            self.xdotool("mousemove", *at, "click", "1")

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "15", text)

    def replace(self, box: list[int], text: str) -> None:
        """Put ``text`` in the entry or spin box at ``box`` instead of what it holds."""
        self.click(box, left=12)
        self.xdotool("key", "End", *["BackSpace"] * 12)
        self.type(text)

    def park_mouse(self) -> None:
        self.xdotool("mousemove", "1270", "950")  # off the window: no hover highlight in the picture

    def grab(self, box: list[int]) -> np.ndarray:
        return np.asarray(self.grab_image(box)).astype(int)

    def grab_image(self, box: list[int]):
        from PIL import ImageGrab

        x, y, w, h = box
        return ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=self.display).convert("RGB")

    def save(self, box: list[int], out: Path) -> None:
        self.grab_image(box).save(out, optimize=True)
        print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({out.stat().st_size // 1024} KiB)")

    def resize(self, size: tuple[int, int]) -> dict:
        window = self.xdotool("search", "--name", f"^{TITLE}$").split()
        if not window:
            raise Failed(f"no window named {TITLE!r} on {self.display}")
        self.xdotool("windowsize", window[0], str(size[0]), str(size[1]))
        return self.wait(lambda s: s["boxes"]["window"][2:] == list(size), f"the window at {size[0]}x{size[1]}", 20)


def check(name: str, value: float, low: float, high: float | None = None) -> None:
    bounds = f"at least {low:g}" + (f", at most {high:g}" if high is not None else "")
    print(f"  {name}: {value:g} ({bounds})")
    if value < low or (high is not None and value > high):
        raise Failed(f"check failed: {name} is {value:g} ({bounds})")


def check_inside(name: str, box: list[int], window: list[int]) -> None:
    x, y, w, h = box
    wx, wy, ww, wh = window
    inside = w > 0 and h > 0 and x >= wx and y >= wy and x + w <= wx + ww and y + h <= wy + wh
    print(f"  {name} at {box} inside the window {window}: {'yes' if inside else 'NO'}")
    if not inside:
        raise Failed(f"check failed: {name} {box} is not inside the window {window}")


def check_whole(name: str, picture: list[int] | None, box: list[int]) -> list[int]:
    """The picture shown in a player must fit its box (else the player cuts the clip off); the picture's box,
    centred in the player's."""
    x, y, w, h = box
    whole = picture is not None and picture[0] <= w and picture[1] <= h
    print(f"  {name}'s picture {picture} within its box {w}x{h}: {'yes' if whole else 'NO'}")
    if not whole:
        raise Failed(f"check failed: {name} shows a picture of {picture} in a box of {w}x{h}")
    pw, ph = picture
    return [x + (w - pw) // 2, y + (h - ph) // 2, pw, ph]


def background(rgb: np.ndarray) -> np.ndarray:
    """The commonest colour along the box's edge."""
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colours, counts = np.unique(edge, axis=0, return_counts=True)
    return colours[counts.argmax()]


def blue(rgb: np.ndarray) -> int:
    return int(((rgb[..., 2] > rgb[..., 0] + 40) & (rgb[..., 2] > rgb[..., 1] + 40)).sum())


def generate(win: Window, boxes: dict, history: set[str], what: str) -> dict:
    """Press Generate; the report once the new clip plays."""
    win.click(boxes["generate"])
    return win.wait(lambda s: s.get("playing") and s.get("job") not in history and s.get("job") in s.get("history", []),
                    what, 180)


def shots(win: Window, base: str, out: Path, history_job: str) -> None:
    state = win.wait(lambda s: s.get("ready") and history_job in s.get("history", []), "the models and history", 60)
    boxes = state["boxes"]

    print("desktop.png")
    win.click(boxes["prompt"])
    win.type(PROMPT)
    win.click(boxes["seed_mode"])  # the menu opens on "random": one down is "fixed"
    time.sleep(0.5)
    win.xdotool("key", "Down", "Return")
    win.replace(boxes["seed"], str(SEED))
    state = generate(win, boxes, {history_job}, "the blue square to play")
    job = http_json(f"{base}/v1/videos/{state['job']}")
    print(f"  job {job['id']}: {job['request']['prompt']!r}, seed {job['request']['seed']}")
    if job["request"]["seed"] != SEED or job["request"]["prompt"] != PROMPT:
        raise Failed(f"the job was sent with {job['request']}, not the prompt and seed typed")
    blue_job = job["id"]
    win.park_mouse()
    time.sleep(1.2)  # a few frames in: the square on its way down
    state = win.state()
    boxes = state["boxes"]
    check_whole("the player", state["picture"], boxes["screen"])
    rgb = win.grab(boxes["screen"])
    bg = background(rgb)
    check("non-background pixels in the player", int((np.abs(rgb - bg).sum(axis=-1) > 30).sum()), 20_000)
    check("blue pixels in the player (B > R+40 and B > G+40)", blue(rgb), 300)
    win.save(boxes["window"], out / "desktop.png")

    print("desktop-error.png")
    win.replace(boxes["frames"], "600")
    win.click(boxes["generate"])
    state = win.wait(lambda s: s.get("error"), "the error line", 30)
    win.park_mouse()
    time.sleep(0.3)
    state = win.state()
    print(f"  error: {state['error']!r}")
    if "Frames" not in state["error"]:
        raise Failed(f"the error does not name Frames: {state['error']!r}")
    boxes = state["boxes"]
    check_inside("the error line", boxes["error"], boxes["window"])
    shown, wanted = state["error_height"]
    print(f"  error line height: {shown} px laid out, {wanted} px requested")
    check("error line height laid out less requested", shown - wanted, 0)
    rgb = win.grab(boxes["error"])
    check("red text pixels in the error line",
          int(((rgb[..., 0] > 140) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum()), 30)
    win.save(boxes["window"], out / "desktop-error.png")

    print("desktop-small.png")
    win.replace(boxes["frames"], "8")
    state = win.resize(SMALL)
    boxes = state["boxes"]
    state = generate(win, boxes, {history_job, blue_job}, "the clip at the small size")
    win.park_mouse()
    time.sleep(1.2)
    state = win.state()
    boxes = state["boxes"]
    if state["error"]:
        raise Failed(f"the window shows an error: {state['error']!r}")
    for name in ("generate", "progress", "screen", *(k for k in boxes if k.startswith("button:"))):
        check_inside({"screen": "the player"}.get(name, name), boxes[name], boxes["window"])
    check("the progress bar's thickness in px", boxes["progress"][3], 12)
    rgb = win.grab(check_whole("the player", state["picture"], boxes["screen"]))
    check("blue pixels in the player", blue(rgb), 300)
    win.save(boxes["window"], out / "desktop-small.png")

    print("desktop-compare.png")
    state = win.resize(SIZE)
    win.click(state["boxes"]["tabs"]["History"])
    state = win.wait(lambda s: {history_job, blue_job} <= set(s["boxes"]["history_rows"]), "the history rows", 20)
    rows = state["boxes"]["history_rows"]
    win.click(rows[blue_job])
    win.click(rows[history_job], ctrl=True)
    win.click(state["boxes"]["compare_button"])
    state = win.wait(lambda s: (s.get("compare") or {}).get("playing") or s.get("error"), "the two clips", 60)
    if state["error"]:
        raise Failed(f"Compare shows an error: {state['error']!r}")
    win.park_mouse()
    time.sleep(1.0)
    compare = win.state()["compare"]
    print(f"  status: {compare['status']!r}; differences: {compare['differences']!r}")
    players = []
    for name, box, picture in zip("AB", compare["boxes"]["screens"], compare["pictures"]):
        check_inside(f"player {name}", box, compare["boxes"]["window"])
        rgb = win.grab(check_whole(f"player {name}", picture, box))
        check(f"distinct colours in player {name}", len({tuple(c) for c in rgb[::4, ::4].reshape(-1, 3)}), 20)
        check(f"standard deviation in player {name}", round(float(rgb.std()), 1), 5)
        players.append(rgb)
    h, w = min(a.shape[0] for a in players), min(a.shape[1] for a in players)
    check("mean difference between the two players",
          round(float(np.abs(players[0][:h, :w] - players[1][:h, :w]).mean()), 1), 5)
    win.save(compare["boxes"]["window"], out / "desktop-compare.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="the folder to write into")
    args = parser.parse_args()
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (Debian/Ubuntu: apt-get install xvfb xdotool)")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="t2v-desktop-shots-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "T2V_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1"}
        for name in ("T2V_MODEL", "T2V_DEFAULT_MODEL", "T2V_DATABASE_URL", "T2V_STORAGE_URL", "T2V_SERVER",
                     "T2V_DESKTOP_DIR"):
            env.pop(name, None)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        xvfb = server = app = None
        logs = {"serve": tmp / "serve.log", "desktop": tmp / "desktop.log"}
        try:
            xvfb, display = start_xvfb()
            with open(logs["serve"], "wb") as log:
                server = subprocess.Popen([sys.executable, "-m", "t2v", "serve", "--port", str(port), "--model", MODEL],
                                          env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
            wait_until_up(base + "/healthz", server)
            job = make_clip(base, HISTORY_PROMPT, HISTORY_SEED)
            print(f"history clip: {job['id']} ({HISTORY_PROMPT!r}, seed {HISTORY_SEED})")
            report = tmp / "window.json"
            with open(logs["desktop"], "wb") as log:
                app = subprocess.Popen([sys.executable, "-m", "t2v", "desktop", "--server", base,
                                        "--downloads", str(tmp / "clips")],
                                       env={**env, "DISPLAY": display, "T2V_DESKTOP_REPORT": str(report)},
                                       stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
            shots(Window(display, report, app), base, args.out, job["id"])
        except Failed as e:
            for name, path in logs.items():
                if path.exists() and path.stat().st_size:
                    sys.stderr.write(f"--- the end of t2v {name}'s log\n{path.read_text(errors='replace')[-3000:]}\n")
            sys.exit(str(e))
        finally:
            for proc in (app, server, xvfb):
                stop(proc)


if __name__ == "__main__":
    main()
