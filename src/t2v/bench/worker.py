"""One benchmark run in this process: ``python -m t2v.bench.worker --side stock|t2v --spec FILE --out FILE``.

The spec (:mod:`t2v.bench.spec`) names the model folder, the request both sides make and the t2v side's plan.

- stock: what a user would otherwise run: ``DiffusionPipeline.from_pretrained(dir)`` (the folder's own pipeline
  class, fp32 on CPU), ``.to("cpu")``, ``pipe(prompt, negative_prompt, num_frames, height, width,
  num_inference_steps, guidance_scale, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
  **the family's extra arguments)``, ``export_to_video(frames)``; its stages are timed with forward hooks on the
  text encoder(s) and the denoiser(s) (``unet`` or ``transformer``) and a wrapper around ``vae.decode``.
- t2v: ``t2v.generate(GenerationRequest(...same request..., plan..., formats=("mp4",)))``; stages from its
  record's ``timings``.

Writes a JSON result to ``--out`` and the frames (uint8) beside it, for the parent to compare. The older
``--model DIR --size N`` form runs the ModelScope comparison (8 frames, 2 DDIM steps, guidance 9).
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
from t2v.planner.memory import predict
from t2v.settings import get_settings
from t2v import GenerationRequest, generate
from t2v.bench.spec import modelscope_spec

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
DENOISERS = ("unet", "transformer", "transformer_2")


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


def run_stock(spec: dict, out: Path, workdir: Path) -> dict:
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import export_to_video

    r = spec["request"]
    baseline = maxrss_bytes()
    spans: dict[str, list[tuple[float, float]]] = {"text_encode": [], "denoiser": [], "decode": []}
    with RssSampler() as rss:
        t0 = time.perf_counter()
        pipe = DiffusionPipeline.from_pretrained(spec["model"])
        pipe = pipe.to("cpu")
        t_loaded = time.perf_counter()
        rss_after_load = rss.proc.memory_info().rss
        pipe.set_progress_bar_config(disable=True)

        def timed(name, module):
            starts: list[float] = []
            module.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
            module.register_forward_hook(lambda *_: spans[name].append((starts.pop(), time.perf_counter())))

        for name in TEXT_ENCODERS:
            if getattr(pipe, name, None) is not None:
                timed("text_encode", getattr(pipe, name))
        for name in DENOISERS:
            if getattr(pipe, name, None) is not None:
                timed("denoiser", getattr(pipe, name))
        decode = pipe.vae.decode

        def timed_decode(*args, **kwargs):
            s = time.perf_counter()
            try:
                return decode(*args, **kwargs)
            finally:
                spans["decode"].append((s, time.perf_counter()))

        pipe.vae.decode = timed_decode
        torch.manual_seed(r["seed"])  # LTX-Video 0.9.1's decoder draws its noise from the global RNG (as t2v seeds it)
        frames = pipe(prompt=r["prompt"], negative_prompt=r["negative_prompt"], num_inference_steps=r["num_inference_steps"],
                      num_frames=r["num_frames"], height=r["height"], width=r["width"], guidance_scale=r["guidance_scale"],
                      generator=torch.Generator("cpu").manual_seed(r["seed"]), output_type="np", **spec["stock"]).frames[0]
        t_called = time.perf_counter()
        export_to_video(frames, str(workdir / "stock.mp4"), fps=int(round(r.get("fps") or 8)))
        t_end = time.perf_counter()

    te, den, dec = spans["text_encode"], spans["denoiser"], spans["decode"]
    stage_spans = {
        "load": (t0, t_loaded),
        "text_encode": (te[0][0], max(b for _, b in te)),
        # First denoiser call to the start of VAE decode: every step's model calls and scheduler step (as t2v counts it).
        "denoise": (den[0][0], dec[0][0]),
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
        "denoiser_calls": [b - a for a, b in den],
        "steps": r["num_inference_steps"],
        "rss_peak": maxrss_bytes(),
        "rss_baseline": baseline,
        "rss_after_load": rss_after_load,
        "rss_stage_peak": {k: rss.peak(a, b) for k, (a, b) in stage_spans.items()},
        "frames": _frames_file(out, np.round(np.asarray(frames) * 255).astype(np.uint8)),
        "torch_threads": torch.get_num_threads(),
    }


def _prediction(req, record) -> dict:
    """The planner's prediction for the plan t2v used, same request, same process baseline as generate() had."""
    from t2v.runner.plan import plan_run  # deferred: imports PIL, numpy

    planned = plan_run(req, get_settings())
    plan_used = record["memory_plan"]["plan"]
    p = predict(planned.source.path, planned.request, family=planned.family, plan=plan_used, device="cpu",
                dtype=record["dtype"], measure_speed=False)
    return {plan_used: {"peak_bytes": p.peak_bytes, "weights_bytes": p.weights_bytes,
                        "activation_bytes": p.activation_bytes, "baseline_bytes": p.baseline_bytes}}


