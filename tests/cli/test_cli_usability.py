"""What a newcomer meets first: `t2v --help`'s order, `t2v models list` at any terminal width, `t2v models show`
in words, `--json` for scripts, and generate taking every option `t2v post` has."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.export import decode_video, read_embedded
from t2v.models.registry import REGISTRY

from tests import forkserver

runner = CliRunner()
WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
MODELSCOPE = "damo-vilab/text-to-video-ms-1.7b"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
ZEROSCOPE = "cerspense/zeroscope_v2_576w"


def run(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def t2v(*args, columns: int | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `t2v` program as a shell runs it, its output not a terminal (tests/forkserver.py)."""
    full = {**os.environ, **(env or {})}
    full.pop("COLUMNS", None)
    if columns is not None:
        full["COLUMNS"] = str(columns)
    return forkserver.run_t2v(args, env=full, fresh=columns is not None)  # (a width: a fork server of its own)


def whole(model_id: str) -> re.Pattern:
    """A model id on a line, not cut and not part of a longer name."""
    return re.compile(rf"(?<![\w./-]){re.escape(model_id)}(?![\w./-])")


def block(text: str, model_id: str) -> str:
    """The lines of ``model_id``'s entry: its own line and the ones after it, up to the next model or heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if whole(model_id).search(line))
    others = [whole(m) for m in REGISTRY if m != model_id]
    end = start + 1
    while end < len(lines) and lines[end].strip() and not any(p.search(lines[end]) for p in others) \
            and lines[end].startswith(" "):
        end += 1
    return "\n".join(lines[start:end])


# -- t2v --help ----------------------------------------------------------------------------------------------


def test_top_level_help_lists_commands_in_the_order_a_newcomer_uses_them():
    r = run("--help", env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    listed = re.findall(r"^│ (\S+)\s", r.stdout, flags=re.M)
    listed = [name for name in listed if not name.startswith("-")]
    expected = ["generate", "image", "sequence", "post", "models", "replay", "serve", "ui", "desktop", "worker",
                "keys", "cache"]
    assert [name for name in listed if name in expected] == expected, listed
    assert listed.index("keys") < listed.index("cache") and listed.index("replay") < listed.index("serve")
    # every command is somewhere in the order (a new one is placed there, not left to the end by accident)
    from t2v.cli.app import COMMAND_ORDER

    assert set(listed) <= set(COMMAND_ORDER), sorted(set(listed) - set(COMMAND_ORDER))
    assert set(COMMAND_ORDER) <= set(listed), sorted(set(COMMAND_ORDER) - set(listed))
    headings = re.findall(r"^╭─ (.+?) ─", r.stdout, flags=re.M)
    assert headings[:2] == ["Options", "Make"] and headings[-1] == "Maintenance"


def test_command_help_is_whole_sentences_and_keeps_brackets():
    r = run("--help", env={"COLUMNS": "200"})
    post = next(line for line in r.stdout.splitlines() if re.match(r"^│ post\s", line))
    assert "Post-process an existing clip: deflicker, interpolate, upscale; set or drop its sound." in post
    r = run("generate", "--help", env={"COLUMNS": "400"})
    assert "needs the [rife] extra" in r.stdout and "need the [upscale] extra" in r.stdout


def test_every_option_of_the_make_commands_has_help():
    import typer

    group = typer.main.get_command(app)
    for name in ("generate", "image", "sequence", "post", "extend", "plan", "replay", "inspect"):
        for param in group.commands[name].params:
            assert (param.help or "").strip(), f"t2v {name}: {param.opts} has no help"
    for name in ("list", "show", "pull", "make-tiny"):
        for param in group.commands["models"].commands[name].params:
            assert (param.help or "").strip(), f"t2v models {name}: {param.opts} has no help"


def test_generate_offers_every_interpolation_option_of_post():
    def options(command: str) -> set[str]:
        r = run(command, "--help", env={"COLUMNS": "300"})
        assert r.exit_code == 0, r.output
        return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", r.stdout))

    post, generate = options("post"), options("generate")
    interpolation = {o for o in post if re.search(r"interp|fps|deflicker|upscal", o)}
    assert {"--interpolate", "--target-fps", "--interpolation", "--interpolation-model"} <= interpolation
    assert interpolation <= generate, sorted(interpolation - generate)
    # --audio FILE names a local sound file: the post command's own, not a request field a server would read
    assert post - {"--output", "--quiet", "--help", "--audio"} <= generate, sorted(post - generate)


# -- t2v models list -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_models_list_never_cuts_an_id_and_marks_the_defaults(columns):
    r = t2v("models", "list", columns=columns, env={"T2V_DEFAULT_MODEL": "wan"})
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "…" not in text and "..." not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= columns
    for model_id in REGISTRY:
        lines = [line for line in text.splitlines() if whole(model_id).search(line)]
        assert lines, f"{model_id} is not whole at {columns} columns"
        marked = any(line.lstrip().startswith("*") for line in lines)
        assert marked == (model_id in (WAN, SD15)), (model_id, lines)  # T2V_DEFAULT_MODEL=wan and the image default
    # each model's own defaults: frames and fps only for video models
    assert re.search(r"576x320, 24 frames, 8 fps, 25\s+steps", block(text, ZEROSCOPE))
    sd = block(text, SD15)
    assert "512x512, 25 steps" in sd and "frames" not in sd and "fps" not in sd
    assert "1024x1024, 25 steps" in block(text, "stabilityai/stable-diffusion-xl-base-1.0")
    assert "832x480, 81 frames, 16 fps, 50 steps" in block(text, WAN)
    assert re.search(rf"\* the default: {re.escape(WAN)} for t2v generate", " ".join(text.split()))
    if columns >= 200:  # a table: every column, licence and aliases too
        assert re.search(r"^\s+id\s+makes\s+defaults\s+GPU memory\s+download\s+cached\s+license\s+aliases", text, re.M)


def test_models_list_json_is_the_raw_list_with_cached_and_default(monkeypatch):
    r = run("models", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {row["id"] for row in rows} == set(REGISTRY)
    assert {row["id"] for row in rows if row["default"]} == {MODELSCOPE, SD15}
    shapes = next(row for row in rows if row["id"] == "t2v-shapes")
    assert shapes["cached"] is True and shapes["defaults"]["width"] == 64  # it ships with t2v
    monkeypatch.setenv("T2V_MODEL", "zeroscope")  # what `t2v generate` uses without --model
    rows = json.loads(run("models", "list", "--json", "--family", "modelscope").stdout)
    assert [row["id"] for row in rows if row["default"]] == [ZEROSCOPE]


# -- t2v models show -----------------------------------------------------------------------------------------


def test_models_show_is_a_summary_in_words_and_json_the_record():
    r = run("models", "show", "wan2.2-5b", env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    text = r.stdout
    assert not text.lstrip().startswith("{")
    lines = {line.split("  ")[0].strip(): line.split("  ", 1)[1].strip() for line in text.splitlines()
             if "  " in line.strip()}
    assert lines["family"].startswith("wan: ") and lines["makes"] == "text-to-video, image-to-video (--image)"
    assert lines["defaults"].startswith("1280x704, 121 frames, 24 fps, 50 steps")
    assert "multiples of 16" in lines["limits"] and "4k+1 (e.g. 121)" in lines["limits"]
    assert lines["GPU memory"].startswith("about 24 GB")
    assert lines["hub"].startswith("Wan-AI/Wan2.2-TI2V-5B-Diffusers at revision main; no fp16 variant")
    assert lines["cached"] == "no: t2v models pull Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    assert lines["supports"] == "image-to-video (--image): yes"
    assert "LoRA (--lora): yes" in text and "--guidance-2" in text
    raw = json.loads(run("models", "show", "wan2.2-5b", "--json").stdout)
    assert raw["id"] == "Wan-AI/Wan2.2-TI2V-5B-Diffusers" and raw["revision"] == "main"
    assert raw["defaults"]["num_frames"] == 121 and raw["tasks"] == ["t2v", "i2v"]
    assert "guidance_scale_2" in raw["extras"]


def test_models_show_of_an_image_model_and_of_a_folder(tiny_model):
    r = run("models", "show", "sd15", env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    defaults = next(line for line in r.stdout.splitlines() if line.startswith("defaults"))
    assert "512x512, 25 steps" in defaults and "frames" not in defaults
    assert "image-to-video (--image): yes" not in r.stdout
    r = run("models", "show", tiny_model, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert str(tiny_model.resolve()) in r.stdout and "TextToVideoSDPipeline" in r.stdout
    assert "video-to-video (--video): yes" in r.stdout
    assert json.loads(run("models", "show", tiny_model, "--json").stdout)["pipeline"] == "TextToVideoSDPipeline"


# -- --json --------------------------------------------------------------------------------------------------


def small(model) -> list[str]:
    return ["--model", str(model), "--frames", "4", "--width", "32", "--height", "32", "--steps", "1", "--seed", "3"]


def test_generate_json_prints_the_record_alone_on_stdout(tiny_model, tmp_path):
    """`t2v generate ... --json | jq`: stdout is the record (as written beside the clip), progress on stderr."""
    out = tmp_path / "c.mp4"
    r = t2v("generate", "a red ball", *small(tiny_model), "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1
    record = json.loads(r.stdout)
    assert record == json.loads(out.with_suffix(".json").read_text())
    assert record["seed"] == 3 and record["num_frames"] == 4
    assert record["frames_sha256"] == read_embedded(out)["frames_sha256"]
    assert decode_video(out)[0].shape == (4, 32, 32, 3)
    assert "wrote" not in r.stdout and "Denoising" in r.stderr  # the progress went to stderr


def test_image_sequence_and_post_json(tiny_model, tiny_sd_model, tmp_path):
    r = run("image", "a red circle", "-n", "2", *small(tiny_sd_model)[:2], "--width", "32", "--height", "32",
            "--steps", "1", "--seed", "9", "-o", tmp_path / "pic.png", "--json")
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["seed"] for rec in records] == [9, 10]
    assert records[1] == json.loads((tmp_path / "pic-01.json").read_text())  # named from 00

    r = run("sequence", "0: a red circle", "3: a blue square", "--model", tiny_sd_model, "--width", "32", "--height",
            "32", "--steps", "1", "--seed", "5", "--fps", "4", "-o", tmp_path / "s.mp4", "--json")
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record == json.loads((tmp_path / "s.json").read_text()) and record["num_frames"] == 4

    assert run("generate", "a red ball", *small(tiny_model), "-o", tmp_path / "c.mp4", "-q").exit_code == 0
    r = run("post", tmp_path / "c.mp4", "--interpolate", "2", "-o", tmp_path / "smooth.mp4", "--json")
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record == json.loads((tmp_path / "smooth.json").read_text())
    assert record["postprocess"]["num_frames"] == len(decode_video(tmp_path / "smooth.mp4")[0])


def test_json_errors_stay_off_stdout(tmp_path):
    r = run("generate", "a cat", "--width", "63", "--json")
    assert r.exit_code == 2 and r.stdout == "" and "width" in r.stderr
