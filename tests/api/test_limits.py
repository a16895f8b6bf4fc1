"""Submit-time limits: requests that cannot fit in memory, cost limits, and the model / LoRA allow-lists."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.models.registry import lookup
from t2v.service.keys import create_key
from tests.api.conftest import SMALL, make_settings, wait_for

# The example: about 2 TB predicted for the tiny model on the CPU, on a machine with 24 GiB.
HUGE = {"num_frames": 512, "width": 2048, "height": 2048, "num_inference_steps": 500}
SHAPES_FOLDER = lookup("t2v-shapes").bundled_path  # a real model folder, outside the model roots


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def jobs(client) -> int:
    return client.app.state.service.repo.count_jobs()


def detail(r) -> tuple[str, str]:
    (error,) = r.json()["detail"]
    return error["loc"][-1], error["msg"]


# -- requests that cannot fit ------------------------------------------------------------------------------

def test_request_that_cannot_fit_is_refused_at_submit(idle_client):
    r = idle_client.post("/v1/videos", json={"prompt": "a cat", **HUGE})
    assert r.status_code == 422, r.text
    field, msg = detail(r)
    assert field == "num_frames"
    assert msg.startswith("num_frames, width, height: 512 frames of 2048x2048 need about ")
    predicted = float(re.search(r"need about ([\d,.]+) GiB", msg).group(1).replace(",", ""))
    budget = float(re.search(r"memory budget of ([\d,.]+) GiB", msg).group(1).replace(",", ""))
    assert predicted > 1000 > budget  # the tiny model at this size: about 2 TB, on this machine's free memory
    assert "leanest memory plan (low)" in msg
    assert jobs(idle_client) == 0  # refused before any row was written
    assert idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL}).status_code == 202


def test_a_fitting_request_still_runs(client):
    r = client.post("/v1/videos", json={"prompt": "a cat", **SMALL})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"])
    assert job["status"] == "succeeded", job


def test_refusal_gives_the_largest_frame_count_that_fits(tiny_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, memory_budget_gb=20)
    with TestClient(create_app(settings, start_workers=False)) as client:
        body = {"prompt": "a cat", **HUGE, "num_inference_steps": 1}
        r = client.post("/v1/videos", json=body)
        assert r.status_code == 422
        _, msg = detail(r)
        assert "memory budget of 20.0 GiB" in msg
        most = int(re.search(r"at 2048x2048 at most (\d+) frames? fit", msg).group(1))
        w, h = map(int, re.search(r"at 512 frames at most (\d+)x(\d+)", msg).groups())
        assert 1 <= most < 512 and 16 <= w == h < 2048
        assert client.post("/v1/videos", json={**body, "num_frames": most}).status_code == 202
        assert client.post("/v1/videos", json={**body, "num_frames": most + 1}).status_code == 422
        assert client.post("/v1/videos", json={**body, "width": w, "height": h}).status_code == 202
        assert client.post("/v1/videos", json={**body, "width": w + 8, "height": h + 8}).status_code == 422
        assert jobs(client) == 2


# -- cost limits ---------------------------------------------------------------------------------------------

SMALL_COST = SMALL["num_frames"] * SMALL["width"] * SMALL["height"] * SMALL["num_inference_steps"]  # 8192


def test_server_wide_and_per_key_cost_limits(tiny_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, max_cost=SMALL_COST)
    app = create_app(settings, start_workers=False)
    repo = app.state.service.repo
    _, low = create_key(repo.keys, "low", max_cost=SMALL_COST // 2)
    _, plain = create_key(repo.keys, "plain")
    with TestClient(app) as client:
        ok = {"prompt": "a cat", **SMALL}
        # A key without a limit of its own: the server's applies.
        assert client.post("/v1/videos", json=ok, headers=bearer(plain)).status_code == 202
        r = client.post("/v1/videos", json={**ok, "num_inference_steps": 3}, headers=bearer(plain))
        assert r.status_code == 422
        field, msg = detail(r)
        assert field == "num_frames"
        assert msg.startswith("num_frames, width, height, num_inference_steps: the cost 4 x 32 x 32 x 3 = 12,288")
        assert "over this server's limit of 8,192" in msg and "at most num_frames=2" in msg
        # A key with a lower limit: its own.
        r = client.post("/v1/videos", json=ok, headers=bearer(low))
        assert r.status_code == 422
        assert "over this API key's limit of 4,096" in detail(r)[1] and "at most num_frames=2" in detail(r)[1]
        assert client.post("/v1/videos", json={**ok, "num_frames": 2}, headers=bearer(low)).status_code == 202
        assert jobs(client) == 2


def test_image_requests_cost_count_x_pixels_x_steps(tiny_sd_model, tiny_model, tmp_path):
    from t2v.errors import InvalidRequest
    from t2v.service import build_services

    service = build_services(make_settings(tmp_path / "home", tiny_model, max_cost=3 * 32 * 32 * 2))  # image mode: web UI only
    fields = {"mode": "image", "prompt": "a cat", "model": str(tiny_sd_model), "width": 32, "height": 32,
              "num_inference_steps": 2}
    assert service.submit({**fields, "count": 3})[1]
    with pytest.raises(InvalidRequest, match=r"^count, width, height, num_inference_steps: .* at most count=3$") as e:
        service.submit({**fields, "count": 4})
    assert e.value.field == "count" and service.repo.count_jobs() == 1
    service.engine.dispose()


# -- model and LoRA allow-lists ------------------------------------------------------------------------------

def _adapter(folder: Path) -> Path:
    """A folder check_lora accepts (the job is never run: the app's workers do not start)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def outside():
    """A folder outside the model roots (the pytest base temp dir): /tmp itself."""
    base = Path(os.environ["T2V_MODEL_ROOTS"]).resolve()
    with tempfile.TemporaryDirectory(prefix="t2v-outside-") as d:
        path = Path(d).resolve()
        assert base not in path.parents
        yield path


def _escape(root: Path, target: Path) -> str:
    """A path that starts inside ``root`` and climbs out to ``target`` with ``..``."""
    return str(root) + "/.." * len(root.parts) + str(target)


def test_models_outside_the_allow_list_get_one_uniform_answer(idle_client, tmp_path, outside):
    real_model_outside = outside / "model"
    shutil.copytree(SHAPES_FOLDER, real_model_outside)
    (tmp_path / "link").symlink_to(real_model_outside)
    (tmp_path / "link-to-etc").symlink_to("/etc")
    (tmp_path / "not-a-model").mkdir()
    refused = {
        "/etc": "/etc",
        "a file": "/etc/passwd",
        "~root": "~root",
        "a folder outside the roots": str(Path(__file__).parent),
        "a missing path outside": "/nonexistent/model",
        "a missing path inside": str(tmp_path / "missing"),
        "a folder inside that is not a model": str(tmp_path / "not-a-model"),
        "a model folder outside the roots": str(real_model_outside),
        "the bundled model by path": str(SHAPES_FOLDER),
        "a ../ escape to a model": _escape(tmp_path, real_model_outside),
        "a ../ escape to /etc": _escape(tmp_path, Path("/etc")),
        "a symlink in a root to a model outside": str(tmp_path / "link"),
        "a symlink in a root to /etc": str(tmp_path / "link-to-etc"),
        "a hub id that is not cached": "someone/some-model",
        "a relative path": "../../../etc",
    }
    bodies = {}
    for what, model in refused.items():
        r = idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "model": model})
        assert r.status_code == 422, (what, r.text)
        bodies[what] = r.json()
    first = bodies["/etc"]
    assert all(body == first for body in bodies.values()), bodies
    assert first["detail"][0]["loc"] == ["body", "model"] and "T2V_MODEL_ROOTS" in first["detail"][0]["msg"]
    assert jobs(idle_client) == 0


