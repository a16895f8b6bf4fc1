"""CPU threads: torch's default (the physical cores), ``--threads``/``T2V_THREADS`` otherwise, and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_generate_uses_and_records_the_threads(tmp_path):
    env = {**os.environ, "T2V_HOME": str(tmp_path / "home")}
    env.pop("T2V_THREADS", None)
    t2v = [sys.executable, "-m", "t2v", "generate", "a red circle moving right", "--model", "t2v-shapes",
           "--steps", "2", "-q"]
    # The four processes run side by side (each mostly imports); each records its own thread count.
    procs = {name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, cmd in (
                 ("default", [sys.executable, "-c", "import torch; print(torch.get_num_threads())"]),  # torch's own
                 ("clip0", [*t2v, "-o", str(tmp_path / "clip0.mp4")]),
                 ("clip2", [*t2v, "--threads", "1", "-o", str(tmp_path / "clip2.mp4")]),
                 ("bad", [*t2v, "--threads", "0", "-o", str(tmp_path / "x.mp4")]))}
    done = {name: (p.communicate(timeout=300), p.returncode) for name, p in procs.items()}
    for name in ("default", "clip0", "clip2"):
        assert done[name][1] == 0, done[name]
    default = int(done["default"][0][0])  # in a fresh process
    for name, expected in (("clip0", default), ("clip2", 1)):
        assert json.loads((tmp_path / f"{name}.json").read_text())["threads"] == expected
    (_, stderr), code = done["bad"]
    assert code == 2 and "--threads" in stderr and not (tmp_path / "x.mp4").exists()
