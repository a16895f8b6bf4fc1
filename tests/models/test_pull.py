"""`t2v models pull` against a hub stand-in on a loopback port (tests/hubserver.py; ``HF_ENDPOINT`` points
huggingface_hub at it): which files each model downloads, resuming a broken transfer and a killed pull, the
pulled model running offline, and the errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2v.models.download import RECORDS
from tests.tinymodels import make_tiny
from tests.hubserver import HubServer, start

REPO = "t2v-test/tiny-ms"
# What a real repo carries besides what t2v loads: .bin copies of the weights, a single-file checkpoint at the
# top, a model card, sample media.
EXTRA = {"unet/diffusion_pytorch_model.bin": b"\0" * 2048, "text_encoder/pytorch_model.bin": b"\0" * 1024,
         "tiny-ms.safetensors": b"\0" * 4096, "README.md": b"# tiny\n", ".gitattributes": b"*.bin filter=lfs\n",
         "samples/demo.mp4": b"\0" * 512}


@pytest.fixture(scope="module")
def tiny_ms(tmp_path_factory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("hub") / "tiny-ms", family="modelscope", seed=3)


@pytest.fixture
def hub(tiny_ms):
    hub = HubServer()
    hub.add(REPO, tiny_ms, EXTRA)
    server, thread = start(hub)
    try:
        yield hub
    finally:
        hub.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def t2v(home: Path, hub: HubServer | None, *args: str, offline: bool = False, wait: bool = True):
    env = {**os.environ, "T2V_HOME": str(home), "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DOWNLOAD_TIMEOUT": "30"}
    for var in ("HF_HUB_OFFLINE", "T2V_OFFLINE", "HF_TOKEN", "HF_HOME"):
        env.pop(var, None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    cmd = [sys.executable, "-m", "t2v", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def snapshot_of(home: Path, repo_id: str) -> Path:
    [folder] = (home / "models" / f"models--{repo_id.replace('/', '--')}" / "snapshots").iterdir()
    return folder


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def loaded_files(folder: Path, fp16: bool) -> set[str]:
    """What t2v loads of a tiny pipeline folder: configs, tokenizer files, each component's weights once."""
    out = set()
    for p in folder.rglob("*"):
        name = p.relative_to(folder).as_posix()
        if not p.is_file() or name.startswith("."):
            continue
        if name.endswith(".safetensors"):
            if (".fp16." in name) == fp16:
                out.add(name)
        elif name.endswith((".json", ".txt", ".model")) or name.startswith("tokenizer"):
            out.add(name)
    return out


def test_a_pull_fetches_the_fp16_weights_configs_and_tokenizers_and_nothing_else(hub, tiny_ms, tmp_path):
    home = tmp_path / "home"
    r = t2v(home, hub, "models", "pull", REPO)
    assert r.returncode == 0, r.stderr
    folder = snapshot_of(home, REPO)
    assert r.stdout.strip() == f"cached {REPO} at {folder}", "one line, the path whole (stdout is a pipe)"
    want = loaded_files(tiny_ms, fp16=True)
    assert any(".fp16.safetensors" in f for f in want) and any(f.startswith("tokenizer/") for f in want)
    assert sorted(hub.gets(REPO)) == sorted(want), "each wanted file fetched once, nothing else"
    assert files_in(folder) == {f: (tiny_ms / f).read_bytes() for f in want}
    assert folder.name == hub.repos[REPO].commit
    assert json.loads((home / "models" / RECORDS / "t2v-test--tiny-ms" / f"{folder.name}.json").read_text())[
        "files"] == sorted(want)

    # The pulled model runs with the network off, named by its hub id.
    out = tmp_path / "clip.mp4"
    r = t2v(home, None, "generate", "a red ball", "--model", REPO, "--frames", "4", "--width", "32",
            "--height", "32", "--steps", "2", "--seed", "1", "-o", str(out), offline=True)
    assert r.returncode == 0, r.stderr
    import av

    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)

    shown = t2v(home, None, "models", "show", REPO, "--json", offline=True)
    assert shown.returncode == 0, shown.stderr
    assert (json.loads(shown.stdout)["cached"], json.loads(shown.stdout)["family"]) == (True, "modelscope")

    # Pulling again fetches nothing: every file is there.
    before = len(hub.gets(REPO))
    assert t2v(home, hub, "models", "pull", REPO).returncode == 0
    assert len(hub.gets(REPO)) == before


def test_fp32_pulls_the_full_precision_weights(hub, tiny_ms, tmp_path):
    home = tmp_path / "home"
    r = t2v(home, hub, "models", "pull", REPO, "--fp32")
    assert r.returncode == 0, r.stderr
    want = loaded_files(tiny_ms, fp16=False)
    assert sorted(hub.gets(REPO)) == sorted(want)
    assert not any(".fp16." in f or f.endswith(".bin") for f in files_in(snapshot_of(home, REPO)))


