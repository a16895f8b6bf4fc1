"""The t2v-client distribution (clients/python) on its own: it imports neither torch nor t2v, installs into a fresh
virtualenv with only its own dependencies and talks to a real ``t2v serve`` from there; t2v.client raises t2v's
errors through it; and the t2v wheel ships it, requiring what it needs."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

import t2v_client
from t2v import client as t2v_glue
from t2v import errors as lib_errors
from tests.client.conftest import SMALL
from tests.venvs import build_wheel, clean_env, install, installed, new_venv

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
NOT_THERE = ("torch", "diffusers", "transformers", "numpy", "t2v")
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


def test_the_package_imports_only_its_own_dependencies():
    allowed = {"t2v_client", "httpx", "httpx_sse", "pydantic", "__future__"} | set(sys.stdlib_module_names)
    files = sorted((CLIENT / "t2v_client").glob("*.py"))
    assert len(files) >= 6, files
    foreign = {}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = list(ast.walk(tree))
        roots = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
        roots |= {(n.module or "").split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom) and not n.level}
        if roots - allowed:
            foreign[path.name] = sorted(roots - allowed)
    assert not foreign, f"t2v_client may import only httpx, httpx_sse, pydantic and the standard library: {foreign}"


def test_importing_it_imports_no_torch_and_no_t2v(tmp_path):
    code = ("import json, sys, t2v_client; print(json.dumps({'file': t2v_client.__file__, "
            f"'loaded': [m for m in {NOT_THERE!r} if m in sys.modules]}}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["loaded"] == [], seen
    assert Path(seen["file"]).resolve() == CLIENT / "t2v_client" / "__init__.py"


def answering(status: int, body: dict):
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


def test_t2v_client_raises_its_own_errors_and_t2v_client_raises_t2vs():
    invalid = {"detail": [{"loc": ["body", "num_frames"], "msg": "Input should be greater than or equal to 1"}]}
    with t2v_client.Client("http://t2v.test", transport=answering(422, invalid)) as plain:
        with pytest.raises(t2v_client.InvalidRequest) as e:
            plain.submit("x", num_frames=0)
    assert e.value.field == "num_frames" and e.value.status == 422
    assert not isinstance(e.value, lib_errors.T2VError)  # the standalone client knows nothing of t2v
    with t2v_glue.Client("http://t2v.test", transport=answering(422, invalid)) as glued:
        with pytest.raises(lib_errors.InvalidRequest) as e:
            glued.submit("x", num_frames=0)
    assert isinstance(e.value, t2v_glue.InvalidRequest) and isinstance(e.value, t2v_client.InvalidRequest)
    assert e.value.field == "num_frames" and e.value.exit_code == 2
    for status, lib_error in ((404, lib_errors.JobNotFound), (429, lib_errors.QuotaExceeded)):
        with t2v_glue.Client("http://t2v.test", retries=0, transport=answering(status, {"detail": "no"})) as glued:
            with pytest.raises(lib_error) as e:
                glued.get("j1")
        assert isinstance(e.value, t2v_client.APIError) and e.value.status == status


def test_the_event_stream_is_read_by_the_sse_rules():
    """CRLF line ends, comments and a lone ``retry:`` make no event; an ``error`` event without an ``id:`` after
    a progress event (it carries that event's id, by the SSE rules) is still delivered, and ends the stream."""
    job = {"id": "j1", "status": "running", "progress": {"stage": "denoise", "step": 1, "total": 2}}
    body = (": keep-alive\r\n\r\nretry: 1000\r\n\r\n"
            f"event: progress\r\nid: running.denoise.1.-\r\ndata: {json.dumps(job)}\r\n\r\n"
            'event: error\r\ndata: {"detail": "job deleted"}\r\n\r\n'
            f"event: progress\r\nid: never.read\r\ndata: {json.dumps(job)}\r\n\r\n")
    sse = httpx.MockTransport(lambda request: httpx.Response(200, content=body.encode(),
                                                             headers={"content-type": "text/event-stream"}))
    with t2v_client.Client("http://t2v.test", transport=sse) as c:
        events = list(c.events("j1"))
    assert [(e.event, e.final) for e in events] == [("progress", False), ("error", True)], events
    assert events[0].id == "running.denoise.1.-" and events[0].job.progress.step == 1
    assert events[1].job is None and events[1].data == {"detail": "job deleted"}


VENV_SCRIPT = """
import importlib.util, json, sys
import t2v_client
from t2v_client import Client, NotFound

url, key, out, fields = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
found = {name: importlib.util.find_spec(name) is not None for name in NOT_THERE}
with Client(url, key, timeout=30) as c:
    job = c.submit("a red ball bouncing", seed=5, **fields)
    events = [(e.event, e.job.status if e.job else None) for e in c.events(job.id, timeout=300)]
    done = c.wait(job.id, timeout=300)
    path = c.download(job.id, out)
    try:
        c.get("01NOSUCHJ0B000000000000000")
        missing = None
    except NotFound as e:
        missing = e.status
print(json.dumps({"found": found, "events": events, "status": done.status, "sha256": done.file("mp4").sha256,
                  "frames": done.request["num_frames"], "path": str(path), "missing": missing,
                  "version": t2v_client.__version__}))
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv holding ``pip install clients/python`` (from a copy: the build writes into its source)."""
    base = tmp_path_factory.mktemp("client-venv")
    source = base / "t2v-client"
    shutil.copytree(CLIENT, source, ignore=COPY_IGNORE)
    python = new_venv(base / "venv")
    install(python, str(source), cwd=base)
    return python


@pytest.mark.slow
def test_a_fresh_venv_with_only_the_client_talks_to_a_real_server(client_venv, server, tmp_path):
    import av

    names = installed(client_venv)
    assert {"t2v-client", "httpx", "httpx-sse", "pydantic"} <= names, names
    assert not names & {"torch", "diffusers", "transformers", "numpy", "t2v", "fastapi"}, names

    script = tmp_path / "use_client.py"
    script.write_text(f"NOT_THERE = {NOT_THERE!r}\n" + VENV_SCRIPT, encoding="utf-8")
    out = tmp_path / "clip.mp4"
    done = subprocess.run([str(client_venv), str(script), server.url, server.key, str(out), json.dumps(SMALL)],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["found"] == {name: False for name in NOT_THERE}, seen["found"]
    assert seen["status"] == "succeeded" and seen["missing"] == 404
    events = seen["events"]
    assert events[-1] == ["succeeded", "succeeded"] and all(e == "progress" for e, _ in events[:-1]), events
    assert hashlib.sha256(out.read_bytes()).hexdigest() == seen["sha256"]
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == seen["frames"] == SMALL["num_frames"]


@pytest.mark.slow
def test_the_t2v_wheel_ships_the_client_and_requires_its_dependencies(tmp_path):
    tree = tmp_path / "t2v"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=COPY_IGNORE)
    shutil.copytree(CLIENT, tree / "clients" / "python", ignore=COPY_IGNORE)
    wheel = build_wheel(tree, tmp_path / "dist")
    assert wheel.name.startswith("t2v-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    shipped = {p.name for p in (CLIENT / "t2v_client").iterdir() if p.suffix in (".py", ".typed")}
    assert {f"t2v_client/{n}" for n in shipped} <= names
    assert {"t2v/client/__init__.py", "t2v/client/errors.py", "t2v/contract.py"} <= names
    assert not any(n.startswith(("clients/", "src/")) for n in names)
    required = {re.split(r"[\s<>=!~\[;(]", line.partition(":")[2].strip())[0].lower().replace("_", "-")
                for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    own = tomllib.loads((CLIENT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    needed = {re.split(r"[\s<>=!~\[;(]", d)[0].lower().replace("_", "-") for d in own}
    assert needed == {"httpx", "httpx-sse", "pydantic"}, needed  # the client's dependencies, and only these
    assert needed <= required, f"t2v ships t2v_client, so it must require {sorted(needed - required)} too"
