"""Loading an fp32 checkpoint: as fp32, as bf16 the way from_pretrained does it, and as bf16 through t2v's
converting loader (:func:`t2v.models.precision.load_module`). Each load runs in a fresh process; the
figures are medians over ``--runs``.

* ``load s``: the load itself;
* ``+ touch s``: the load and then one read of every weight, as the first denoising step does (an fp32 load
  maps the file and reads nothing, so its load alone hides the page faults the first step pays);
* ``peak MiB``: the process's peak RSS during the load above its RSS before (VmHWM after resetting it);
  ``touched``: the same after the read of every weight (the fp32 file's pages, mapped, count once read);
* ``weights MiB``: the loaded weights' own size.

``bf16 t2v`` converts on every load (``T2V_CONVERTED_CACHE=0``); ``bf16 t2v keeping`` converts and keeps the
result (a first load: its entry is removed before each run); ``bf16 t2v cached`` maps what an earlier, untimed
load kept in a private ``T2V_HOME`` (:mod:`t2v.models.converted`). The file hashes are cached before the
timed runs, as the record's ``model_hash`` leaves them.

The model is a UNet3D (ModelScope's architecture, narrower: about 237 M parameters, 0.95 GB in fp32) and a
CLIP ViT-L-sized text encoder (123 M, 0.49 GB), with random weights, built once in ``DIR``
(default /tmp/t2v-bench-load; nothing is committed), or any model folder with ``unet/`` and ``text_encoder/``
(e.g. ``benchmarks/fullsize.py``'s full-size ModelScope)::

    .venv/bin/python benchmarks/bench_load.py [--dir DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

COMPONENTS = {"unet": ("diffusers", "UNet3DConditionModel", "diffusion_pytorch_model"),
              "text_encoder": ("transformers", "CLIPTextModel", "model")}
MODES = ("fp32", "bf16 from_pretrained", "bf16 t2v", "bf16 t2v keeping", "bf16 t2v cached")

CHILD = """
import json, sys, time, importlib, torch
from pathlib import Path
from t2v.models.precision import load_module
root, comp, lib, cls_name, stem, mode = sys.argv[1:7]
cls = getattr(importlib.import_module(lib), cls_name)
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
t0 = time.perf_counter()
if mode == "fp32":
    m = cls.from_pretrained(root, subfolder=comp, dtype=torch.float32)
elif mode == "bf16 from_pretrained":
    m = cls.from_pretrained(root, subfolder=comp, dtype=torch.bfloat16)
else:
    m = load_module(cls, Path(root), comp, stem, torch.bfloat16, None)
load = time.perf_counter() - t0
peak = status("VmHWM") - base
with torch.no_grad():
    for p in m.parameters():
        p.sum()
touch = time.perf_counter() - t0
weights = sum(p.numel() * p.element_size() for p in m.parameters())
print(json.dumps({"load": load, "touch": touch, "peak": peak, "peak_touch": status("VmHWM") - base, "weights": weights}))
"""


def build(directory: Path) -> Path:
    marker = directory / ".built"
    if marker.exists() or all((directory / c / "config.json").is_file() for c in COMPONENTS):
        return directory
    import torch
    from diffusers import UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    UNet3DConditionModel(block_out_channels=(128, 256, 512, 512), cross_attention_dim=768,
                         attention_head_dim=64).save_pretrained(directory / "unet")
    CLIPTextModel(CLIPTextConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                 vocab_size=49408, max_position_embeddings=77)).save_pretrained(directory / "text_encoder")
    marker.write_text("ok")
    return directory


def measure(directory: Path, comp: str, mode: str, home: Path) -> dict:
    lib, cls, stem = COMPONENTS[comp]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "T2V_HOME": str(home),
           "T2V_CONVERTED_CACHE": "1" if mode.endswith(("cached", "keeping")) else "0"}
    if mode.endswith("keeping"):
        shutil.rmtree(home / "cache" / "converted", ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(directory), comp, lib, cls, stem, mode], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/t2v-bench-load"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    directory = build(args.dir)
    home = Path(tempfile.mkdtemp(prefix="t2v-bench-load-home-"))
    print("| component | load | load s | + touch s | peak MiB | touched MiB | weights MiB | peak / weights |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for comp in COMPONENTS:
        for mode in MODES:
            if mode.endswith(("cached", "keeping")):
                measure(directory, comp, mode, home)  # untimed: hashes the file (and keeps the conversion)
            runs = [measure(directory, comp, mode, home) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"| {comp} | {mode} | {med['load']:.2f} | {med['touch']:.2f} | {med['peak'] / 2**20:.0f} | "
                  f"{med['peak_touch'] / 2**20:.0f} | {med['weights'] / 2**20:.0f} | {med['peak'] / med['weights']:.2f}x |", flush=True)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