def test_a_motion_adapter_pull_brings_its_base_model_and_the_adapters_own_files(tmp_path_factory, tmp_path):
    from t2v.models.hub.animatediff import BASE_MODEL

    adapter_id = "guoyww/animatediff-motion-adapter-v1-5-3"
    made = tmp_path_factory.mktemp("hub-ad")
    base = make_tiny(made / "sd", family="sd", seed=1)
    adapter = make_tiny(made / "adapter", family="animatediff-adapter", seed=1)
    hub = HubServer()
    hub.add(BASE_MODEL, base, {"v1-5-pruned.safetensors": b"\0" * 4096})
    hub.add(adapter_id, adapter, {"diffusion_pytorch_model.bin": b"\0" * 1024})
    server, thread = start(hub)
    try:
        home = tmp_path / "home"
        r = t2v(home, hub, "models", "pull", "animatediff")
        assert r.returncode == 0, r.stderr
        assert "licence of guoyww/animatediff-motion-adapter-v1-5-3: Apache-2.0" in " ".join(r.stderr.split())
        assert sorted(hub.gets(BASE_MODEL)) == sorted(loaded_files(base, fp16=True))
        # A single model's repo: its top-level config and weights (the fp16 ones), no .bin.
        assert sorted(hub.gets(adapter_id)) == sorted(loaded_files(adapter, fp16=True))
        assert any(f.endswith(".fp16.safetensors") and "/" not in f for f in hub.gets(adapter_id))
        shown = t2v(home, None, "models", "show", "animatediff", "--json", offline=True)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["cached"] is True
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_ltx2_pull_brings_the_latent_upsampler_and_the_stage_two_lora_and_no_other_checkpoint(tmp_path_factory,
                                                                                                  tmp_path):
    """The repo keeps single-file checkpoints beside the diffusers folders; the model's own top-level file (its
    distilled LoRA, for the two-stage path) comes down, the others do not."""
    from t2v.models.hub.ltx2 import STAGE_2_LORA

    repo = "Lightricks/LTX-2"
    tiny = make_tiny(tmp_path_factory.mktemp("hub-ltx2") / "ltx2", family="ltx2", seed=1)
    hub = HubServer()
    hub.add(repo, tiny, {STAGE_2_LORA: b"\0" * 2048, "ltx-2-19b-dev.safetensors": b"\0" * 4096,
                         "ltx-2-19b-distilled-lora-128.safetensors": b"\0" * 1024})
    server, thread = start(hub)
    try:
        r = t2v(tmp_path / "home", hub, "models", "pull", repo)
        assert r.returncode == 0, r.stderr
        got = set(hub.gets(repo))
        assert STAGE_2_LORA in got and {"latent_upsampler/config.json",
                                        "latent_upsampler/diffusion_pytorch_model.safetensors"} <= got
        assert not got & {"ltx-2-19b-dev.safetensors", "ltx-2-19b-distilled-lora-128.safetensors",
                          "distilled-lora.safetensors"}
        assert (snapshot_of(tmp_path / "home", repo) / STAGE_2_LORA).read_bytes() == b"\0" * 2048
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_transfer_cut_off_mid_file_resumes_from_where_it_stopped(tiny_ms, tmp_path):
    """huggingface_hub writes what it receives in 10 MiB blocks: a file cut off after 15 MiB is asked again from
    the end of the last whole block (a Range request), not from its start."""
    big = "unet/diffusion_pytorch_model.fp16.safetensors"
    data = os.urandom(24 << 20)  # a weight file of a size where resuming matters
    hub = HubServer()
    hub.add(REPO, tiny_ms, {big: data})
    hub.drop[big] = 15 << 20
    server, thread = start(hub)
    try:
        home = tmp_path / "home"
        r = t2v(home, hub, "models", "pull", REPO)
        assert r.returncode == 0, r.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    ranges = [q.range for q in hub.log if q.method == "GET" and q.path.endswith("/" + big)]
    assert len(ranges) == 2 and ranges[0] is None, ranges
    start_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start_at <= 15 << 20, "the second request asks for the rest only"
    assert (snapshot_of(home, REPO) / big).read_bytes() == data


def test_a_killed_pull_is_not_a_model_and_the_next_pull_fetches_only_what_is_missing(hub, tiny_ms, tmp_path):
    want = loaded_files(tiny_ms, fp16=True)
    held = "unet/diffusion_pytorch_model.fp16.safetensors"
    assert held in want
    hub.stall.add(held)
    home = tmp_path / "home"
    proc = t2v(home, hub, "models", "pull", REPO, wait=False)
    try:
        assert hub.stalled.wait(120), "the pull never asked for the held file"
        deadline = time.monotonic() + 60  # the other files finish meanwhile
        while set(hub.gets(REPO)) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(hub.gets(REPO)) == want
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    folder = snapshot_of(home, REPO)
    assert not (folder / held).exists() and (folder / "model_index.json").exists(), "killed with one file to go"

    # Offline, the half-fetched model is refused with the command that finishes it, and nothing is written.
    out = tmp_path / "clip.mp4"
    r = t2v(home, None, "generate", "a red ball", "--model", REPO, "--steps", "2", "-o", str(out), offline=True)
    assert r.returncode == 2, r.stderr
    assert "was interrupted" in r.stderr and f"t2v models pull {REPO}" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    shown = t2v(home, None, "models", "show", REPO, offline=True)
    assert shown.returncode == 2 and f"`t2v models pull {REPO}` fetches it" in " ".join(shown.stderr.split())

    # The next pull fetches the missing file only.
    hub.stall.clear()
    done = len(hub.gets(REPO))
    r = t2v(home, hub, "models", "pull", REPO)
    assert r.returncode == 0, r.stderr
    assert hub.gets(REPO)[done:] == [held]
    assert files_in(snapshot_of(home, REPO)) == {f: (tiny_ms / f).read_bytes() for f in want}


def test_an_unknown_repo_is_a_clear_error_that_leaves_nothing(hub, tmp_path):
    home = tmp_path / "home"
    r = t2v(home, hub, "models", "pull", "t2v-test/no-such-model")
    assert r.returncode == 2, (r.returncode, r.stderr)
    msg = " ".join(r.stderr.split())
    assert "t2v-test/no-such-model" in msg and "could not be downloaded" in msg and "Traceback" not in r.stderr
    assert not (home / "models" / "models--t2v-test--no-such-model" / "snapshots").exists()
    r = t2v(home, hub, "models", "pull", "not a hub id")
    assert r.returncode == 2 and "is not a hub id like org/name" in r.stderr
