"""One benchmark run in this process: ``python -m t2v.bench.worker --side stock|t2v --model DIR --out FILE``.

- stock: what a user would otherwise run: ``DiffusionPipeline.from_pretrained(dir)`` (fp32 on CPU),
  ``.to("cpu")``, ``pipe(prompt, ..., generator=torch.Generator("cpu").manual_seed(0))``,
  ``export_to_video(frames)``; its stages are timed with forward hooks on the text encoder and the UNet
  and a wrapper around ``vae.decode``.
- t2v: ``t2v.generate(GenerationRequest(...same request..., scheduler="ddim", formats=("mp4",)))``;
  stages from its record's ``timings``.

Writes a JSON result to ``--out`` and the frames (uint8) beside it, for the parent to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

from t2v.bench import FPS, PROMPT, request_fields


class RssSampler:
    """Samples this process's RSS every ``interval`` s, so each stage's peak can be read off afterwards."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self.proc = psutil.Process()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.proc.memory_info().rss))
            self._stop.wait(self._interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), self.proc.memory_info().rss))

    def peak(self, start: float, end: float) -> int:
        inside = [r for t, r in self.samples if start <= t <= end]
        return max(inside) if inside else 0


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _frames_file(out: Path, frames) -> str:
    import numpy as np

    path = out.with_suffix(".frames.npy")
    np.save(path, frames)
    return str(path)


def run_stock(model: str, out: Path, workdir: Path, request: dict) -> dict:
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import export_to_video

    baseline = maxrss_bytes()
    spans: dict[str, list[tuple[float, float]]] = {"text_encode": [], "unet": [], "decode": []}
    with RssSampler() as rss:
        t0 = time.perf_counter()
        pipe = DiffusionPipeline.from_pretrained(model)
        pipe = pipe.to("cpu")
        t_loaded = time.perf_counter()
        rss_after_load = rss.proc.memory_info().rss

        def timed(name, module):
            starts: list[float] = []
            module.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
            module.register_forward_hook(lambda *_: spans[name].append((starts.pop(), time.perf_counter())))

        timed("text_encode", pipe.text_encoder)
        timed("unet", pipe.unet)
        decode = pipe.vae.decode

        def timed_decode(*args, **kwargs):
            s = time.perf_counter()
            try:
                return decode(*args, **kwargs)
            finally:
                spans["decode"].append((s, time.perf_counter()))

        pipe.vae.decode = timed_decode
        frames = pipe(PROMPT, num_inference_steps=request["num_inference_steps"], num_frames=request["num_frames"],
                      height=request["height"], width=request["width"], guidance_scale=request["guidance_scale"],
                      generator=torch.Generator("cpu").manual_seed(request["seed"])).frames[0]
        t_called = time.perf_counter()
        export_to_video(frames, str(workdir / "stock.mp4"), fps=FPS)
        t_end = time.perf_counter()

    te, unet, dec = spans["text_encode"], spans["unet"], spans["decode"]
    stage_spans = {
        "load": (t0, t_loaded),
        "text_encode": (te[0][0], te[-1][1]),
        # First UNet call to the start of VAE decode: every step's UNet call and scheduler step (as t2v counts it).
        "denoise": (unet[0][0], dec[0][0]),
        "decode": (dec[0][0], dec[-1][1]),
        "encode": (t_called, t_end),
    }
    times = {k: b - a for k, (a, b) in stage_spans.items()}
    total = t_end - t0
    times["other"] = total - sum(times.values())
    times["total"] = total
    return {
        "side": "stock",
        "times": times,
        "unet_calls": [b - a for a, b in unet],
        "steps": len(unet),
        "rss_peak": maxrss_bytes(),
        "rss_baseline": baseline,
        "rss_after_load": rss_after_load,
        "rss_stage_peak": {k: rss.peak(a, b) for k, (a, b) in stage_spans.items()},
        "frames": _frames_file(out, np.round(np.asarray(frames) * 255).astype(np.uint8)),
        "torch_threads": torch.get_num_threads(),
    }


