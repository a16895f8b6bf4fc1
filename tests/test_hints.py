"""Errors that teach: an unknown field names the field it most likely meant (the Python name of a CLI option
spelt in Python, or the nearest field), an unknown model names the nearest registered ids, both as
InvalidRequest, and ``progress=False`` keeps the libraries' own progress bars off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import t2v
from t2v.cli import app
from t2v.errors import InvalidRequest, UnknownModel
from t2v.requests import GenerationRequest, cli_spelling


def cli_names_of_fields() -> dict[str, str]:
    """GenerationRequest's CLI option long names that differ from the field's name -> the field (``steps`` ->
    ``num_inference_steps``), from the fields' declared metadata."""
    names = {}
    for field in GenerationRequest.model_fields:
        for spelling in cli_spelling(GenerationRequest, field):
            long = spelling[2:].replace("-", "_")
            # --lora is also the request's own shorthand for one LoRA (requests/loras.py): not an unknown field
            if spelling.startswith("--") and long not in (field, "lora") and long not in GenerationRequest.model_fields:
                names[long] = field
    return names


def test_the_cli_names_include_the_ones_newcomers_type():
    assert {"steps": "num_inference_steps", "frames": "num_frames", "guidance": "guidance_scale"}.items() <= \
        cli_names_of_fields().items()


@pytest.mark.parametrize("cli_name, field", sorted(cli_names_of_fields().items()))
def test_a_cli_spelling_in_python_names_the_python_field(cli_name, field):
    with pytest.raises(InvalidRequest) as e:
        t2v.generate("a red circle", model="t2v-shapes", progress=False, **{cli_name: 1})
    assert e.value.field == cli_name
    assert f"{cli_name}: unknown field; did you mean {field}?" in str(e.value)
    assert f"--{cli_name.replace('_', '-')}" in str(e.value), "names the CLI option it spells"


@pytest.mark.parametrize("typo, field", [("num_framez", "num_frames"), ("guidance_scal", "guidance_scale"),
                                         ("negative_promt", "negative_prompt"), ("sead", "seed")])
def test_a_misspelt_field_names_the_nearest_one(typo, field):
    with pytest.raises(InvalidRequest) as e:
        t2v.generate("a red circle", model="t2v-shapes", progress=False, **{typo: 1})
    assert e.value.field == typo and str(e.value) == f"{typo}: unknown field; did you mean {field}?"


def test_a_field_like_nothing_gets_no_guess():
    with pytest.raises(InvalidRequest) as e:
        GenerationRequest(prompt="x", colour="red")
    assert str(e.value) == "colour: unknown field"


def test_a_nested_unknown_field_names_the_nearest_one():
    with pytest.raises(InvalidRequest) as e:
        GenerationRequest(prompt="x", post={"upscal": 2})
    assert e.value.field == "post.upscal" and "did you mean upscale?" in str(e.value)


def test_an_unknown_model_is_invalid_request_naming_the_nearest_ids():
    with pytest.raises(InvalidRequest) as e:
        t2v.generate("a red circle", model="t2v-shape", progress=False)
    assert isinstance(e.value, UnknownModel) and e.value.field == "model"
    assert "unknown model 't2v-shape'" in str(e.value) and "did you mean t2v-shapes" in str(e.value)
    with pytest.raises(InvalidRequest, match=r"did you mean wan2\.2-a14b"):
        t2v.generate("a fox", model="wan22-a14b", progress=False)


@pytest.mark.parametrize("command", [["generate", "a red circle", "--model", "t2v-shape"],
                                     ["models", "show", "t2v-shape"]])
def test_the_cli_names_the_nearest_model_ids(tmp_path, command):
    r = CliRunner().invoke(app, [*command, *(["-o", str(tmp_path / "x.mp4")] if command[0] == "generate" else [])])
    assert r.exit_code == 2, r.output
    assert "unknown model 't2v-shape'" in r.output and "did you mean t2v-shapes" in r.output
    assert not (tmp_path / "x.mp4").exists()


def test_progress_false_prints_no_bar_of_the_libraries(tmp_path):
    script = ("import t2v, transformers.utils.logging as tl\n"
              "print('bars before:', tl.is_progress_bar_enabled())\n"
              "t2v.generate('a red circle moving right', model='t2v-shapes', num_inference_steps=2, progress=False)\n"
              "print('bars after:', tl.is_progress_bar_enabled())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_DISABLE_", "TRANSFORMERS_", "DIFFUSERS_"))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Loading weights" not in done.stderr and "it/s]" not in done.stderr, done.stderr[-2000:]
    assert "bars before: True" in done.stdout, "the libraries' bars are on, as in a fresh Python"
    assert "bars after: True" in done.stdout, "the libraries' bars are back on for the caller's own use"
