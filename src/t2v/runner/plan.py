"""The one place a run is planned: :func:`plan_run` resolves the request, finds the model and its family, fits the
device and precision to both, and picks the memory plan; the speed options (attention kernel, weights format,
compile) are the ones the request resolved to. The result, a :class:`RunPlan`, is what loading, the planner and
the loop are handed (the family among it: nothing below the families looks one up), what ``t2v plan`` shows,
what a server admits a job with, and the record's ``plan`` block."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from t2v.errors import Cancelled, DoesNotFit, ModelUnavailable
from t2v.families import get_family
from t2v.models.device import DevicePlan, fit_to_model, plan_device
from t2v.models.source import resolve_source
from t2v.planner.fit import memory_budget
from t2v.planner.memory import Prediction, choose
from t2v.planner.plans import get_plan
from t2v.requests import WEIGHT_FILE_FIELDS
from t2v.runner.resolve import resolve
from t2v.settings import Settings

GiB = 2**30


@dataclass(frozen=True)
class RunPlan:
    """What a run will use: the resolved ``request``, the model's ``source`` and ``family``, the ``device`` plan
    (device, dtype and why), the memory ``budget`` in bytes, the chosen ``memory`` plan with the ``predictions``
    considered, and (``replanned``) why it was planned again on the machine that runs it. ``source`` is None
    when the model is not on this machine yet (admission without downloading: planned again when it runs);
    ``refused`` is why no memory plan fits, for a caller that shows the plan anyway (``t2v plan``)."""

    request: Any
    device: DevicePlan
    source: Any = None  # t2v.models.source.ModelSource
    family: Any = None  # t2v.families.Family
    budget: int | None = None
    memory: Any = None  # t2v.planner.plans.MemoryPlan
    predictions: tuple = ()
    replanned: str | None = None
    refused: DoesNotFit | None = None

    @property
    def machine(self) -> dict[str, Any]:
        """What the plan depends on in the machine: device, dtype and memory budget (whole GiB)."""
        return {"device": self.device.device, "dtype": self.device.dtype,
                "budget_gb": None if self.budget is None else round(self.budget / GiB)}

    def chosen(self):
        """The chosen memory plan's prediction, at the request's weight storage (None without a memory plan)."""
        storage = (getattr(self.request, "weights", "auto"), getattr(self.request, "text_encoder_weights", "auto"))
        named = [p for p in self.predictions if self.memory is not None and p.plan == self.memory.name]
        return next((p for p in named if (p.weights, p.text_weights) == storage), named[0] if named else None)

    def to_dict(self) -> dict[str, Any]:
        """The plan as the record and a job row keep it (JSON)."""
        request = self.request
        out: dict[str, Any] = {
            "source": None if self.source is None else self.source.id,
            "family": None if self.family is None else self.family.name,
            "device": self.device.device, "dtype": self.device.dtype,
            "memory": None if self.memory is None else self.memory.name,
            "attention": getattr(request, "attention", "auto"), "weights": getattr(request, "weights", "auto"),
            "compile": getattr(request, "compile", False), "machine": self.machine,
        }
        chosen = self.chosen()
        if chosen is not None:
            out["predicted_peak_mb"] = round(chosen.peak_bytes / 2**20, 1)
        if self.replanned is not None:
            out["replanned"] = self.replanned
        return out

    def admitted(self) -> dict[str, Any]:
        """The plan as a job row keeps it: :meth:`to_dict` and the chosen memory plan's whole prediction, so a run
        on the same machine (:func:`plan_run` with ``admitted``) takes it as it is, without planning again."""
        chosen = self.chosen()
        if chosen is None:
            return self.to_dict()
        # JSON has no NaN (PostgreSQL refuses it): a time not predicted is kept as null
        kept = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in chosen.to_dict().items()}
        return {**self.to_dict(), "prediction": kept}


def plan_model(model: str, settings: Settings, *, device: str = "auto", dtype: str = "auto", offline: bool = False,
               motion_adapter: str | None = None) -> tuple[DevicePlan, Any, Any]:
    """The part of a run's plan that needs no request: the device plan for ``device``/``dtype``, ``model``'s
    source (downloaded unless ``offline``; :class:`~t2v.errors.ModelUnavailable` when it cannot be had), the
    precision fitted to the model, and its family. :func:`plan_run` starts with it; warming a model
    (:func:`t2v.runner.runtime.load_pipeline`) uses it alone."""
    plan = plan_device(device, dtype, cpu_bf16=settings.cpu_bf16)
    source = resolve_source(model, settings.model_copy(update={"offline": True}) if offline else settings,
                            families=get_family, want_fp16=plan.is_accelerator and plan.dtype != "fp32",
                            motion_adapter=motion_adapter)
    return fit_to_model(plan, source.path, asked=dtype, cpu_bf16=settings.cpu_bf16), source, get_family(source.family)


def plan_run(request, settings: Settings, *, memory: bool = False, offline: bool = False,
             check: Callable[[Any], None] | None = None, should_cancel: Callable[[], bool] | None = None,
             admitted: dict[str, Any] | None = None, refuse: bool = True, times: bool = False) -> RunPlan:
    """Plan a run of ``request``: resolve it (:func:`t2v.runner.resolve.resolve`), then ``check(resolved)`` (the
    caller's refusals before the model is looked for: outputs, input files, cost limits), then the device plan,
    the model's source (downloaded unless ``offline``), the precision fitted to the model, its family and the
    family's rules, and with ``memory`` the memory plan (:class:`~t2v.errors.DoesNotFit` when none fits the
    budget; without ``refuse``, a plan with no memory plan and the refusal in ``refused``).

    ``offline``: a model not on this machine yet gives a plan without source (nothing is downloaded).
    ``admitted``: the plan a job was admitted with (:meth:`RunPlan.admitted`); on the same machine its memory
    plan and prediction are taken as they are (nothing is estimated again), on another the run is planned again
    and ``replanned`` says so. ``times``: somebody watches the run's progress, so its memory plan counts the work
    per step (for an ETA from the first step and the step times kept for later runs) rather than taking an upper
    bound.
    """
    request = resolve(request, settings)
    if check is not None:
        check(request)
    try:
        device, source, family = plan_model(request.model, settings, device=request.device, dtype=request.dtype,
                                            offline=offline, motion_adapter=getattr(request, "motion_adapter", None))
    except ModelUnavailable:
        if not offline:
            raise
        # checked when its job runs, once the model is here
        return RunPlan(request, plan_device(request.device, request.dtype, cpu_bf16=settings.cpu_bf16))
    family.check(request, source.path, model=request.model)
    files = {n: getattr(request, n) for n in WEIGHT_FILE_FIELDS if getattr(request, n, None)}
    if files:  # each checked against the component it replaces, before anything loads
        source = replace(source, files=tuple((n, str(p)) for n, p in family.check_files(source.path, files).items()))
    if should_cancel is not None and should_cancel():
        raise Cancelled("cancelled before loading the model")
    plan = RunPlan(request, device, source, family)
    if not memory:
        return plan
    budget = memory_budget(device.device, settings.memory_budget_gb)
    plan = replace(plan, budget=budget)
    requested = request.memory
    replanned = None
    if admitted is not None and admitted.get("memory"):
        if admitted.get("machine") != plan.machine:
            replanned = f"admitted on {_machine(admitted.get('machine'))}, run on {_machine(plan.machine)}"
        elif (kept := _kept_prediction(admitted)) is not None:  # the plan it was admitted with, as it is
            return replace(plan, memory=get_plan(kept.plan), predictions=(kept,))
        else:
            requested = admitted["memory"]
    try:
        ram_budget = None if device.device == "cpu" else memory_budget("cpu", settings.ram_budget_gb)
        chosen, predictions = choose(source.path, request, family=family, requested=requested, device=device.device,
                                     dtype=device.dtype, budget=budget, defaults=source.defaults, bound_ok=not times,
                                     ram_budget=ram_budget)
    except DoesNotFit as e:
        if refuse:
            raise
        return replace(plan, refused=e)
    picked = next((p for p in predictions if p.fits), None) if requested == "auto" else None
    if picked is not None and (picked.weights, picked.text_weights) != (
            getattr(request, "weights", "auto"), getattr(request, "text_encoder_weights", "auto")):
        # auto stored the weights in 8 bits to fit: the run loads and records them so
        request = request.model_copy(update={"weights": picked.weights, "text_encoder_weights": picked.text_weights})
        plan = replace(plan, request=request)
    return replace(plan, memory=get_plan(chosen.name), predictions=tuple(predictions), replanned=replanned)


def _kept_prediction(admitted: dict[str, Any]) -> Prediction | None:
    """The admitted plan's prediction of its memory plan (None: a plan kept without one)."""
    found = admitted.get("prediction")
    if not isinstance(found, dict) or found.get("plan") != admitted["memory"]:
        return None
    floats = {f.name for f in fields(Prediction) if f.type in ("float", float)}
    try:
        return Prediction(**{k: math.nan if v is None and k in floats else v for k, v in found.items()})
    except TypeError:  # kept by another version of t2v: the plan is estimated again
        return None


def _machine(machine: dict[str, Any] | None) -> str:
    """A machine fingerprint as a phrase (``cuda/bf16, 70 GiB``)."""
    if not machine:
        return "an unknown machine"
    budget = "" if machine.get("budget_gb") is None else f", {machine['budget_gb']} GiB"
    return f"{machine.get('device')}/{machine.get('dtype')}{budget}"
