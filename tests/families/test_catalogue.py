"""Every family from the command line: `t2v models make-tiny --family F` then `t2v generate --model DIR` (the
README's offline trial), the registry's entries (tasks the family can do, licences, notices), `t2v models
list` grouped by family, and the licence in records."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from t2v.cli import app

KINDS = ("ltx", "ltx2", "cogvideox", "cogvideox15", "hunyuan", "hunyuan15", "skyreels-v2-df", "animatediff", "kandinsky5", "anyflow",
         "sana-video", "helios")


def frame_count(path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("kind", KINDS)
def test_make_tiny_then_generate_from_the_cli(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    folder = tmp_path / kind
    r = CliRunner().invoke(app, ["models", "make-tiny", str(folder), "--family", kind])
    assert r.exit_code == 0, r.output
    out = tmp_path / "clip.mp4"
    r = CliRunner().invoke(app, ["generate", "a red fox in snow", "--model", str(folder), "--steps", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["family"] == json.loads((folder / "t2v.json").read_text())["family"]
    assert frame_count(out) == record["num_frames"]


def test_registry_entries_fit_their_families():
    from t2v.families import all_families
    from t2v.models.registry import REGISTRY
    from t2v.models.spec import TASKS

    families = all_families()
    for name in ("wan", "wan-animate", "ltx", "ltx2", "cogvideox", "hunyuan", "hunyuan15", "animatediff", "kandinsky5",
                 "anyflow", "sana-video", "helios"):
        assert any(s.family == name for s in REGISTRY.values()), f"no hub models for {name}"
    for spec in REGISTRY.values():
        fam = families[spec.family]
        assert spec.license and set(spec.tasks) <= set(TASKS), spec.id
        modes = {"t2v": "video", "i2v": "i2v", "image": "image", "flf": "i2v", "control": "video", "animate": "i2v"}
        assert {modes[t] for t in spec.tasks} <= set(fam.modes), f"{spec.id}: {spec.tasks} vs {fam.modes}"
        assert ("flf" not in spec.tasks or fam.takes_last_image(None)) and (
            "control" not in spec.tasks or fam.takes_control(None)), spec.id  # the family has the input
        assert {"width", "height", "num_frames", "fps", "num_inference_steps"} <= set(spec.defaults), spec.id
    hunyuan = [s for s in REGISTRY.values() if s.family in ("hunyuan", "hunyuan15")]
    assert all("European Union" in s.license_notice and "South Korea" in s.license_notice for s in hunyuan)
    ltx = {s.id: s.license for s in REGISTRY.values() if s.family == "ltx"}
    assert "OpenRAIL" in ltx["Lightricks/LTX-Video-0.9.5"] and "Open Weights" in ltx["Lightricks/LTX-Video-0.9.7-dev"]
    cog = {s.id: s.license for s in REGISTRY.values() if s.family == "cogvideox"}
    assert cog["zai-org/CogVideoX-2b"] == "Apache-2.0" and "CogVideoX" in cog["zai-org/CogVideoX-5b"]


def test_models_list_groups_by_family_and_marks_notices(tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    r = CliRunner().invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    order = [row["family"] for row in rows]
    assert order == sorted(order, key=order.index)  # each family's rows together
    assert {"tasks", "license", "license_notice", "vram_gb", "download_gb", "cached", "defaults"} <= set(rows[0])
    assert not any(row["cached"] for row in rows if not row["bundled"])  # nothing downloaded here
    r = CliRunner().invoke(app, ["models", "list", "--family", "hunyuan"])
    assert r.exit_code == 0 and "hunyuanvideo-community/HunyuanVideo" in r.output and "(!)" in r.output
    assert "Lightricks" not in r.output
    r = CliRunner().invoke(app, ["models", "list", "--family", "nope"])
    assert r.exit_code == 2 and "hunyuan" in r.stderr
    r = CliRunner().invoke(app, ["models", "show", "hunyuan", "--json"])
    shown = json.loads(r.output)
    assert "South Korea" in shown["license_notice"] and shown["tasks"] == ["t2v"]


def test_records_carry_the_licence(tmp_path):
    from t2v import generate
    from t2v.requests import GenerationRequest

    result = generate(GenerationRequest(prompt="a red circle", model="t2v-shapes", num_inference_steps=2, seed=1,
                                        formats=()), output=tmp_path / "x")
    assert result.record["license"] == "Apache-2.0"
