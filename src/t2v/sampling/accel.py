"""Attention kernels and compiled denoisers (``--attention``, ``--compile``), on a run's own view of the model.

``--attention``: ``auto`` leaves the model as loaded (PyTorch's scaled-dot-product attention, SDPA); the other
kernels (SDPA pinned to one of its back-ends, flex attention, the flash-attn and SageAttention packages:
:mod:`t2v.sampling.kernels`) go through diffusers' attention dispatcher, to the transformers whose attention
goes through it; the kernels that take no mask only to those whose attention passes none (each family's card
says which: ``FamilyCard.kernels``). The kernel is set on the processors of a private view of the denoiser
(:func:`t2v.sampling.views.private_view`), never through diffusers' process-wide active backend, so runs in other
threads keep theirs.

``--compile``: ``torch.compile`` with inductor. The transformer families compile their repeated blocks
(diffusers' ``_repeated_blocks``: regional compilation, one graph serves every block, fullgraph); the UNet
families compile the whole UNet (its blocks differ in shape level by level, so regions compile more and run
slower: measured in docs/speed.md). Dynamo guards on the module objects, so a compiled
variant is made once per cached base module (and attention kernel), kept in a weak map beside the loaded-model
cache and reused by every later request: the first run of a shape compiles, later runs of that shape reuse the
code. Shapes are static (``dynamic=False``); each new shape (size, frames, batch) compiles once more, up to
``torch._dynamo.config.recompile_limit`` shapes per compiled function (8 by default; t2v leaves that
process-wide setting alone), after which further shapes run eagerly. Where compiling a block fails, the variant falls back to eager execution for good, with a warning in
the run's record.

Compile and step caches are not combined: the caches add hooks (and DeepCache calls UNet blocks itself), which
would either recompile or mutate the shared compiled variant.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import weakref

from t2v.errors import InvalidRequest
from t2v.requests import MASKLESS_KERNELS
from t2v.runtime import current
from t2v.sampling.kernels import (KERNELS, ROUTED_PROCESSORS, RoutedProcessor, backend_name, compile_error, requirements,
                                  run_compiled)
from t2v.sampling.views import private_view, with_components

logger = logging.getLogger(__name__)

# The kernels a family's denoiser can use are its card's (FamilyCard.kernels; a plugin family without a card may
# set ``attention_kernels``); SDPA only for a family without either.
SDPA_ONLY = ("auto", "sdpa")
COMPILE_BACKEND = "inductor"  # torch.compile's backend (tests use "aot_eager": the same graphs, no C++ build)
# The UNet families compile the whole UNet (one graph per shape). Regions (the blocks below) were measured
# slower on t2v-shapes: their shapes differ level by level, so they compile many graphs and ResnetBlock2D alone
# passes dynamo's recompile limit within one UNet (benchmarks/bench_compile.py --unet regional; docs/speed.md).
UNET_BLOCKS = ("BasicTransformerBlock", "TemporalBasicTransformerBlock", "ResnetBlock2D", "TemporalConvLayer")
UNET_REGIONAL = False


# -- checks, before loading ---------------------------------------------------------------------------------
def kernels(family) -> tuple[str, ...]:
    """The ``--attention`` values ``family``'s denoiser can use: its card's (SDPA only for a family without one)."""
    own = getattr(family, "attention_kernels", None)
    if own:
        return tuple(own)
    card = getattr(family, "card", None)
    return tuple(card.kernels) if card is not None and card.name == family.name else SDPA_ONLY


def target_device(request) -> str:
    """The device type a run of ``request`` will use ("cuda", "mps" or "cpu"), as the device plan resolves it."""
    import torch

    asked = str(getattr(request, "device", "auto") or "auto")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if asked == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if asked.startswith("cuda"):
        return "cuda" if cuda else "cpu"
    if asked == "mps":
        return "mps" if mps else "cpu"
    return "cpu"


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use for CPU code (its own search: $CXX / g++, cl on Windows), or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return get_cpp_compiler()
    except Exception:  # InvalidCxxCompiler, or a torch without it
        return None


def dynamo_problem() -> str | None:
    """Why torch.compile cannot run on this Python (None: it can)."""
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except ImportError:
        return "this torch has no torch.compile"
    except Exception as e:
        return str(e).strip() or type(e).__name__
    return None


def check(family, request, *, model: str = "this model") -> None:
    """Refuse (InvalidRequest naming the field and what would work) an attention kernel or compile this
    family, this machine or this request cannot use."""
    attention = str(getattr(request, "attention", "auto") or "auto")
    if attention not in ("auto", "sdpa"):
        check_kernel(family, request, attention, model)
    if getattr(request, "compile", False):
        check_compile(family, request, model)


def check_kernel(family, request, attention: str, model: str) -> None:
    offered = kernels(family)
    if attention not in offered:
        why = (f"its {family.denoiser}'s attention passes a mask, which the {attention} kernel does not take"
               if attention in MASKLESS_KERNELS and "flex" in offered else
               f"its {family.denoiser}'s attention takes {', '.join(offered)}")
        raise InvalidRequest(f"attention: {model} ({family.name}) cannot use the {attention} kernel: {why}; "
                             f"nearest valid: sdpa", field="attention")
    device, dtype = target_device(request), str(getattr(request, "dtype", "auto") or "auto")
    capability = cuda_capability() if device == "cuda" else None
    problem = requirements(KERNELS[attention], device, dtype, capability, installed)
    if problem is None and KERNELS[attention].compiles and compile_problem(device):
        problem = f"runs through torch.compile, and {compile_problem(device)}"
    if problem:
        usable = [k for k in offered if k not in ("auto", attention)
                  and requirements(KERNELS[k], device, dtype, capability, installed) is None
                  and not (KERNELS[k].compiles and compile_problem(device))]
        raise InvalidRequest(f"attention: the {attention} kernel {problem}; nearest valid: sdpa (usable for this "
                             f"run: {', '.join(usable)})", field="attention")


def cuda_capability() -> tuple[int, int] | None:
    """The current CUDA card's compute capability (None without one)."""
    import torch

    try:
        return tuple(torch.cuda.get_device_capability())
    except Exception:  # no usable CUDA device
        return None


