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
    default = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                                 check=True, capture_output=True, text=True).stdout)  # torch's own, in a fresh process
    for extra, expected in (([], default), (["--threads", "1"], 1)):
        out = tmp_path / f"clip{len(extra)}.mp4"
        subprocess.run([*t2v, *extra, "-o", str(out)], env=env, check=True, capture_output=True, timeout=300)
        assert json.loads(out.with_suffix(".json").read_text())["threads"] == expected
    bad = subprocess.run([*t2v, "--threads", "0", "-o", str(tmp_path / "x.mp4")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "--threads" in bad.stderr and not (tmp_path / "x.mp4").exists()
