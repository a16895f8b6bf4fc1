"""Memory planner: predict a request's peak memory and step time before loading anything, and pick a plan.

The prediction is a dry run on PyTorch's ``meta`` device: the model is built from its config files (no
weights), and the text encoder, one classifier-free-guidance UNet step and one VAE decode chunk are run
under a dispatch mode that counts the bytes of live tensors (peak activations) and FLOPs. On the CPU the
predicted peak RSS is the process's current RSS + resident weights + the largest stage's activations.

Plans, from fastest to leanest:

- ``speed``: everything resident on the device, VAE decodes all frames in one call (on the CPU at most 2 per
  call, see :data:`t2v.sampling.vae.CPU_MAX_CHUNK`).
- ``balanced``: VAE decodes 4 frames at a time (default elsewhere: 8), UNet feed-forward chunking.
- ``low``: on GPU, each component is moved to the device only while it runs (model offload); VAE decodes
  one frame at a time, feed-forward chunking. On CPU the text encoder is freed after encoding.
- ``auto``: the fastest plan whose predicted peak fits in the memory budget (``T2V_MEMORY_BUDGET_GB``,
  default 90% of the free memory). When not even ``low`` fits, the request is refused (:mod:`t2v.planner.fit`).

Plans are chosen with :func:`estimate`: dry runs per model at a small shape (and at twice and four times its
frames), scaled to the request's (activations grow with frames x pixels; where the reference's denoiser numbers
are mostly a fixed part, the text tokens, as fixed + per token + per token pair), so a request costs no dry run of
its own; :func:`predict` runs one at the request's shape (``t2v plan``).
The reference dry runs of the shipped model ship with t2v (:mod:`t2v.planner.shipped`), others are cached on disk
(:mod:`t2v.planner.dryruns`); a model with neither whose upper bound (:mod:`t2v.planner.bound`) is far under the
budget runs ``speed`` without a dry run.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest, ModelUnavailable, T2VError
from t2v.planner import bound, dryruns, fit, shipped, steptime
from t2v.planner.counting import Cost, meta_cost, only  # noqa: F401  (the families' dry runs count with these)
from t2v.planner.precision import is_half, measuring
from t2v.planner.scaling import scaled, with_denoiser
from t2v.progress import stage
from t2v.planner.plans import MemoryPlan, get_plan
from t2v.requests import WEIGHT_FILE_FIELDS
from t2v.requests.options import PLANS
from t2v.runtime import current, memoized

logger = logging.getLogger(__name__)



@dataclass
class Prediction:
    plan: str
    device: str
    dtype: str
    weights_bytes: dict[str, int]
    activation_bytes: dict[str, int]  # peak live bytes per stage: text, unet (one CFG step), vae (one chunk)
    baseline_bytes: int  # process RSS before loading (CPU) / 0 on GPU
    peak_bytes: int
    flops_per_step: int
    decode_flops: int
    est_step_s: float
    est_decode_s: float
    fits: bool | None = None
    notes: list[str] = field(default_factory=list)
    step_ops: int = 0  # operator calls of one step and of the whole decode
    decode_ops: int = 0
    time_runs: int = 0  # earlier runs the times were scaled from (0: estimated; t2v.planner.steptime)
    time_other_plans: bool = False  # ... under other memory plans (this plan has no runs yet)
    est_compile_s: float = float("nan")  # a compiled request's compile time, from earlier compiled runs (nan: none)
    # How the peak was found: "estimate" (scaled from a dry run shipped with t2v or cached by an earlier run),
    # "dry_run" (scaled from one this call made) or "bound" (t2v.planner.bound: no measurement, far under the budget)
    method: str = "estimate"
    weights: str = "auto"  # how the denoisers and the text encoders are stored (--weights, --text-encoder-weights)
    text_weights: str = "auto"
    # CPU memory the run holds (on the CPU, its peak; on a GPU, this process's RSS plus the weights the plan keeps in
    # RAM: all of them under offload, else the largest component, which a load passes through)
    ram_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _current_rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def _baseline_rss() -> int:
    """RSS when the planner first ran under this runtime (the process's: once per process), before models were
    loaded by the request being planned."""
    return current().cache("baseline-rss", lambda runtime: {}).setdefault("rss", _current_rss())


DENOISER = ("denoiser",)  # the parts of the longer reference dry runs
_MEASURING = threading.RLock()  # the meta modules are shared, and forward chunking is set on them per run


def _measure(family, path: str, frames: int, height: int, width: int, batch: int, chunking: bool, vae_chunk: int,
             half: bool, parts: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Parameter counts, peak activation bytes per stage (measured in bf16 for a ``half`` precision run, else fp32:
    :mod:`t2v.planner.precision`) and FLOPs of one meta-device run, read from the ones shipped with t2v
    (:mod:`t2v.planner.shipped`) or the dry-run cache on disk when this architecture was measured at this shape
    before (see :mod:`t2v.planner.dryruns`). ``parts``: only these parts of the model are run
    (:func:`t2v.planner.counting.only`; the others count zero), cached apart from a whole run."""
    found = _known(path, frames, height, width, batch, chunking, vae_chunk, half, parts)
    if found is not None:
        return found
    with _MEASURING:  # a thread that waited for another's dry run of this shape reads it, not measures it again
        found = _known(path, frames, height, width, batch, chunking, vae_chunk, half, parts)
        if found is not None:
            return found
        measured = measure_now(family, path, frames, height, width, batch, chunking, vae_chunk, half, parts)
        dryruns.put(dryruns.key(Path(path), frames, height, width, batch, chunking, vae_chunk, half, parts), measured)
        return measured


def _known(path: str, frames: int, height: int, width: int, batch: int, chunking: bool, vae_chunk: int,
           half: bool, parts: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """The dry run at this shape shipped with t2v or cached, or None (one would have to be made)."""
    found = shipped.get(shipped.key(Path(path), frames, height, width, batch, chunking, vae_chunk, half, parts))
    return found if found is not None else dryruns.get(dryruns.key(Path(path), frames, height, width, batch, chunking,
                                                                   vae_chunk, half, parts))


def measure_now(family, path: str, frames: int, height: int, width: int, batch: int, chunking: bool, vae_chunk: int,
                half: bool, parts: tuple[str, ...] | None = None) -> dict[str, Any]:
    """:func:`_measure`'s dry run, made now (the run's ``dry_run`` stage when a run makes one)."""
    with stage("dry_run"), _MEASURING, measuring(half), only(parts):
        return {**_measure_locked(family, path, frames, height, width, batch, chunking, vae_chunk), "half": half}


def _measure_locked(family, path: str, frames: int, height: int, width: int, batch: int, chunking: bool,
                    vae_chunk: int) -> dict[str, Any]:
    return _from_configs(path, family, lambda: family.measure(Path(path), frames, height, width, batch, chunking,
                                                              vae_chunk))


def _from_configs(path: str, family, build):
    """``build()`` (the family's modules made from the folder's configs), with a config that does not build
    (a wrong type or a missing field) as ModelUnavailable naming the folder, not an internal error."""
    try:
        return build()
    except T2VError:
        raise
    except Exception as e:
        raise ModelUnavailable(f"{path}: its component configs do not make a {family.name} model ({type(e).__name__}: "
                               f"{str(e)[:300]}); check the config.json of each component folder") from None


def _chunk(plan: str, frames: int, device: str) -> int:
    """Frames per VAE decode call the engine will use for ``plan`` on ``device``."""
    from t2v.sampling.vae import decode_chunk  # deferred: imports numpy

    return min(decode_chunk(get_plan(plan).vae_chunk, frames, device), frames)


@memoized("dry-runs-at-shape", 64)
def _dry_run(family, path: str, frames: int, height: int, width: int, batch: int, plan: str, device: str,
             half: bool) -> dict[str, Any]:
    """:func:`_measure` at the request's own shape (cached)."""
    chunking = get_plan(plan).uses_forward_chunking(device)
    return _measure(family, path, frames, height, width, batch, chunking, _chunk(plan, frames, device), half)


def _at_shape(family, path: str, frames: int, height: int, width: int, batch: int, plan: str, device: str, half: bool,
              window: int | None) -> dict[str, Any]:
    """The dry run at a request's own shape (its denoiser's at one ``window`` when it sees fewer frames at once)."""
    dry = _dry_run(family, path, frames, height, width, batch, plan, device, half)
    if window is not None and window < frames:
        dry = with_denoiser(dry, _dry_run(family, path, window, height, width, batch, plan, device, half))
    return dry


@memoized("reference-dry-runs", 32)
def _reference(family, path: str, batch: int, chunking: bool, half: bool) -> dict[str, Any]:
    """:func:`_measure` at the family's small reference shape, one VAE frame per call, and for a family that
    ``fits_reference`` the denoiser's numbers at twice and four times its latent frames (``more``, dry runs of
    the denoiser alone: :func:`t2v.planner.scaling.scaled` reads nothing else of them): what :func:`estimate`
    scales from. Once per model, batch and chunking."""
    (frames, *longer), side = _reference_shapes(family, path)
    ref = _measure(family, path, frames, side, side, batch, chunking, 1, half)
    if not longer:  # a UNet's numbers grow in proportion: one dry run is enough
        return ref
    try:
        more = [_measure(family, path, f, side, side, batch, chunking, 1, half, DENOISER) for f in longer]
    except T2VError as e:  # a model that cannot take those lengths: scaled in proportion
        logger.debug("no further reference dry runs for %s: %s", path, e)
        return ref
    return {**ref, "more": [{k: m[k] for k in ("acts", "step_flops")} for m in more]}


def _reference_shapes(family, path: str) -> tuple[list[int], int]:
    """The frame counts :func:`_reference` measures (the reference's, then for a family that ``fits_reference``
    twice and four times its latent frames) and the side."""
    frames, side = _from_configs(path, family, lambda: family.reference_shape(Path(path)))
    if not family.fits_reference:
        return [frames], side
    per = _from_configs(path, family, lambda: family.frames_per_latent(Path(path)))
    latent = (frames - 1) // per + 1
    return [frames + k * latent * per for k in (0, 1, 3)], side


def _reference_known(family, path: str, batch: int, chunking: bool, half: bool) -> bool:
    """Whether :func:`_reference` needs no dry run (its measurements are shipped or cached)."""
    (frames, *longer), side = _reference_shapes(family, path)
    return _known(path, frames, side, side, batch, chunking, 1, half) is not None and all(
        _known(path, f, side, side, batch, chunking, 1, half, DENOISER) is not None for f in longer)


def predict(model_path: str | Path, request, *, family, plan: str, device: str, dtype: str, measure_speed: bool = True,
            defaults: dict[str, Any] | None = None) -> Prediction:
    """Predict peak memory (RSS on CPU, device memory on GPU) and time per step for one plan (a dry run at
    the request's shape: about a second, more with forward chunking at large sizes; cached per shape). A model
    that denoises a long video window by window (``defaults``: the model's own settings) has its denoiser
    measured at one window. ``family``: the model's :class:`~t2v.families.Family`, which builds its modules for
    the dry run."""
    path, half = str(model_path), is_half(dtype)
    dry = _at_shape(family, path, request.num_frames, request.height, request.width, family.guidance_passes(request),
                    plan, device, half, family.denoised_frames(request, defaults or {}))
    return _prediction(dry, plan=plan, device=device, dtype=dtype, measure_speed=measure_speed,
                       weights=getattr(request, "weights", "auto"), lora_params=adapter_params(request),
                       run_key=run_key(model_path, request, plan=plan, device=device, dtype=dtype) if measure_speed else None,
                       stored=stored_bytes(request), text_weights=getattr(request, "text_encoder_weights", "auto"),
                       streamed=family.streamed)


def estimate(model_path: str | Path, request, *, family, plan: str, device: str, dtype: str, measure_speed: bool = False,
             defaults: dict[str, Any] | None = None) -> Prediction:
    """:func:`predict`, scaled from one dry run per model at a small shape (see :func:`t2v.planner.scaling.scaled`): no dry run
    per request. Above the reference shape within 3% of :func:`predict`, slightly over (tests/models)."""
    return estimate_at(str(model_path), request.num_frames, request.height, request.width, family=family,
                       batch=family.guidance_passes(request), plan=plan, device=device, dtype=dtype,
                       measure_speed=measure_speed, weights=getattr(request, "weights", "auto"),
                       lora_params=adapter_params(request), window=family.denoised_frames(request, defaults or {}),
                       run_key=run_key(model_path, request, plan=plan, device=device, dtype=dtype) if measure_speed else None,
                       stored=stored_bytes(request), text_weights=getattr(request, "text_encoder_weights", "auto"),
                       streamed=family.streamed)


def run_key(model_path: str | Path, request, *, plan: str, device: str, dtype: str) -> str:
    """The :mod:`t2v.planner.steptime` key of ``request``'s runs with this plan, device and dtype."""
    return steptime.key(model_path, device=device, dtype=dtype, weights=getattr(request, "weights", "auto"), plan=plan,
                        cache=getattr(request, "cache", None), attention=getattr(request, "attention", "auto"),
                        compile=bool(getattr(request, "compile", False)))


def estimate_at(path: str, frames: int, height: int, width: int, *, family, batch: int, plan: str, device: str, dtype: str,
                measure_speed: bool = False, weights: str = "auto", run_key: str | None = None,
                lora_params: int = 0, window: int | None = None, stored: dict[str, int] | None = None,
                text_weights: str = "auto", streamed: tuple[str, ...] = ()) -> Prediction:
    """:func:`estimate` for a shape (``batch`` 2 with classifier-free guidance; the denoiser at ``window``
    frames when it sees fewer than the clip's at once)."""
    half = is_half(dtype)
    ref = _reference(family, path, batch, get_plan(plan).uses_forward_chunking(device), half)
    if family.fits_reference and frames * height * width > EXTRAPOLATE * _largest_reference(ref):
        # far beyond the reference: a transformer's peak moves from its fixed parts (the text's) to its
        # per-token ones, which the small shapes under-weigh, and a video VAE's from its layers to the clip it
        # holds: measured at this shape instead (a dry run on the meta device, cached per shape)
        dry = _at_shape(family, path, frames, height, width, batch, plan, device, half, window)
    else:
        dry = scaled(ref, frames, height, width, _chunk(plan, frames, device), tiled=plan in family.tiled_plans,
                     window=window)
    return _prediction(dry, plan=plan, device=device, dtype=dtype, measure_speed=measure_speed, weights=weights,
                       run_key=run_key, lora_params=lora_params, stored=stored, text_weights=text_weights,
                       streamed=streamed)


EXTRAPOLATE = 4  # the most a transformer family's reference numbers are scaled up (frames x area); beyond, measured


def _largest_reference(ref: dict[str, Any]) -> int:
    """Frames x area of the largest reference dry run (four times the first's frames, for a ``fits_reference``
    family that has them)."""
    frames, height, width, _ = ref["shape"]
    return frames * height * width * (4 if ref.get("more") else 1)


def adapter_params(request) -> int:
    """Parameters of the request's LoRA adapters (from their safetensors headers: nothing is loaded); they sit
    beside the denoiser's weights while the run uses them."""
    from safetensors import safe_open

    total = 0
    for spec in getattr(request, "loras", ()):
        path = Path(spec.path)
        for file in ([path] if path.is_file() else sorted(path.rglob("*.safetensors"))):
            try:
                with safe_open(str(file), "pt") as f:
                    total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
            except Exception:  # noqa: BLE001  unreadable here: the run refuses it with a message of its own
                continue
    return total


def stored_bytes(request) -> dict[str, int]:
    """Component -> bytes its weights hold in memory, for the components a request loads from GGUF files (they
    stay quantized: about the file's size); the others hold their parameters in the run's dtype."""
    out = {}
    for name in WEIGHT_FILE_FIELDS:
        file = getattr(request, name, None)
        if file and str(file).endswith(".gguf"):
            try:
                out[name] = Path(file).expanduser().stat().st_size
            except OSError:  # refused by the run with a message of its own
                continue
    return out


def _prediction(dry: dict[str, Any], *, plan: str, device: str, dtype: str, measure_speed: bool,
                weights: str = "auto", run_key: str | None = None, lora_params: int = 0,
                stored: dict[str, int] | None = None, text_weights: str = "auto",
                streamed: tuple[str, ...] = ()) -> Prediction:
    """Peak memory and times of one plan from a dry run's numbers (``weights`` fp8/int8: the denoisers'
    weights stored in one byte per parameter, and ``text_weights`` the text encoders'; ``stored``: components
    whose weights hold these bytes instead, GGUF files; ``lora_params`` of adapters counted with the first
    denoiser; times scaled by the earlier runs under ``run_key``; ``streamed``: the components whose blocks
    stream to the device one at a time under an offloading plan, :func:`streamed_bytes`)."""
    mp = get_plan(plan)
    elt = 4 if dtype == "fp32" else 2
    frames, height, width, _ = dry["shape"]
    one_byte = (set(dry["roles"]["denoise"]) if weights != "auto" else set()) | (  # every format: 1 byte
        set(dry["roles"]["text"]) if text_weights != "auto" else set())
    storage = weights
    weights = {k: n * (1 if k in one_byte else elt) for k, n in dry["params"].items()}
    weights.update({k: v for k, v in (stored or {}).items() if k in weights})
    if lora_params and dry["roles"]["denoise"]:
        first = dry["roles"]["denoise"][0]
        weights[first] = weights.get(first, 0) + lora_params * elt
    acts = dict(dry["acts"])  # measured in the run's precision (t2v.planner.precision)
    step_flops, decode_flops = dry["step_flops"], dry["decode_flops"]
    latents_bytes = dry["latents_bytes"]
    frames_bytes = frames * height * width * 3 * 4  # decoded float frames kept for export
    roles = dry["roles"]
    role_weights = {role: sum(weights.get(n, 0) for n in names) for role, names in roles.items()}
    role_weights["denoise_one"] = max((weights.get(n, 0) for n in roles["denoise"]), default=0)
    if mp.offload and device != "cpu":  # streamed components: on the device, what stays plus a few blocks
        on_device = {n: streamed_bytes(n, w, dry) if n in streamed else w for n, w in weights.items()}
        role_weights["denoise_one"] = max((on_device.get(n, 0) for n in roles["denoise"]), default=0)
        role_weights["text"] = sum(on_device.get(n, 0) for n in roles["text"])
    denoise_acts = max((v for k, v in acts.items() if k not in ("text", "vae")), default=0)

    notes: list[str] = []
    if device == "cpu":
        baseline = _baseline_rss()
        resident = sum(weights.values())
        if mp.free_text_encoder:
            resident_after_text = resident - role_weights["text"]
            peak = baseline + max(resident + acts["text"], resident_after_text + max(denoise_acts, acts["vae"] + frames_bytes))
        else:
            peak = baseline + resident + max(acts["text"], denoise_acts, acts["vae"] + frames_bytes)
        if not _allocator_returns_freed_blocks():
            peak += HEAP_SLACK * max(acts.values())
        if mp.offload:
            notes.append("offload has no effect on cpu")
        ram = peak
    else:
        baseline = 0
        ram = _baseline_rss() + (sum(weights.values()) if mp.offload else max(weights.values(), default=0))
        if mp.offload:  # one component on the device at a time (one expert of a two-expert model)
            peak = max(role_weights["text"] + acts["text"], role_weights["denoise_one"] + denoise_acts,
                       role_weights["vae"] + acts["vae"])
        else:
            peak = sum(weights.values()) + max(acts["text"], denoise_acts, acts["vae"])
        peak += latents_bytes
    work = steptime.Work.of(dry)
    times = steptime.predict(work, run_key, device, dtype) if measure_speed else steptime.Times(float("nan"), float("nan"), 0)
    return Prediction(
        plan=plan, device=device, dtype=dtype, weights_bytes=weights, activation_bytes=acts, baseline_bytes=baseline,
        peak_bytes=int(peak), flops_per_step=int(step_flops), decode_flops=int(decode_flops),
        est_step_s=times.step_s, est_decode_s=times.decode_s, notes=notes, step_ops=work.step_ops,
        decode_ops=work.decode_ops, time_runs=times.runs, time_other_plans=times.other_plans, weights=storage,
        text_weights=text_weights, ram_bytes=int(ram), est_compile_s=times.compile_s,
    )


# Blocks of a streamed component on the device at once: the one running, the next (copied ahead on a side stream)
# and the one before, whose memory the allocator reuses only once the compute stream is past it (record_stream).
# Wan 2.1 1.3B at 832x480x81 under low on an H200: 1.82 GiB measured, 1.73 predicted with two, 1.82 with three.
STREAM_DEPTH = 3


def streamed_bytes(name: str, weight_bytes: int, dry: dict[str, Any]) -> int:
    """Device bytes of component ``name`` (``weight_bytes`` in all) while its blocks stream to the device one at
    a time (diffusers' block-level group offload): its other layers, which move as one group for the whole
    call, and :data:`STREAM_DEPTH` of its largest blocks. A dry run that did not count blocks: all of it."""
    total = dry["params"].get(name, 0)
    in_blocks, largest = (dry.get("blocks") or {}).get(name, (0, 0))
    if not total or not in_blocks:
        return weight_bytes
    return int(weight_bytes * (total - in_blocks + STREAM_DEPTH * largest) / total)


def _bounded(model_path: str | Path, request, *, family, device: str, dtype: str,
             defaults: dict[str, Any] | None = None) -> Prediction:
    """The ``speed`` plan's upper bound (:mod:`t2v.planner.bound`) as a prediction: nothing measured, no times."""
    path, batch = Path(model_path), family.guidance_passes(request)
    shape = (request.num_frames, request.height, request.width, batch)
    weights = 4 * (bound.parameters(path) + adapter_params(request))
    acts = bound.activations(path, *shape, text_tokens=family.prompt_tokens(path, request, defaults or {}))
    baseline = _baseline_rss() if device == "cpu" else 0
    peak = baseline + weights + acts * (1 + HEAP_SLACK) + bound.extras(*shape)
    return Prediction(plan="speed", device=device, dtype=dtype, weights_bytes={"all": weights},
                      activation_bytes={"text": acts, family.denoiser: acts, "vae": acts}, baseline_bytes=baseline,
                      peak_bytes=int(peak), flops_per_step=0, decode_flops=0, est_step_s=float("nan"),
                      est_decode_s=float("nan"), method="bound", weights=getattr(request, "weights", "auto"),
                      text_weights=getattr(request, "text_encoder_weights", "auto"))


# With glibc's dynamic mmap threshold, activations freed by one step or stage stay in the heap, and the next
# one's blocks only partly fit the holes. Measured on CPU (docs/benchmarks.md): the peak RSS exceeds
# baseline + weights + the largest stage's live tensors by 0.3-1.1x those live tensors on the tiny model and
# 0.4-0.8x on the full-size one; the planner adds half.
HEAP_SLACK = 0.5


def _allocator_returns_freed_blocks() -> bool:
    return sys.platform.startswith("linux") and current().settings.mmap_threshold_kb > 0


#: What ``auto`` tries when no plan fits with the weights in the run's dtype: the denoisers in float8, then the text
#: encoders too, each under the plans from fastest to leanest.
STORED_IN_8_BITS = tuple((name, storage) for storage in ({"weights": "fp8"}, {"weights": "fp8", "text_encoder_weights": "fp8"})
                         for name in ("speed", "balanced", "low"))


def storage_choices(request, device: str) -> bool:
    """Whether ``auto`` may store this request's weights in 8 bits: both storages left to it, no LoRA (fp8
    storage takes none yet), a device with float8 tensors (not Apple GPUs)."""
    return (getattr(request, "weights", None) == "auto" and getattr(request, "text_encoder_weights", None) == "auto"
            and not getattr(request, "loras", ()) and not str(device).startswith("mps"))


def choose(model_path: str | Path, request, *, family, requested: str, device: str, dtype: str, budget: int | None = None,
           measure_speed: bool = False, defaults: dict[str, Any] | None = None,
           bound_ok: bool = True, ram_budget: int | None = None) -> tuple[MemoryPlan, list[Prediction]]:
    """The plan to use and the predictions considered (:func:`estimate` s: no dry run per request).

    ``auto``: the fastest plan predicted to fit in ``budget`` bytes (default: 90% of the free memory, see
    :func:`t2v.planner.fit.memory_budget`), with the weights in the run's dtype or, when none fits so and the
    request leaves the storage to it, in float8 (:data:`STORED_IN_8_BITS`; the chosen prediction's ``weights`` and
    ``text_weights`` say which); a named plan is used as asked. On an accelerator a plan fits only if its CPU memory
    (``ram_bytes``) is within ``ram_budget`` too (default: 90% of the available RAM). When even the leanest plan
    (``low``) is predicted not to fit, raises InvalidRequest naming the fields, the prediction, the budget
    and the largest frame count and size that would fit.

    A model with no dry run shipped or cached whose :mod:`t2v.planner.bound` is at most a quarter of the budget
    gets ``speed`` (``auto`` or ``speed`` asked, no step times wanted, ``bound_ok``: the run needs no counted work
    for an ETA) without one: its one prediction is that
    bound (``method`` "bound"). A dry run made here is the run's ``dry_run`` stage (:func:`t2v.progress.stage`).
    """
    budget = fit.memory_budget(device) if budget is None else budget
    if device != "cpu" and ram_budget is None:
        ram_budget = fit.memory_budget("cpu")
    predictions: list[Prediction] = []
    path, batch, half = str(model_path), family.guidance_passes(request), is_half(dtype)
    if bound_ok and requested in ("auto", "speed") and not measure_speed and not _reference_known(family, path, batch, False, half):
        quick = _bounded(model_path, request, family=family, device=device, dtype=dtype, defaults=defaults)
        if quick.peak_bytes <= bound.FAR * budget:
            quick.fits = True
            return get_plan("speed"), [quick]

    def consider(name: str, **storage: str) -> Prediction:
        known = _reference_known(family, path, batch, get_plan(name).uses_forward_chunking(device), half)
        p = estimate(model_path, request.model_copy(update=storage) if storage else request, family=family, plan=name,
                     device=device, dtype=dtype, measure_speed=measure_speed, defaults=defaults)
        p.fits, p.method = p.peak_bytes <= budget, "estimate" if known else "dry_run"
        if p.fits and ram_budget is not None and p.ram_bytes > ram_budget:
            p.fits = False
            p.notes.append(f"needs {p.ram_bytes / 2**30:.1f} GiB of CPU memory, over the RAM budget")
        predictions.append(p)
        return p

    if requested == "auto":
        chosen = next((p for p in map(consider, ("speed", "balanced", "low")) if p.fits), None)
        if chosen is None and storage_choices(request, device):  # then the weights in 8 bits, the fastest first
            chosen = next((p for p in (consider(name, **storage) for name, storage in STORED_IN_8_BITS) if p.fits), None)
    else:
        chosen = consider(requested)
        leanest = chosen if requested == "low" or chosen.fits else consider("low")
        if not leanest.fits:
            chosen = None
    if chosen is None:
        window = family.denoised_frames(request, defaults or {})
        raise fit.refusal(model_path, request, predictions[-1], budget,
                          functools.partial(estimate_at, family=family, window=window), ram_budget=ram_budget)
    return get_plan(chosen.plan), predictions