def compile_problem(device: str) -> str | None:
    """Why torch.compile cannot run on ``device`` here (None: it can)."""
    problem = dynamo_problem()
    if problem:
        return f"torch.compile cannot run here ({problem})"
    if device == "mps":
        return "torch.compile of these models is not supported on mps"
    if device == "cuda" and not installed("triton"):
        return ("torch.compile on a CUDA GPU needs the triton package (pip install triton"
                + ("-windows" if sys.platform == "win32" else "") + ")")
    if device == "cpu" and cpp_compiler() is None:
        hint = "Visual Studio's C++ build tools (cl)" if sys.platform == "win32" else "g++ (or set CXX)"
        return f"torch.compile on cpu needs a C++ compiler and none was found; install {hint}"
    return None


def check_compile(family, request, model: str) -> None:
    problem = compile_problem(target_device(request))
    if problem:
        raise InvalidRequest(f"compile: {problem}, or run without --compile", field="compile")
    cache = getattr(request, "cache", None)
    if cache and str(cache).strip().lower() not in ("none", "off", "no"):
        raise InvalidRequest(f"compile: cannot be combined with a step cache (--cache {cache}): the cache's hooks "
                             f"would recompile the shared compiled blocks; use either --compile or --cache",
                             field="compile")


# -- applying, per run ----------------------------------------------------------------------------------------
def denoisers(family, model) -> list[str]:
    """The components that run each step (Wan 2.2's second expert too)."""
    names = [family.denoiser]
    if family.denoiser == "transformer" and model.components.get("transformer_2") is not None:
        names.append("transformer_2")
    return [n for n in names if model.components.get(n) is not None]


def apply(family, model, request, ctx=None):
    """The :class:`LoadedModel` this run uses: ``model`` itself when the request asks for nothing, else a copy
    whose denoiser(s) are a private view with the attention kernel, or the shared compiled variant. Warnings
    (a compile that fell back to eager) go to ``ctx.warnings`` when given."""
    attention = str(getattr(request, "attention", "auto") or "auto")
    compiled = bool(getattr(request, "compile", False))
    if attention == "auto" and not compiled:
        return model
    warnings = ctx.warnings if ctx is not None else None
    replaced = {}
    for name in denoisers(family, model):
        base = model.components[name]
        if compiled:
            variant = compiled_variant(family, base, attention)
            variant.bind(warnings)
            replaced[name] = variant.module
        elif attention == "sdpa" and not any(hasattr(getattr(m, "processor", None), "_attention_backend")
                                             for m in base.modules()):
            continue  # its processors call SDPA directly (the UNets', CogVideoX's): nothing to set
        else:
            view = private_view(base)
            set_kernel(view, attention)
            replaced[name] = view
    return with_components(model, **replaced)


def set_kernel(module, attention: str) -> int:
    """Point the attention processors of ``module`` (a private view) at ``attention``'s kernel; returns how
    many processors now use it. Processors that call SDPA themselves (CogVideoX's) are wrapped so that their
    calls go to the dispatcher; ``auto`` needs nothing."""
    if attention == "auto":
        return 0
    from diffusers.models.attention_dispatch import AttentionBackendName

    backend = AttentionBackendName(backend_name(attention))
    count = 0
    for sub in module.modules():
        processor = getattr(sub, "processor", None)
        if processor is not None and hasattr(processor, "_attention_backend"):
            processor._attention_backend = backend
            count += 1
        elif type(processor).__name__ in ROUTED_PROCESSORS:  # it calls SDPA itself: its calls go to the dispatcher
            sub.processor = RoutedProcessor(processor, backend)
            count += 1
    if not count and attention != "sdpa":
        raise InvalidRequest(f"attention: this {type(module).__name__} has no attention that can use the "
                             f"{attention} kernel; nearest valid: sdpa", field="attention")
    return count


