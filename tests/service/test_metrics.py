"""/metrics' numbers (t2v.service.metrics): job counts read at scrape time, timings per service, and several
processes' timings added up through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families

from t2v.service.metrics import Metrics
from t2v.service.service import STATUSES

RECORD = {"num_inference_steps": 4, "timings": {"denoise_s": 2.0}}


def samples(text: str) -> dict[str, float]:
    return {s.name + (f"{{status={s.labels['status']}}}" if "status" in s.labels else ""): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counts_come_from_the_database_at_each_scrape_and_timings_per_service(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    counts = {"queued": 3, "succeeded": 1}
    first, second = Metrics(lambda: dict(counts), STATUSES), Metrics(lambda: {}, STATUSES)
    first.observe_job(5.0, RECORD)
    first.observe_job(1.0, {**RECORD, "resumed_from_step": 3})  # 1 step run, 3 resumed from a checkpoint
    first.observe_job(1.0, {**RECORD, "post_history": []})  # a post job: its record holds the source's steps
    got = samples(first.exposition()[0].decode())
    assert got["t2v_jobs{status=queued}"] == 3 and got["t2v_jobs{status=failed}"] == 0
    assert got["t2v_queue_depth"] == 3
    assert (got["t2v_generation_seconds_count"], got["t2v_generation_seconds_sum"]) == (3, 7.0)
    assert got["t2v_step_seconds_count"] == 5 and abs(got["t2v_step_seconds_sum"] - 4.0) < 1e-9  # each job's denoise_s
    counts["queued"] = 0  # read again at the next scrape
    assert samples(first.exposition()[0].decode())["t2v_queue_depth"] == 0
    assert samples(second.exposition()[0].decode())["t2v_generation_seconds_count"] == 0  # its own


def test_several_processes_add_up_with_prometheus_multiproc_dir(tmp_path):
    """Two worker processes each run a job; a third (the one scraped) reports both."""
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    run = textwrap.dedent(f"""
        from t2v.service.metrics import Metrics
        Metrics(lambda: {{}}, ("queued",)).observe_job(3.0, {RECORD!r})
    """)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", run], env=env, check=True, timeout=120)
    scrape = "from t2v.service.metrics import Metrics; print(Metrics(lambda: {'queued': 7}, ('queued',)).exposition()[0].decode())"
    out = subprocess.run([sys.executable, "-c", scrape], env=env, check=True, timeout=120, capture_output=True,
                         text=True).stdout
    got = samples(out)
    assert (got["t2v_generation_seconds_count"], got["t2v_generation_seconds_sum"]) == (2, 6.0)
    assert (got["t2v_step_seconds_count"], got["t2v_step_seconds_sum"]) == (8, 4.0)
    assert got["t2v_jobs{status=queued}"] == 7 and got["t2v_queue_depth"] == 7


def test_openmetrics_when_the_scraper_asks_for_it(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    body, content_type = Metrics(lambda: {}, STATUSES).exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    assert Metrics(lambda: {}, STATUSES).exposition(None)[1] == "text/plain; version=0.0.4; charset=utf-8"