def run_t2v(model: str, out: Path, workdir: Path, request: dict, dtype: str, memory: str) -> dict:
    # The libraries generate() would import lazily, imported up front as on the stock side.
    import diffusers  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from t2v import GenerationRequest, generate
    from t2v.generation import resolve
    from t2v.models.memory import predict
    from t2v.settings import get_settings

    baseline = maxrss_bytes()
    events: list[tuple[str, float]] = []
    req = GenerationRequest(prompt=PROMPT, model=model, negative_prompt="", scheduler="ddim", formats=("mp4",),
                            device="cpu", dtype=dtype, memory=memory, **request)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        result = generate(req, output=workdir / "t2v.mp4", on_progress=lambda e: events.append((e.stage, time.perf_counter())))
        t_end = time.perf_counter()
    record = result.record
    timings = record["timings"]
    times = {"load": timings["load_s"], "text_encode": timings["encode_prompt_s"], "denoise": timings["denoise_s"],
             "decode": timings["decode_s"], "encode": timings["encode_s"]}
    total = timings["total_s"]
    times["other"] = total - sum(times.values())
    times["total"] = total
    first: dict[str, float] = {}
    for stage, t in events:
        first.setdefault(stage, t)
    stage_spans = {}
    for ours, theirs, nxt in (("load", "load", "encode_prompt"), ("text_encode", "encode_prompt", "denoise"),
                              ("denoise", "denoise", "decode"), ("decode", "decode", "export"), ("encode", "export", "done")):
        if first.get(theirs) and first.get(nxt):
            stage_spans[ours] = (first[theirs], first[nxt])
    # The planner's prediction for the plan t2v used, same request, same process baseline as generate() had.
    resolved = resolve(req, get_settings())
    plan_used = record["memory_plan"]["plan"]
    p = predict(resolved.model, resolved, plan=plan_used, device="cpu", dtype=record["dtype"], measure_speed=False)
    predictions = {plan_used: {"peak_bytes": p.peak_bytes, "weights_bytes": p.weights_bytes,
                               "activation_bytes": p.activation_bytes, "baseline_bytes": p.baseline_bytes}}
    return {
        "side": "t2v",
        "dtype": record["dtype"],
        "memory": memory,
        "memory_plan": record["memory_plan"],
        "plan_used": plan_used,
        "predictions": predictions,
        "times": times,
        "steps": record["num_inference_steps"],
        "rss_peak": maxrss_bytes(),
        "rss_baseline": baseline,
        "rss_stage_peak": {k: rss.peak(a, b) for k, (a, b) in stage_spans.items()},
        "frames": _frames_file(out, result.frames),
        "frames_sha256": record["frames_sha256"],
        "wall_check_s": t_end - t0,
        "torch_threads": torch.get_num_threads(),
    }


def run(side: str, model: str, out: Path, *, size: int, dtype: str = "fp32", memory: str = "auto") -> dict:
    """One run of ``side``; writes its result to ``out`` (JSON) and returns it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{side}-", dir=out.parent))
    os.environ.setdefault("T2V_HOME", str(workdir / "home"))
    request = request_fields(size)
    if side == "stock":
        res = run_stock(model, out, workdir, request)
    else:
        res = run_t2v(model, out, workdir, request, dtype, memory)
    res["mp4_bytes"] = sum(p.stat().st_size for p in workdir.glob("*.mp4"))
    out.write_text(json.dumps(res, indent=1))
    return res


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One benchmark run (internal: started by t2v.bench.cpu).")
    parser.add_argument("--side", choices=("stock", "t2v"), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--memory", default="auto")
    args = parser.parse_args(argv)
    run(args.side, args.model, Path(args.out), size=args.size, dtype=args.dtype, memory=args.memory)


if __name__ == "__main__":
    main()