def test_models_under_the_roots_registered_and_default_are_accepted(idle_client, tiny_model, tmp_path):
    inside_link = tmp_path / "alias"
    inside_link.symlink_to(tiny_model)  # a symlink that stays inside the roots
    for model in (str(tiny_model), str(inside_link), "t2v-shapes", "shapes", None):
        body = {"prompt": "a cat", **SMALL, **({"model": model} if model else {})}
        r = idle_client.post("/v1/videos", json=body)
        assert r.status_code == 202, (model, r.text)


def test_lora_outside_the_roots_gets_one_uniform_answer(idle_client, tmp_path, outside):
    adapter_outside = _adapter(outside / "adapter")
    (tmp_path / "adapter-link").symlink_to(adapter_outside)
    (tmp_path / "empty").mkdir()
    bodies = []
    for lora in ("/etc", "/etc/passwd", str(adapter_outside), str(tmp_path / "adapter-link"), str(tmp_path / "missing"),
                 str(tmp_path / "empty"), _escape(tmp_path, adapter_outside)):
        r = idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "lora": lora})
        assert r.status_code == 422, (lora, r.text)
        bodies.append(r.json())
    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0]["detail"][0]["loc"] == ["body", "loras", "0", "path"]
    inside = _adapter(tmp_path / "adapter")
    assert idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "lora": str(inside)}).status_code == 202
    assert jobs(idle_client) == 1
    # the stacked form: the second adapter, outside the roots, gets the same answer naming its place in the list
    r = idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL,
                                             "loras": [{"path": str(inside), "scale": 0.5}, {"id": str(adapter_outside)}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "loras", "1", "path"], r.text
    assert jobs(idle_client) == 1


