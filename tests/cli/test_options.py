"""The CLI's options come from the request contract: every field a command's request takes has an option, and
every option is a field, a post-processing field, a family extra, or one of the command's own few options."""

from __future__ import annotations

import click
import pytest
import typer

from t2v.cli.app import app
from t2v.cli.options import family_extras
from t2v.requests import (GenerationRequest, ImageRequest, PostRequest, PostSpec, SequenceRequest, applies,
                          cli_spelling)

OWN = {  # options that are the command's own, not a request's fields
    "generate": {"ctx", "prompt", "output", "quiet", "threads", "server", "key", "as_json", "overwrite", "stream"},
    "plan": {"prompt", "output", "quiet", "threads"},
    "image": {"prompt", "output", "quiet", "as_json", "overwrite"},
    "sequence": {"keyframes", "output", "quiet", "as_json", "overwrite"},
    "post": {"clip", "output", "quiet", "as_json", "audio", "no_audio", "overwrite"},  # a sound file: a local path, never a request field
}
CASES = [("generate", GenerationRequest, "video", True, True), ("plan", GenerationRequest, "video", True, True),
         ("image", ImageRequest, "image", False, False), ("sequence", SequenceRequest, "sequence", True, False)]


def params(name: str) -> dict[str, click.Parameter]:
    command = typer.main.get_command(app).commands[name]
    return {p.name: p for p in command.params}


def wanted(model, mode: str, post: bool, extras: bool) -> set[str]:
    fields = {n for n in model.model_fields if cli_spelling(model, n) and applies(model, n, mode)
              and n not in ("post", "extras")}
    if post:
        fields |= set(PostSpec.model_fields)
    if extras:
        fields |= set(family_extras())
    return fields


@pytest.mark.parametrize("command, model, mode, post, extras", CASES, ids=[c[0] for c in CASES])
def test_every_request_field_has_an_option_and_every_option_a_field(command, model, mode, post, extras):
    have = set(params(command)) - OWN[command]
    need = wanted(model, mode, post, extras)
    assert not need - have, f"{command}: fields with no option: {sorted(need - have)}"
    assert not have - need, f"{command}: options that are no field: {sorted(have - need)}"


def test_post_takes_the_post_fields_and_crf():
    assert set(params("post")) - OWN["post"] == set(PostSpec.model_fields) | {"crf"}
    assert "crf" in PostRequest.model_fields


def test_options_use_the_contract_spelling_help_and_environment():
    p = params("generate")
    assert p["num_frames"].opts == ["--frames", "-f"] and p["num_inference_steps"].opts == ["--steps", "-s"]
    assert p["model"].envvar == "T2V_MODEL" and p["device"].envvar == "T2V_DEVICE"
    assert p["num_frames"].help.startswith(GenerationRequest.model_fields["num_frames"].description)
    assert p["guidance_scale_2"].opts == ["--guidance-2"] and "HunyuanVideo" in p["guidance_scale_2"].help
    assert p["use_dynamic_cfg"].opts == ["--use-dynamic-cfg"] and p["use_dynamic_cfg"].is_flag
    image = params("image")
    assert image["count"].opts == ["--count", "-n"] and image["negative_prompt"].opts == ["--negative-prompt"]
    assert image["model"].envvar is None  # T2V_MODEL names a video model; image mode has its own default


def test_the_docs_table_of_generate_options_is_the_command_s():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "flag_table.py"
    spec = importlib.util.spec_from_file_location("flag_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.block() in module.PAGE.read_text(encoding="utf-8"), \
        "docs/usage.md's option table is stale: python scripts/flag_table.py --write"
