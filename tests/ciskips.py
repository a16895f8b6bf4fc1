"""Under CI=true a test that skips for want of a server, a browser, a tool or an extra fails instead, naming what
is missing: .ci/run and the dev extra install all of them, so a skip there is a broken install, not a proof.
Skips that depend on the machine, not on the install, stay skips (:data:`MACHINE_SKIPS`), as do the tests marked
``gpu`` on a machine without CUDA.

A plugin of its own: tests/conftest.py takes its hooks, and tests/test_ci_skips.py runs pytest with it alone
(without the conftest's imports of torch and t2v, which would take most of each run)."""

from __future__ import annotations

import os

import pytest

MACHINE_SKIPS = ("needs a CUDA device", "machine has CUDA", "root can write anywhere", "the package is installed here",
                 "glibc malloc tuning", "reads /proc/self/status",
                 "spandrel")  # needs torchvision, which has no CPU build for torch 2.13.0 (docs/benchmarks.md)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(allowed in reason for allowed in MACHINE_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"CI=true and this test would skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole file that skips as it is collected (a module-level ``pytest.importorskip``)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(allowed in reason for allowed in MACHINE_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"CI=true and every test of {collector.nodeid} would skip: {reason}"


def skip_gpu_tests_without_cuda(items) -> None:
    """Tests marked ``gpu`` skip where torch finds no CUDA device (torch is imported only if one is collected)."""
    if not any("gpu" in item.keywords for item in items):
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_collection_modifyitems(config, items):
    skip_gpu_tests_without_cuda(items)