class _Hub(BaseHTTPRequestHandler):
    """A stand-in hub endpoint on loopback that records every request and has no models."""

    seen: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append(self.path)
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "Repository not found"}')

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch):
    """Online mode, with the hub's endpoint pointed at a local recorder: any download attempt shows up there."""
    import huggingface_hub.constants as hf

    server = HTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hub.seen = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("T2V_OFFLINE", "0")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield _Hub.seen
    server.shutdown()


def test_a_hub_id_that_is_not_cached_is_refused_without_a_download(hub, tiny_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, offline=False)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "model": "someone/some-model"})
        assert r.status_code == 422 and "T2V_MODEL_ROOTS" in detail(r)[1]
        # A registered model not downloaded yet: named (the registry is public), still not downloaded.
        r = client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "model": "zeroscope"})
        assert r.status_code == 422 and "`t2v models pull cerspense/zeroscope_v2_576w`" in detail(r)[1]
        assert jobs(client) == 0
    assert hub == []  # nothing asked the hub
    # The control: with downloads allowed, the same request is queued and its job does try the hub.
    allowed = make_settings(tmp_path / "home2", tiny_model, offline=False, allow_downloads=True)
    with TestClient(create_app(allowed)) as client:
        r = client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "model": "someone/some-model"})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
    assert job["status"] == "failed" and "someone/some-model" in job["error"]
    assert any("someone/some-model" in path for path in hub), hub


def test_weight_files_outside_the_roots_get_one_uniform_answer(idle_client, tmp_path, outside):
    """``transformer`` / ``transformer_2`` / ``vae`` files: only under the model roots, checked against the model."""
    from diffusers import WanTransformer3DModel

    from t2v.models.tiny.singlefile import wan_original, write_safetensors
    from tests.tinymodels import make_tiny_model

    wan = make_tiny_model("wan", tmp_path / "wan")
    state = wan_original(WanTransformer3DModel.from_pretrained(wan, subfolder="transformer").state_dict())
    file_outside = write_safetensors(state, outside / "wan.safetensors")
    inside = write_safetensors(state, tmp_path / "wan.safetensors")
    (tmp_path / "file-link.safetensors").symlink_to(file_outside)
    bodies = []
    for file in ("/etc/passwd", str(file_outside), str(tmp_path / "file-link.safetensors"), str(tmp_path / "missing.gguf"),
                 _escape(tmp_path, file_outside), str(wan / "transformer" / "config.json")):
        r = idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "num_frames": 5, "model": str(wan), "transformer": file})
        assert r.status_code == 422, (file, r.text)
        bodies.append(r.json())
    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0]["detail"][0]["loc"] == ["body", "transformer"] and "T2V_MODEL_ROOTS" in bodies[0]["detail"][0]["msg"]
    assert jobs(idle_client) == 0
    # inside the roots: checked against the model's component (a VAE slot refuses a transformer's weights)
    r = idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "num_frames": 5, "model": str(wan), "vae": str(inside)})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "vae"], r.text
    assert "not a AutoencoderKLWan (vae) of this model" in r.json()["detail"][0]["msg"]
    r = idle_client.post("/v1/videos", json={"prompt": "a cat", **SMALL, "num_frames": 5, "model": str(wan), "transformer": str(inside)})
    assert r.status_code == 202, r.text
    assert jobs(idle_client) == 1