def run_t2v(spec: dict, out: Path, workdir: Path) -> dict:
    # Imported up front, as the stock side imports them before its clock starts. ``import diffusers`` alone is
    # lazy: the pipeline module pulls in transformers' and diffusers' model code (~3.5 s), which stock pays
    # outside its "load" and t2v would otherwise pay inside it.
    import torch
    from diffusers import DiffusionPipeline  # noqa: F401
    from diffusers.utils import export_to_video  # noqa: F401

    baseline = maxrss_bytes()
    events: list[tuple[str, float]] = []
    plan = spec["plan"]
    req = GenerationRequest(model=spec["model"], formats=("mp4",), device="cpu", **spec["request"], **plan)
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
    try:
        predictions = _prediction(req, record)
    except Exception as e:  # the planner's figure is extra information; the run itself succeeded
        predictions = {"error": f"{type(e).__name__}: {e}"[:300]}
    return {
        "side": "t2v",
        "dtype": record["dtype"],
        "dtype_reason": record.get("dtype_reason", ""),
        "memory": plan["memory"],
        "plan": plan,
        "memory_plan": record["memory_plan"],
        "plan_used": record["memory_plan"]["plan"],
        "predictions": predictions,
        "times": times,
        "steps": record["num_inference_steps"],
        "rss_peak": maxrss_bytes(),
        "rss_baseline": baseline,
        "rss_stage_peak": {k: rss.peak(a, b) for k, (a, b) in stage_spans.items()},
        "frames": _frames_file(out, result.frames),
        "frames_sha256": record["frames_sha256"],
        "warnings": list(record.get("warnings") or []),
        "wall_check_s": t_end - t0,
        "torch_threads": torch.get_num_threads(),
    }


def run(side: str, model: str | None, out: Path, *, size: int | None = None, dtype: str = "fp32", memory: str = "auto",
        spec: dict | None = None) -> dict:
    """One run of ``side`` for ``spec`` (default: the ModelScope comparison on ``model`` at ``size`` pixels, with
    ``dtype`` and ``memory`` on the t2v side); writes its result to ``out`` (JSON) and returns it."""
    if spec is None:
        spec = modelscope_spec(str(model), int(size or 256), dtype=dtype, memory=memory)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{side}-", dir=out.parent))
    os.environ.setdefault("T2V_HOME", str(workdir / "home"))
    res = run_stock(spec, out, workdir) if side == "stock" else run_t2v(spec, out, workdir)
    res["mp4_bytes"] = sum(p.stat().st_size for p in workdir.glob("*.mp4"))
    out.write_text(json.dumps(res, indent=1))
    return res


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One benchmark run (internal: started by t2v.bench.cpu).")
    parser.add_argument("--side", choices=("stock", "t2v"), required=True)
    parser.add_argument("--spec", help="the spec JSON (t2v.bench.spec); else --model and --size")
    parser.add_argument("--model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--memory", default="auto")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text()) if args.spec else None
    if spec is None and (args.model is None or args.size is None):
        parser.error("give --spec, or --model and --size")
    run(args.side, args.model, Path(args.out), size=args.size, dtype=args.dtype, memory=args.memory, spec=spec)


if __name__ == "__main__":
    main()
