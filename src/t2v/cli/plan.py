"""``t2v plan``: the memory planner's predictions as a table."""

from __future__ import annotations

from rich.table import Table

from t2v.cli.common import out
from t2v.planner.memory import predict
from t2v.settings import get_settings


def show_plan(request) -> None:
    from t2v.runner.plan import plan_run  # deferred: imports PIL, numpy

    settings = get_settings()
    # Every plan, from counted work (never the upper bound alone); a refusal is shown after the table.
    planned = plan_run(request, settings, memory=True, refuse=False, times=True)
    asked = (getattr(request, "weights", "auto"), getattr(request, "text_encoder_weights", "auto"))
    request, source, family, dev = planned.request, planned.source, planned.family, planned.device
    chosen, refused, budget = planned.memory, planned.refused, planned.budget
    what = "peak RSS" if dev.device == "cpu" else "peak VRAM"
    table = Table(title=f"{request.model}: {request.width}x{request.height}, {request.num_frames} frames, "
                        f"{request.num_inference_steps} steps on {dev.device}/{dev.dtype}")
    ram = dev.device != "cpu"  # on a GPU, the CPU memory each plan holds (the weights offload keeps there)
    for col in ("plan", what, *(["RAM"] if ram else []), "weights", "denoiser act.", "VAE act.", "s/step", "decode s",
                "times", "TFLOP/step"):
        table.add_column(col, justify="right" if col != "plan" else "left", no_wrap=col == "plan")
    predicted = {}
    for name in ("speed", "balanced", "low"):
        p = predicted[name] = predict(source.path, request, family=family, plan=name, device=dev.device,
                                      dtype=dev.dtype, defaults=source.defaults)
        mark = " ←" if chosen and name == chosen.name else ""
        table.add_row(name + mark, _mb(p.peak_bytes), *([_mb(p.ram_bytes)] if ram else []), _mb(sum(p.weights_bytes.values())),
                      _mb(max(v for k, v in p.activation_bytes.items() if k not in ("text", "vae"))),
                      _mb(p.activation_bytes["vae"]), _s(p.est_step_s), _s(p.est_decode_s),
                      _source(p), f"{p.flops_per_step / 1e12:.2f}")
    out.print(table)
    out.print(f"memory budget: {_mb(budget)} (T2V_MEMORY_BUDGET_GB; default 90% of the free memory)", highlight=False)
    if refused is not None:
        raise refused  # exit 2, as `t2v generate` would
    out.print(f"memory={request.memory} → the {chosen.name} plan", highlight=False)
    if (request.weights, request.text_encoder_weights) != asked:  # auto stored weights in 8 bits to fit
        out.print(f"weights: in the run's dtype no plan fits; the denoiser is stored as {request.weights} and the text "
                  f"encoder as {request.text_encoder_weights} (the table's figures)", highlight=False)
    p = predicted[chosen.name]
    preset = f" (preset {request.preset})" if getattr(request, "preset", None) else ""
    total = request.num_inference_steps * p.est_step_s + p.est_decode_s
    compiled = ""
    if request.compile:  # the first run of a shape in a process compiles; a server compiles its default shape warming
        compiled = (f" + compile {_s(p.est_compile_s)} s (a process's first run at this shape)" if p.est_compile_s == p.est_compile_s
                    else " + compile (not measured here yet: the first compiled run keeps its time)")
    out.print(f"predicted run: {request.num_inference_steps} steps{preset} x {_s(p.est_step_s)} s + decode "
              f"{_s(p.est_decode_s)} s = {_s(total)} s{compiled}", highlight=False)
    out.print("times: \"estimate\" is FLOPs at this machine's measured matmul speed plus its measured cost per "
              "operator call (optimistic for large models); \"N runs\" scales it by what the last N runs of this "
              "model here, with these settings, measured (\"~N runs\": under another memory plan; docs/speed.md)", highlight=False)
    _precision_table(source, family, request, dev, chosen.name)
    for w in dev.warnings:
        out.print(f"warning: {w}", highlight=False)


def _precision_table(source, family, request, dev, plan: str) -> None:
    """The chosen precision (and why) beside the alternatives this device has, each predicted under ``plan``:
    time per step from this machine's measured matmul speed in that dtype, peak memory from the dry run; on an
    accelerator also the denoiser and the text encoder stored in 8 bits, and the CPU memory each holds."""
    dtypes = ("fp32", "bf16") if dev.device == "cpu" else ("fp16", "fp32") if dev.device == "mps" else ("bf16", "fp16", "fp32")
    options = [(d, "auto", "auto") for d in dtypes]
    if dev.is_accelerator:
        half = "bf16" if "bf16" in dtypes else "fp16"
        options += [(half, "fp8", "auto"), (half, "auto", "int8"), (half, "fp8", "fp8")]
    chosen = (dev.dtype, request.weights, request.text_encoder_weights)
    if chosen not in options:
        options.append(chosen)
    table = Table(title=f"precision under the {plan} plan")
    for col in ("dtype", "weights", "text encoder", "peak", *(["RAM"] if dev.is_accelerator else []), "s/step",
                "decode s", "times"):
        table.add_column(col, justify="left" if col in ("dtype", "weights", "text encoder") else "right")
    for dtype, weights, text in options:
        p = predict(source.path, request.model_copy(update={"weights": weights, "text_encoder_weights": text}),
                    family=family, plan=plan, device=dev.device, dtype=dtype, defaults=source.defaults)
        mark = " ←" if (dtype, weights, text) == chosen else ""
        table.add_row(dtype + mark, weights, text, _mb(p.peak_bytes), *([_mb(p.ram_bytes)] if dev.is_accelerator else []),
                      _s(p.est_step_s), _s(p.est_decode_s), _source(p))
    out.print(table)
    out.print(f"dtype: {dev.reason}", highlight=False)
    extras = [f"cache {request.cache}" if request.cache else "no step cache",
              "compiled" if request.compile else "not compiled", f"attention {request.attention}"]
    out.print("speed options: " + ", ".join(extras) + " (docs/speed.md)", highlight=False)


def _source(p) -> str:
    """Where a prediction's times came from: the estimate, or the runs it was scaled by."""
    if not p.time_runs:
        return "estimate"
    return f"{'~' if p.time_other_plans else ''}{p.time_runs} run{'s' if p.time_runs > 1 else ''}"


def _s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 0.1 else f"{seconds:.2f}"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"