class CompiledVariant:
    """One compiled view of a cached base module (shared by every run of that module and kernel): its
    repeated blocks run through torch.compile, and fall back to eager for good if compiling fails."""

    def __init__(self, module, blocks: list, fullgraph: bool):
        import torch

        self.module = module
        self.failed: str | None = None
        self.local = threading.local()
        self.blocks = []
        for block in blocks:
            eager = block.forward
            self.blocks.append((block, eager))
            block.forward = Guarded(self, torch.compile(eager, fullgraph=fullgraph, dynamic=False, backend=COMPILE_BACKEND), eager)

    def bind(self, warnings: list[str] | None) -> None:
        """Send this thread's fallback warnings to ``warnings`` (the current run's)."""
        self.local.warnings = warnings
        if self.failed and warnings is not None:
            warnings.append(f"compile: running eagerly, compiling failed earlier ({self.failed})")

    def fall_back(self, error: BaseException) -> None:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        if self.failed is None:
            self.failed = f"{type(error).__name__}: {first}"
            for block, eager in self.blocks:
                block.forward = eager
            logger.warning("compile failed, running %s eagerly: %s", type(self.module).__name__, self.failed)
            warnings = getattr(self.local, "warnings", None)
            if warnings is not None:
                warnings.append(f"compile: fell back to eager ({self.failed})")


class Guarded:
    """A block's compiled forward that hands over to the eager one when dynamo or inductor fails."""

    def __init__(self, variant: CompiledVariant, compiled, eager):
        self.variant, self.compiled, self.eager = variant, compiled, eager

    def __call__(self, *args, **kwargs):
        if self.variant.failed:
            return self.eager(*args, **kwargs)
        try:
            return run_compiled(self.compiled, *args, **kwargs)
        except Exception as e:
            if not compile_error(e):
                raise
            self.variant.fall_back(e)
            return self.eager(*args, **kwargs)


VARIANTS = "compiled-kernels"  # the runtime's cache: base module -> {attention: CompiledVariant} (weakly keyed)


def _variants() -> weakref.WeakKeyDictionary:
    return current().cache(VARIANTS, lambda runtime: weakref.WeakKeyDictionary())


_lock = threading.Lock()


def compiled_variant(family, base, attention: str) -> CompiledVariant:
    """The compiled variant of ``base`` for ``attention``, made once (under a lock) and reused."""
    with _lock:
        per_kernel = _variants().setdefault(base, {})
        variant = per_kernel.get(attention)
        if variant is None:
            variant = per_kernel[attention] = make_variant(family, base, attention)
        return variant


def make_variant(family, base, attention: str) -> CompiledVariant:
    view = private_view(base)
    set_kernel(view, attention)
    names = block_names(family, view)
    blocks = [m for m in view.modules() if type(m).__name__ in names]
    fullgraph = bool(blocks) and family.denoiser == "transformer"  # a whole module may have graph breaks
    if not blocks:  # nothing repeated to compile regionally: the whole module
        blocks = [view]
    logger.info("compiling %s of %s (fullgraph=%s)", f"{len(blocks)} {'/'.join(sorted(names))} blocks" if names else
                "the whole module", type(view).__name__, fullgraph)
    return CompiledVariant(view, blocks, fullgraph)


def block_names(family, module) -> set[str]:
    """The classes of ``module``'s blocks to compile (none: the whole module). Transformers: diffusers'
    ``_repeated_blocks``, or (CogVideoX's) the class of the longest list of same-class blocks. UNets: none, or
    :data:`UNET_BLOCKS` with :data:`UNET_REGIONAL`."""
    import torch

    if family.denoiser != "transformer":
        return set(UNET_BLOCKS) if UNET_REGIONAL else set()
    declared = set(getattr(module, "_repeated_blocks", None) or ())
    if declared:
        return declared
    best: list = []
    for sub in module.modules():
        if isinstance(sub, torch.nn.ModuleList) and len(sub) > len(best) and len({type(m) for m in sub}) == 1:
            best = list(sub)
    return {type(best[0]).__name__} if len(best) > 1 else set()


def reset() -> None:
    """Forget every compiled variant (they also go with their base modules); dynamo's code caches stay."""
    with _lock:
        _variants().clear()


def compiled_count() -> int:
    """How many compiled variants are alive (for tests and diagnostics)."""
    with _lock:
        return sum(len(v) for v in _variants().values())
