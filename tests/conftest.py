"""Shared fixtures: an isolated T2V_HOME, offline hub, and tiny models built once per session."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from t2v.models.loader import ModelCache
from t2v.planner import dryruns
from t2v.runtime import Runtime, using
from tests import tinymodels
from tests.pgserver import pg_database, pg_server  # noqa: F401  (shared fixtures)

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# pytest-xdist's workers set COLUMNS/LINES to the controller's terminal (80 when it has none), which fixes the
# width of Rich's consoles at 80 where a plain pytest run gives them the default: the same output either way.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)
# Under pytest-xdist, the cores are shared out: each worker, and every process it starts (servers, CLIs), computes
# with cores/workers threads. Two workers each spinning two OpenMP threads on 2 cores ran the suite's heaviest
# tests 1.5-3x slower than alone.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)
    if "torch" in sys.modules:  # imported already by a plugin: its pool is sized, so size it again
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
# The seed contract (t2v's frames = stock diffusers' in fp32) holds on every CPU only if `--dtype auto` stays
# fp32: on a CPU with native bf16 it would pick bf16. Tests of that choice pass `cpu_bf16` themselves.
os.environ["T2V_CPU_BF16"] = "0"


# Under CI=true a test that would skip for want of a server or an extra fails instead (tests/ciskips.py).
from tests.ciskips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401  (hooks)
from tests.ciskips import skip_gpu_tests_without_cuda  # noqa: E402


@pytest.fixture(autouse=True)
def eager_flex(monkeypatch):
    """Flex attention's eager reference in place of its compiled form, in every test (the same maths). Compiled
    (t2v.sampling.kernels.COMPILE_FLEX), it is compiled again for each new shape: a family that attends with flex
    over growing chunks (AnyFlow FAR's block-causal cache) spent 20-35 s compiling in whichever test ran it first
    in a worker that had put t2v's flex in diffusers' dispatcher. The compiled form has its own tests
    (tests/sampling/test_kernels.py), which turn it on."""
    monkeypatch.setattr("t2v.sampling.kernels.COMPILE_FLEX", False)


@pytest.fixture(scope="session", autouse=True)
def tiny_model_builds(tmp_path_factory) -> Path:
    """Where the run keeps its one build of each tiny model (tests/tinymodels.py): the run's temporary folder,
    which both pytest-xdist workers' folders sit in."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tiny-builds"
    tinymodels.use_root(root)
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight ModelScope-layout model with fp16 variant files (read-only by convention)."""
    return tinymodels.make_tiny(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_sd_model(tmp_path_factory) -> Path:
    """A tiny random-weight Stable Diffusion (text-to-image) model for image mode."""
    return tinymodels.make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd", family="sd", seed=0, fp16_variant=False)


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> Path:
    """A private copy of the tiny model that a test may damage."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model, dst)
    return dst


#: Loaded models stay warm from test to test (keyed by folder, device and dtype), as in a long-lived worker.
SHARED_MODELS = ModelCache()


#: The planner's dry runs, kept from test to test as a long-lived process keeps them (t2v.planner.dryruns: one
#: per architecture, shape and code version; what a dry run measures depends on nothing else). A test of the
#: dry runs themselves, or of what a run does without one, is marked ``own_dry_runs`` and starts without any.
SHARED_DRY_RUNS: dict = {}


def runtime_with_shared_dry_runs(settings=None) -> Runtime:
    runtime = Runtime(settings)
    runtime.cache(dryruns.MEMO, lambda runtime: SHARED_DRY_RUNS)
    return runtime


def service_modules() -> tuple[str, ...]:
    """The service modules whose runtimes share the dry runs. A machine with t2v's core alone (a GPU image with
    the core's wheels carried to it, for the GPU-marked tests) lacks the service's database libraries: there
    the service is not patched, as no test that runs there builds one; under CI its absence fails."""
    try:
        import t2v.service.compose  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        return ()
    return ("t2v.service.compose", "t2v.service.service")


SERVICE_MODULES = service_modules()


@pytest.fixture(autouse=True)
def t2v_env(request, tmp_path, tmp_path_factory, monkeypatch) -> Iterator[Path]:
    """Each test runs as a fresh process would: its own T2V_HOME and a fresh runtime (no digests or settings
    cached by another test; a service a test builds installs its own and is undone afterwards). Loaded models
    and the planner's dry runs are shared (:data:`SHARED_MODELS`, :data:`SHARED_DRY_RUNS`)."""
    home = tmp_path / "t2v-home"
    monkeypatch.setenv("T2V_HOME", str(home))
    # API clients may name model folders only under T2V_MODEL_ROOTS: the test session's own folders.
    monkeypatch.setenv("T2V_MODEL_ROOTS", str(tmp_path_factory.getbasetemp()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("T2V_OFFLINE", "1")
    for var in ("T2V_DEVICE", "T2V_DTYPE", "T2V_MODEL", "T2V_DEFAULT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    runtime = Runtime()
    runtime.cache("models", lambda runtime: SHARED_MODELS)
    if request.node.get_closest_marker("own_dry_runs") is None:
        runtime.cache(dryruns.MEMO, lambda runtime: SHARED_DRY_RUNS)
        # and the runtime a service the test builds makes for itself (t2v.service.compose): its admission plans
        # each job as a long-lived server does, with the dry runs it has made before
        for module in SERVICE_MODULES:
            monkeypatch.setattr(f"{module}.Runtime", runtime_with_shared_dry_runs)
    else:  # and the t2v processes it forks (tests/forkserver.py) start without the earlier forks' either
        monkeypatch.setenv("T2V_TEST_OWN_DRY_RUNS", "1")
    with using(runtime):
        yield home


# Each test file's summed seconds in a whole run (tests/durations.json; scripts/test_durations.py refreshes it).
# pytest-xdist's --dist loadfile (the README's test command) hands whole files to its workers in collection order
# (pyproject's --no-loadscope-reorder keeps that order): longest first, the two workers end within seconds of each
# other instead of one running a long file alone at the end. A file the table lacks counts as a short one.
DURATIONS: dict[str, float] = json.loads((Path(__file__).parent / "durations.json").read_text(encoding="utf-8"))


def _file_seconds(item) -> float:
    return DURATIONS.get(Path(item.path).relative_to(Path(__file__).parents[1]).as_posix(), 1.0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -_file_seconds(item))  # stable: a file's tests keep their order
    skip_gpu_tests_without_cuda(items)
