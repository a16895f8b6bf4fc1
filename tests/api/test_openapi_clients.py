"""Clients generated from the two OpenAPI documents work: openapi-python-client (in its own virtualenv, away from
t2v's dependencies) writes a client from each document a real ``t2v serve`` publishes, and each client makes one
video on the tiny model, reading the job, its typed answers and its MP4 through the generated code only.

Adds about half a minute: the generator is installed into a virtual environment of its own (tests/venvs.py), and
each generated client makes a video."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import SMALL
from tests.venvs import clean_env, install, new_venv
from tests.web import HTTP

GENERATOR = "openapi-python-client>=0.21,<1"

#: Run in the generator's virtualenv with the generated packages on its path: ARGV: base URL, SMALL as JSON.
SCRIPT = '''
import builtins, json, sys, time
import t2v_api, openai_api
# openapi-python-client (0.29) writes `body: A | B | Unset` for a route with a JSON and a multipart body without
# importing Unset into that module: its type is given to the modules here as a builtin.
from t2v_api.types import Unset
builtins.Unset = Unset
from t2v_api.api.videos import create_video_v1_videos_post as t2v_create, get_video_v1_videos_job_id_get as t2v_get
from t2v_api.api.videos import get_content_v1_videos_job_id_content_get as t2v_content
from t2v_api.models import VideoCreate, Job
from openai_api.api.videos_open_ai_style import create_video_videos_post as oa_create
from openai_api.api.videos_open_ai_style import get_video_videos_video_id_get as oa_get
from openai_api.api.videos_open_ai_style import get_content_videos_video_id_content_get as oa_content
from openai_api.api.videos_open_ai_style import list_videos_videos_get as oa_list
from openai_api.models import CreateVideoBody, ErrorResponse, Video, VideoList

base, small = sys.argv[1], json.loads(sys.argv[2])
seen = {}

def status(obj):
    return getattr(obj.status, "value", obj.status)

def until(read, done, what):
    deadline = time.time() + 180
    while time.time() < deadline:
        obj = read()
        if status(obj) in done:
            return obj
        time.sleep(0.2)
    raise SystemExit(f"{what}: still {status(obj)}")

with t2v_api.Client(base_url=base, timeout=60) as client:
    job = t2v_create.sync(client=client, body=VideoCreate.from_dict({"prompt": "a red square", "seed": 3, **small}))
    assert isinstance(job, Job), job
    job = until(lambda: t2v_get.sync(job.id, client=client), ("succeeded", "failed", "cancelled"), job.id)
    seen["t2v"] = {"status": status(job), "mp4": t2v_content.sync_detailed(job.id, client=client).content[4:8].decode()}

with openai_api.Client(base_url=base + "/openai/v1", timeout=60) as client:
    body = CreateVideoBody.from_dict({"prompt": "a blue square", "seed": 4, "size": "32x32", "num_frames": 4,
                                      "num_inference_steps": 2})
    video = oa_create.sync(client=client, body=body)
    assert isinstance(video, Video), video
    video = until(lambda: oa_get.sync(video.id, client=client), ("completed", "failed"), video.id)
    content = oa_content.sync_detailed(video.id, client=client)
    listed = oa_list.sync(client=client, limit=100)
    refused = oa_create.sync(client=client, body=CreateVideoBody.from_dict({"prompt": "x", "size": "250x250"}))
    seen["openai"] = {"status": status(video), "size": video.size, "mp4": content.content[4:8].decode(),
                      "media": content.headers["content-type"], "listed": isinstance(listed, VideoList)
                      and video.id in [v.id for v in listed.data],
                      "refused": [type(refused).__name__, refused.error.param, refused.error.type_]}
print(json.dumps(seen))
'''


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """The generator's own virtualenv (its python)."""
    venv = tmp_path_factory.mktemp("openapi-venv") / "venv"
    python = new_venv(venv)
    install(python, GENERATOR, cwd=venv.parent)
    return python


def generate(python: Path, document: dict, name: str, out: Path) -> Path:
    """A client package ``name`` generated from ``document`` under ``out``."""
    path = out / f"{name}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    config = out / f"{name}.yaml"
    config.write_text(f"package_name_override: {name}\n", encoding="utf-8")
    done = subprocess.run([str(python), "-m", "openapi_python_client", "generate", "--path", str(path), "--meta",
                           "none", "--config", str(config), "--output-path", str(out / name)],
                          env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / name / "client.py").is_file(), done.stdout[-2000:]
    return out / name


@pytest.mark.slow
def test_clients_generated_from_both_documents_make_a_video(generator, real_server, tmp_path):
    out = tmp_path / "clients"
    out.mkdir()
    for url, name in (("/openapi.json", "t2v_api"), ("/openai/v1/openapi.json", "openai_api")):
        generate(generator, HTTP.get(real_server.url + url, timeout=30).raise_for_status().json(), name, out)
    script = tmp_path / "use.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run([str(generator), str(script), real_server.url, json.dumps(SMALL)], cwd=out,
                          env={**clean_env(), "PYTHONPATH": str(out)}, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["t2v"] == {"status": "succeeded", "mp4": "ftyp"}, seen
    assert seen["openai"]["status"] == "completed" and seen["openai"]["size"] == "32x32", seen
    assert seen["openai"]["mp4"] == "ftyp" and seen["openai"]["media"] == "video/mp4", seen
    assert seen["openai"]["listed"], seen
    assert seen["openai"]["refused"] == ["ErrorResponse", "size", "invalid_request_error"], seen
