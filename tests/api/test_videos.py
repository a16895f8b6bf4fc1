"""Every /v1 route through TestClient, with real workers on the tiny model."""

from __future__ import annotations

import io
import json
import time

import av
import pytest

from fastapi.testclient import TestClient

from t2v.models.publicnames import public_model
from t2v.api import create_app
from tests.api.conftest import SMALL, make_settings, wait_for


def submit(client, **fields):
    return client.post("/v1/videos", json={"prompt": "a red circle moving right", **SMALL, **fields})


def test_submit_run_fetch_content_with_range_and_metadata(client):
    r = submit(client, seed=7, formats=["mp4", "webm", "gif"])
    assert r.status_code == 202, r.text
    job = r.json()
    # A free worker may claim it at once; either way the state shown is consistent.
    assert (job["status"], job["queue_position"]) in (("queued", 1), ("running", None))
    assert r.headers["location"].endswith(f"/v1/videos/{job['id']}")
    assert job["request"]["seed"] == 7 and job["request"]["num_frames"] == 4
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["fraction"] == 1.0 and done["progress"]["step"] == 2
    formats = {f["format"] for f in done["result"]["files"]}
    assert all(f["url"] for f in done["result"]["files"])
    assert {"mp4", "webm", "gif", "json"} <= formats
    content = client.get(f"/v1/videos/{job['id']}/content?format=mp4")
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(content.content)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 4 and frames[0].width == 32
    size = len(content.content)
    part = client.get(f"/v1/videos/{job['id']}/content", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 0-99/{size}" and part.content == content.content[:100]
    assert client.get(f"/v1/videos/{job['id']}/content?format=webm").headers["content-type"] == "video/webm"
    assert client.get(f"/v1/videos/{job['id']}/content?format=gif").headers["content-type"] == "image/gif"
    from PIL import Image

    service = client.app.state.service
    assert Image.open(service.image_path(job["id"], "poster.png")).size == (32, 32)
    meta = client.get(f"/v1/videos/{job['id']}/metadata").json()
    assert meta["seed"] == 7 and meta["prompt"] == "a red circle moving right" and meta["num_frames"] == 4


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "a", "width": 63}, "width"),
        ({"prompt": "a", "num_frames": 10000}, "num_frames"),
        ({"prompt": "a", "num_inference_steps": 0}, "num_inference_steps"),
        ({"prompt": "a", "guidance_scale": -1}, "guidance_scale"),
        ({"prompt": "a", "scheduler": "heun"}, "scheduler"),
        ({"prompt": "a", "formats": ["avi"]}, "formats"),
        ({"prompt": "a", "colour": "red"}, "colour"),
        ({"prompt": "a", "callback_url": "ftp://x"}, "callback_url"),
        ({"prompt": "a", "model": "nobody/nothing"}, "model"),
        ({}, "prompt"),
    ],
)
def test_validation_errors_are_422_naming_the_field(idle_client, body, field):
    r = idle_client.post("/v1/videos", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(field in [str(p) for p in d["loc"]] or field in str(d["loc"]) for d in detail), detail


def test_body_too_large_is_413(idle_client):
    r = idle_client.post("/v1/videos", content=json.dumps({"prompt": "a" * 100_000}),
                         headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_list_newest_first_with_cursor_and_filters(idle_client):
    ids = [submit(idle_client, prompt=f"clip number {i}").json()["id"] for i in range(5)]
    page1 = idle_client.get("/v1/videos?limit=2").json()
    page2 = idle_client.get(f"/v1/videos?limit=2&cursor={page1['next_cursor']}").json()
    page3 = idle_client.get(f"/v1/videos?limit=2&cursor={page2['next_cursor']}").json()
    seen = [j["id"] for j in page1["items"] + page2["items"] + page3["items"]]
    assert seen == ids[::-1] and page3["next_cursor"] is None
    assert [j["queue_position"] for j in page1["items"]] == [5, 4]
    assert len(idle_client.get("/v1/videos?status=queued").json()["items"]) == 5
    assert idle_client.get("/v1/videos?status=succeeded").json()["items"] == []
    assert [j["id"] for j in idle_client.get("/v1/videos?q=NUMBER 3").json()["items"]] == [ids[3]]
    bad = idle_client.get("/v1/videos?status=bogus")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]


@pytest.mark.parametrize("cursor", ["garbage", "0" * 25, "Z" * 26, "01ARZ3NDEKTSV4RRFFQ69G5FA!"])
def test_a_cursor_the_server_never_gave_is_422_not_an_empty_page(idle_client, cursor):
    submit(idle_client)
    r = idle_client.get("/v1/videos", params={"cursor": cursor})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"], r.text
    assert "next_cursor of the previous page" in r.text


def test_records_take_the_documented_limits(idle_client):
    for limit, status in ((1, 200), (300, 200), (500, 200), (501, 422), (0, 422)):
        r = idle_client.get("/v1/records", params={"limit": limit})
        assert r.status_code == status, (limit, r.text)
        if status == 422:
            assert r.json()["detail"][0]["loc"] == ["query", "limit"]


def test_idempotency_key_returns_the_same_job(idle_client):
    a = submit(idle_client, idempotency_key="abc")
    b = submit(idle_client, idempotency_key="abc", seed=99)
    assert a.status_code == 202 and b.status_code == 200 and a.json()["id"] == b.json()["id"]
    assert len(idle_client.get("/v1/videos").json()["items"]) == 1


def test_cancel_queued_and_unknown(idle_client):
    job = submit(idle_client).json()
    r = idle_client.delete(f"/v1/videos/{job['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert idle_client.get(f"/v1/videos/{job['id']}/content").status_code == 409
    assert idle_client.get("/v1/videos/NOPE").status_code == 404
    assert idle_client.delete("/v1/videos/NOPE").status_code == 404
    assert idle_client.get("/v1/videos/NOPE/events").status_code == 404


def test_cancel_running_job_stops_between_steps(client):
    job = submit(client, num_inference_steps=300).json()
    wait_for(client, job["id"], statuses=("running",))
    while client.get(f"/v1/videos/{job['id']}").json()["progress"]["step"] < 1:
        time.sleep(0.05)
    r = client.delete(f"/v1/videos/{job['id']}?purge=true")
    assert r.status_code == 200
    done = wait_for(client, job["id"])
    assert done["status"] == "cancelled" and done["progress"]["step"] < 300


def test_purge_removes_files(client, settings):
    job = submit(client).json()
    assert wait_for(client, job["id"])["status"] == "succeeded"
    assert (settings.videos_dir / job["id"]).is_dir()
    assert client.delete(f"/v1/videos/{job['id']}?purge=true").status_code == 200
    assert not (settings.videos_dir / job["id"]).exists()
    assert client.get(f"/v1/videos/{job['id']}/content").status_code == 404


def test_events_stream_progress_then_final_state(client):
    job = submit(client, num_inference_steps=4).json()
    events = []
    with client.stream("GET", f"/v1/videos/{job['id']}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:])))
    assert events[-1][0] == "succeeded" and events[-1][1]["status"] == "succeeded"
    assert any(e[1]["status"] == "running" for e in events)


def read_events(client, job_id, last_event_id=None):
    """[(id, event, data)] of one SSE connection (``Last-Event-ID`` sent when given)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    out, current = [], {}
    with client.stream("GET", f"/v1/videos/{job_id}/events", headers=headers) as r:
        for line in r.iter_lines():
            if not line:
                if current:
                    out.append((current.get("id"), current.get("event"), json.loads(current["data"])))
                current = {}
            else:
                name, _, value = line.partition(":")
                current[name] = value.strip()
    return out


def test_events_have_ids_and_resume_after_last_event_id(client):
    job = submit(client, num_inference_steps=3).json()
    first = read_events(client, job["id"])
    ids = [i for i, _, _ in first]
    assert all(ids) and len(set(ids)) == len(ids) and first[-1][1] == "succeeded"
    assert ids[-1].startswith("succeeded.")
    assert read_events(client, job["id"], last_event_id=ids[-1]) == []  # nothing new since the last one seen
    again = read_events(client, job["id"], last_event_id="running.denoise.1.-")  # seen step 1: the final state
    assert [e for _, e, _ in again] == ["succeeded"]


def test_preview_and_poster_routes(client):
    job = wait_for(client, submit(client).json()["id"])
    poster = client.get(f"/v1/videos/{job['id']}/poster")
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/png"
    assert poster.headers["cache-control"].startswith("private") and poster.headers.get("etag")
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(poster.content)).size == (job["request"]["width"], job["request"]["height"])
    assert client.get("/v1/videos/01NOSUCHJ0B000000000000000/poster").status_code == 404


def test_openapi_describes_the_responses(client):
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/v1/videos/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/Job")
    job = spec["components"]["schemas"]["Job"]
    assert {"id", "status", "progress", "request", "result", "links"} <= set(job["properties"])
    page = spec["paths"]["/v1/videos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert page["$ref"].endswith("/JobPage")
    models = spec["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert models["$ref"].endswith("/ModelList")


def test_models_health_ready_metrics(client):
    models = client.get("/v1/models").json()
    assert "damo-vilab/text-to-video-ms-1.7b" in {m["id"] for m in models["items"]}
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["workers_alive"] == 1
    job = submit(client).json()
    wait_for(client, job["id"])
    text = client.get("/metrics").text
    assert 't2v_jobs{status="succeeded"} 1' in text and "t2v_queue_depth 0" in text
    assert "t2v_generation_seconds_count 1" in text and "t2v_step_seconds_count 2" in text


def test_a_job_is_counted_in_the_metrics_before_it_reads_succeeded(client, monkeypatch):
    """A client that sees its job succeeded and then scrapes /metrics finds the job's run there: the worker counts
    it before the job's row changes (it counted after, so a quick scrape could miss it)."""
    service = client.app.state.service
    scraped = []
    real = type(service.repo).finish_job

    def finish_job(repo, *args, **kwargs):
        scraped.append(service.metrics.exposition()[0].decode())  # what a scrape reads just before the change
        return real(repo, *args, **kwargs)

    monkeypatch.setattr(type(service.repo), "finish_job", finish_job)
    wait_for(client, submit(client).json()["id"])
    assert len(scraped) == 1
    assert "t2v_generation_seconds_count 1" in scraped[0] and "t2v_step_seconds_count 2" in scraped[0], scraped[0]


def test_readyz_503_without_workers(idle_client):
    assert idle_client.get("/readyz").status_code == 503


def test_openapi_documents_every_route(idle_client):
    spec = idle_client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/videos", "/v1/videos/{job_id}", "/v1/videos/{job_id}/content", "/v1/videos/{job_id}/metadata",
            "/v1/videos/{job_id}/events", "/v1/models", "/healthz", "/readyz", "/metrics"} <= paths
    assert idle_client.get("/docs").status_code == 200


def test_service_delete_removes_row_and_files(client, settings):
    from t2v.errors import JobNotFound

    service = client.app.state.service
    job = submit(client).json()
    wait_for(client, job["id"])
    service.delete(job["id"])
    assert service.repo.get_job(job["id"]) is None and not (settings.videos_dir / job["id"]).exists()
    with pytest.raises(JobNotFound):
        service.delete(job["id"])


def test_warm_loads_the_model_before_the_first_job(client, settings):
    service = client.app.state.service
    service.warm(settings.default_model)
    deadline = time.time() + 60
    while not (state := client.get("/readyz").json())["warm"]["done"] and time.time() < deadline:
        time.sleep(0.05)
    assert state["ready"] and state["warm"]["error"] is None
    assert public_model(settings, settings.default_model) in {m["model"] for m in state["models_loaded"]}
    assert str(settings.default_model) not in json.dumps(state)  # the folder by its name, not its path
    service.warm("no/such-model")
    while not client.get("/readyz").json()["warm"]["done"]:
        time.sleep(0.05)
    assert "no/such-model" in client.get("/readyz").json()["warm"]["error"]


def test_the_worker_writes_an_eta_from_the_start_of_denoising_and_while_decoding(client, monkeypatch):
    """What the API's progress.eta_s is made from: the worker writes the run's ETA when denoising starts (the
    predicted times: nothing measured yet) and when the decode starts (its predicted time)."""
    repo = client.app.state.service.repo
    written, update = [], repo.update_progress

    def recording(job_id, worker_id, **progress):
        written.append(progress)
        return update(job_id, worker_id, **progress)

    monkeypatch.setattr(repo, "update_progress", recording)
    job = submit(client, seed=3).json()
    assert wait_for(client, job["id"])["status"] == "succeeded"
    first = next(p for p in written if p["stage"] == "denoise")
    assert first["step"] == 0 and first["total"] == SMALL["num_inference_steps"]
    assert first["eta_s"] is not None and first["eta_s"] > 0
    decode = next(p for p in written if p["stage"] == "decode")
    assert decode["eta_s"] is not None and decode["eta_s"] > 0
    assert all(p["eta_s"] is None for p in written if p["stage"] in ("load", "encode_prompt", "export"))


@pytest.mark.parametrize("damage, message", [
    ("unet_not_json", "unet/config.json is not valid JSON"),
    ("vae_no_config", "vae has no config.json"),
    ("unet_wrong_type", "its component configs do not make a modelscope model"),
])
def test_a_model_folder_with_a_broken_component_config_is_422_and_exit_2(tiny_model, tmp_path, damage, message):
    """Broken configs are the folder's problem, said as such: 422 from the API (it was 500), exit 2 from the CLI."""
    import shutil

    from typer.testing import CliRunner

    from t2v.cli import app as cli_app

    folder = tmp_path / "models" / "broken"
    shutil.copytree(tiny_model, folder)
    if damage == "unet_not_json":
        (folder / "unet" / "config.json").write_text("{")
    elif damage == "vae_no_config":
        (folder / "vae" / "config.json").unlink()
    else:
        config = json.loads((folder / "unet" / "config.json").read_text())
        (folder / "unet" / "config.json").write_text(json.dumps({**config, "block_out_channels": "abc"}))
    settings = make_settings(tmp_path / "home", tiny_model, model_roots=str(tmp_path / "models"))
    with TestClient(create_app(settings, start_workers=False)) as client:
        r = client.post("/v1/videos", json={"prompt": "a cat", "model": str(folder)})
        # A folder the model check refuses gets the allow-list's one answer (it says nothing about paths); a
        # config that passes it but does not build a model is named.
        api_message = message if damage == "unet_wrong_type" else "this model is not available on this server"
        assert r.status_code == 422 and api_message in r.text, r.text
        assert client.get("/v1/videos").json()["items"] == []
    result = CliRunner().invoke(cli_app, ["plan", "a cat", "--model", str(folder)],
                                env={"T2V_HOME": str(tmp_path / "cli-home")})
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_nan_or_infinity_in_a_number_field_is_422_finite(idle_client):
    for body in ('{"prompt": "a cat", "guidance_scale": NaN}', '{"prompt": "a cat", "fps": Infinity}'):
        r = idle_client.post("/v1/videos", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "finite number" in r.text, r.text


def test_a_compiling_server_compiles_the_default_shape_while_warming(tmp_path, monkeypatch):
    """``T2V_COMPILE=1``: the warm-up runs the default request once (2 steps, no files), so the compiled
    blocks exist before the first job, which then compiles nothing (no ``compile`` stage in its record). A tiny
    Wan: its repeated blocks compile as one graph."""
    from t2v.sampling import accel
    from tests.api.conftest import make_settings
    from tests.tinymodels import make_tiny_model

    monkeypatch.setattr(accel, "COMPILE_BACKEND", "eager")  # dynamo's graphs, run as captured: no C++ build
    settings = make_settings(tmp_path / "home", make_tiny_model("wan", tmp_path / "wan"), compile=True)
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        service.warm(settings.default_model)
        deadline = time.time() + 120
        while not (state := client.get("/readyz").json())["warm"]["done"] and time.time() < deadline:
            time.sleep(0.05)
        warm = service.warm_state
        assert state["ready"] and warm["error"] is None and "compile_error" not in warm, warm
        assert warm["compile_s"] > 0 and accel.compiled_count() == 1
        assert not any(settings.videos_dir.rglob("*.mp4"))  # the warm-up wrote nothing
        job = client.post("/v1/videos", json={"prompt": "a red circle moving right", "seed": 2}).json()
        assert wait_for(client, job["id"])["status"] == "succeeded"
        record = client.get(f"/v1/videos/{job['id']}/metadata").json()
        assert record["compile"] is True and "compile_s" not in record["timings"], record["timings"]
        assert accel.compiled_count() == 1
